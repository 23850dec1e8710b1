"""tensorly-torch's factorized convolutions beside the book's (compress.peer_layers,
experiments.peer_decomposition): each peer layer against the dense one it replaces."""

from __future__ import annotations

import types

import pandas as pd
import pytest
import torch
from torch import nn

from netshrink import models
from netshrink.compress import decompose
from netshrink.compress import peer_layers as pl
from netshrink.experiments import peer_decomposition as pdm

needs_peer = pytest.mark.skipif(pl.version() is None, reason="tensorly-torch is not installed")


@pytest.fixture
def conv():
    torch.manual_seed(0)
    return nn.Conv2d(6, 10, 3, padding=1)


@needs_peer
@pytest.mark.parametrize(("method", "full"), [("tucker2", (6, 10)), ("tt", (6, 18, 10))])
def test_at_full_rank_the_peer_layer_is_the_dense_one(conv, method, full):
    x = torch.randn(4, 6, 9, 9)
    torch.testing.assert_close(pl.tltorch_conv(conv, method, full)(x), conv(x), rtol=1e-4, atol=1e-4)


@needs_peer
@pytest.mark.parametrize(
    ("method", "rank", "extra"), [("cp", 4, 4), ("tucker2", (3, 5), 3 * 3 + 3 * 3), ("tt", (3, 5, 4), 0)]
)
def test_the_same_ranks_give_the_same_layer_size_but_the_peers_own_extras(conv, method, rank, extra):
    """CP keeps R weights of its own; tensorly-torch's Tucker keeps the (full-rank) spatial factors."""
    theirs, ours = pl.tltorch_conv(conv, method, rank), decompose.decompose_layer(conv, method, rank)
    assert models.count_parameters(theirs) == models.count_parameters(ours) + extra


@needs_peer
@pytest.mark.parametrize("method", ["tucker2", "tt"])
def test_at_low_rank_both_libraries_decompose_the_kernel_alike(conv, method):
    """Tucker-2 by truncated SVDs and TT by TT-SVD are deterministic: the same error on both sides."""
    rank = (3, 5) if method == "tucker2" else (3, 5, 4)
    x = torch.randn(4, 6, 9, 9)
    ref = conv(x)
    layers = {
        "theirs": pl.tltorch_conv(conv, method, rank),
        "ours": decompose.decompose_layer(conv, method, rank),
    }
    err = {name: float((layer(x) - ref).norm() / ref.norm()) for name, layer in layers.items()}
    assert err["theirs"] == pytest.approx(err["ours"], rel=1e-3)


def _tiny():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    ).eval()  # fmt: skip


@needs_peer
def test_the_peer_model_replaces_the_planned_convs_only():
    model = _tiny()
    peer = pl.tltorch_model(model, {"2": ["tucker2", [8, 8]]})
    assert type(peer[2]).__name__ == "FactorizedConv" and isinstance(peer[0], nn.Conv2d)
    assert isinstance(model[2], nn.Conv2d)  # the model itself is left as it was
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(peer(x), model(x), rtol=1e-4, atol=1e-4)


def test_bad_methods_implementations_and_a_missing_peer_are_refused(conv, monkeypatch):
    with pytest.raises(
        ValueError,
        match="method='jaderberg' has no tensorly-torch layer here; allowed values: cp, tucker2, tt",
    ):
        pl.tltorch_conv(conv, "jaderberg", 3)
    with pytest.raises(ValueError, match="implementation='fast' not known"):
        pl.tltorch_conv(conv, "cp", 3, implementation="fast")
    with pytest.raises(ValueError, match="method='btd'"):
        pl.tltorch_model(_tiny(), {"2": {"method": "btd", "rank": 2}})
    monkeypatch.setattr(pl, "version", lambda: None)
    with pytest.raises(ImportError, match="tensorly-torch is not installed"):
        pl.tltorch_conv(conv, "cp", 3)


def _run(methods):
    cnn = types.SimpleNamespace(model=_tiny(), test={"acc": 0.5}, key="k")
    tuned = []

    def fine_tune(model, made_from, splits, **kw):
        tuned.append(made_from)
        return types.SimpleNamespace(model=model, test={"acc": 0.4}, before={"acc": 0.3})

    splits = types.SimpleNamespace(label="tiny")
    table = pdm.peer_decompositions(cnn, splits, methods, ["2"], 0.5, fine_tune, n_blocks=2, epochs=1,
                                    images=torch.randn(8, 3, 8, 8), batch_size=4, repeats=3)  # fmt: skip
    return table, tuned


@needs_peer
def test_each_method_the_peer_has_stands_beside_ours_at_the_same_ranks():
    table, tuned = _run(["tucker2", "tt", "jaderberg"])
    assert list(table.index) == [
        "original",
        "tucker2, netshrink",
        "tucker2, tensorly-torch",
        "tt, netshrink",
        "tt, tensorly-torch",
    ]
    assert table.loc["tucker2, netshrink", "ranks"] == table.loc["tucker2, tensorly-torch", "ranks"]
    assert len(set(tuned)) == 4  # each fine-tuned model has a cache origin of its own
    assert table.loc[["tt, tensorly-torch"], ["low", "peer / ours, seconds", "high"]].notna().all(axis=None)
    assert table.loc[["original", "tt, netshrink"], "peer / ours, seconds"].isna().all()
    assert list(table.columns[2:6]) == [
        "parameters",
        "MFLOPs per image",
        "accuracy before fine-tuning",
        "test accuracy",
    ]
    assert table.loc["tt, tensorly-torch", ["accuracy before fine-tuning", "test accuracy"]].tolist() == [
        0.3,
        0.4,
    ]
    assert "seconds" in table and table.attrs["images"] == 8 and table.attrs["data set"] == "tiny"


def test_without_the_peer_the_table_has_the_books_layers_and_the_page_says_so(monkeypatch):
    monkeypatch.setattr(pl, "version", lambda: None)
    table, _ = _run(["tucker2"])
    assert list(table.index) == ["original", "tucker2, netshrink"]
    assert "not installed" in pdm.peer_line()
    assert pdm.peer_findings(table).glue["peer_layers_sentence"] == "No peer layer was built."


def _table(ratio: tuple[float, float, float]):
    rows = {
        "original": ["PyTorch (dense)", "dense", 0.6, 1.0, float("nan"), float("nan"), float("nan")],
        "cp, netshrink": ["netshrink", "cp", 0.58, 1.3, float("nan"), float("nan"), float("nan")],
        "cp, tensorly-torch": ["tensorly-torch", "cp", 0.57, 1.0, *ratio],
    }
    cols = ["library", "method", "test accuracy", "speedup", "peer / ours, seconds", "low", "high"]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=cols)
    table["parameters"], table["MFLOPs per image"] = [100, 40, 40], [2.0, 0.8, 0.8]
    table.attrs["data set"] = "CIFAR-10"
    return table


def test_the_sentence_calls_a_ratio_whose_quartiles_hold_one_no_difference():
    assert (
        "the book's layers are faster"
        in pdm.peer_findings(_table((1.3, 1.2, 1.4))).glue["peer_layers_sentence"]
    )
    assert (
        "tensorly-torch's are faster"
        in pdm.peer_findings(_table((0.8, 0.7, 0.9))).glue["peer_layers_sentence"]
    )
    assert "equally fast" in pdm.peer_findings(_table((1.05, 0.9, 1.2))).glue["peer_layers_sentence"]
    assert "not judged for speed" in pdm.peer_findings(_table((1.3, 1.3, 1.3))).glue["peer_layers_sentence"]
    glue = pdm.peer_findings(_table((1.3, 1.2, 1.4))).glue  # the table's fractions, the prose's %
    assert glue["peer_cp_acc"] == pytest.approx(57.0) and glue["ours_cp_acc"] == pytest.approx(58.0)
    assert (
        "the book's reach 58.00 % and tensorly-torch's 57.00 % (+1.00 points" in glue["peer_layers_sentence"]
    )


def test_tltorch_rank_maps_our_ranks_one_to_one(conv):
    assert pl.tltorch_rank(conv, "cp", 4) == 4
    assert pl.tltorch_rank(conv, "tucker2", (3, 5)) == [
        5,
        3,
        3,
        3,
    ]  # (out, in, kh, kw) of the (T, S, kh, kw) kernel
    assert pl.tltorch_rank(conv, "tt", (3, 5, 4)) == [1, 3, 5, 4, 1]
    assert pl.tltorch_rank(conv, "tt", 2) == [1, 2, 2, 2, 1]


def test_the_peers_models_are_recorded_for_the_glance_page_under_one_marker():
    found = pdm.peer_findings(_table((1.3, 1.2, 1.4)))
    assert [c["model"] for c in found.compressions] == ["CIFAR CNN, cp, tensorly-torch"]
    record = found.compressions[0]
    assert (record["item"], record["data_set"], record["method"]) == (
        "D-T8",
        "CIFAR-10",
        "tensorly-torch's factorized convolutions",
    )
    assert (record["accuracy"], record["base_accuracy"], record["parameters"], record["speedup"]) == (
        0.57,
        0.6,
        40,
        1.0,
    )
