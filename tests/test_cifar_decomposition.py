"""The Tensor decomposition chapter's CIFAR-10 experiments, on a narrow CNN and random images."""

import functools

import pytest
import torch
from conftest import trained_result
from torch import nn

from netshrink import cache, data, models, train
from netshrink.compress import decompose
from netshrink.experiments import cifar_decomposition as cd


@pytest.fixture(scope="module")
def cifar():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    ds = data.ImageDataset(torch.rand(48, 3, 32, 32, generator=g), torch.randint(0, 10, (48,), generator=g))
    splits = data.DataSplits("cifar10", "tiny CIFAR", tuple("abcdefghij"), ds, ds, ds, {"n": 48})
    loader = data.make_loader(ds, 24)
    cnn = models.CifarCNN(pool=True).eval()
    return trained_result(cnn, loader, key="cnn", label="tiny CIFAR"), splits, loader


@pytest.fixture()
def fine_tune(tmp_path):
    return functools.partial(cache.fine_tune_cached, root=tmp_path, progress=False, batch_size=24)


def test_cifar_config_is_the_reports_network_with_augmentation():
    config = cd.cifar_config(epochs=4, data_kwargs={"val_size": 100})
    assert config.model == "cifar_cnn" and config.model_kwargs == {"pool": True}
    assert config.data_kwargs == {"val_size": 100, "augment": True} and config.lr == 1e-3


def test_magnitude_sweep_and_its_findings(cifar):
    result, _, loader = cifar
    layers = models.conv_layers(result.model)
    sweep = cd.magnitude_sweep(result.model, loader, [layers[0], "fc"], [0.0, 0.5])
    assert len(sweep) == 4 and set(sweep["layer"]) == {layers[0], "fc"}
    intact = train.evaluate(result.model, loader)["acc"]
    assert list(sweep.columns) == ["layer", "rate", "test accuracy"]
    assert sweep["test accuracy"].between(0, 1).all(), "a fraction"
    assert sweep[sweep["rate"] == 0.0]["test accuracy"].tolist() == pytest.approx([intact, intact])
    found = cd.sweep_findings(sweep, layers)
    at_half = sweep[(sweep["layer"] == "fc") & (sweep["rate"] == 0.5)]["test accuracy"].iloc[0]
    assert found.glue["prune_fc"] == 100 * at_half, "the prose's %"
    assert found.glue["prune_last"] != found.glue["prune_last"]  # NaN: the last conv was not swept


def test_reconstruction_findings_read_both_curves_at_the_middle_rank(cifar):
    result, _, _ = cifar
    conv = result.model.get_submodule(models.conv_layers(result.model)[-1])
    curves = cd.reconstruction_curves(conv, [8, 32, 64])
    found = cd.reconstruction_findings(curves, [8, 32, 64])
    assert found.glue["recon_rank"] == 32
    assert found.glue["recon_r1"] == pytest.approx(cd.tucker2_error(conv, (32, 64)))
    assert found.glue["recon_r2"] == pytest.approx(cd.tucker2_error(conv, (64, 32)))


def test_k_sweep_times_every_k_and_sets_the_reports_number_beside_k4_before_fine_tuning(cifar, fine_tune):
    result, splits, loader = cifar
    layers = models.conv_layers(result.model)[1:]
    sweep = cd.k_sweep(result, splits, loader, [2, 4, 8], layers, fine_tune, epochs=1,
                       images=splits.test.images[:8], batch_size=4, repeats=1)  # fmt: skip
    assert list(sweep.table.index) == ["original", "k = 2", "k = 4", "k = 8", "k = 4, fine-tuned"]
    assert sweep.k_ref == 4 and len(sweep.plot) == 3 * 3
    table = sweep.table
    assert list(table.columns) == ["parameters", "MFLOPs per image", "test accuracy", "seconds",
                                   "seconds, channels last", "speedup", "speedup, channels last"]  # fmt: skip
    assert table["test accuracy"].between(0, 1).all() and table.attrs["images"] == 8
    params = table["parameters"]
    assert params["k = 2"] < params["k = 4"] < params["k = 8"]
    assert table.loc["k = 8", "test accuracy"] == pytest.approx(
        table.loc["original", "test accuracy"], abs=1e-8
    ), "k = 8 keeps every rank: the same network"
    before = next(c for c in sweep.findings.comparisons if c["quantity"].endswith("no fine-tuning"))
    assert before["ours"] == table.loc["k = 4", "test accuracy"]
    assert before["draft"] == 0.8802 and len(sweep.findings.compressions) == 1
    glue = sweep.findings.glue
    assert glue["k_acc"] == 100 * table.loc["k = 4", "test accuracy"]
    assert glue["k_time"] == pytest.approx(
        100 * table.loc["k = 4", "seconds"] / table.loc["original", "seconds"]
    )
    plot = sweep.plot.set_index(["quantity", "k"])["value"]
    assert set(sweep.plot["quantity"]) == {
        "test accuracy",
        "time / original",
        "time / original, channels last",
    }
    assert plot["time / original", 4] == pytest.approx(glue["k_time"] / 100), "fractions, as the table's"
    assert plot["time / original, channels last", 4] == pytest.approx(glue["k_time_cl"] / 100)


def test_methods_at_budget_keep_the_budget_and_fine_tune_each(cifar, fine_tune):
    result, splits, loader = cifar
    layers = models.conv_layers(result.model)[1:]
    timing = {"images": splits.test.images[:8], "batch_size": 4, "repeats": 1}
    methods = ["tucker2", "cp"]
    table, found = cd.methods_at_budget(
        result, splits, methods, layers, 0.25, fine_tune, n_blocks=2, epochs=1, **timing
    )
    assert list(table.index) == ["original", "tucker2", "cp"]
    accuracies = table[["test accuracy", "accuracy before fine-tuning"]]
    assert accuracies.stack().between(0, 1).all() and "seconds" in table and table.attrs["images"] == 8
    assert found.glue["best_method_acc"] == 100 * table.loc[found.glue["best_method"], "test accuracy"]
    assert {c["accuracy"] for c in found.compressions} == set(table["test accuracy"].iloc[1:])
    budget = table["decomposed layers' parameters"]
    assert (budget[["tucker2", "cp"]] <= 0.25 * budget["original"]).all()
    assert table.loc["original", "ranks"] == "dense" and "tucker2" in table.loc["tucker2", "ranks"]
    assert found.glue["budget_pct"] == 25 and found.glue["best_method"] in ("tucker2", "cp")
    assert "cp_speedup" in found.glue and len(found.compressions) == 2


def test_k_plan_keeps_k_eighths_of_each_dimension_and_full_rank_is_exact():
    torch.manual_seed(0)
    net = models.CifarCNN(pool=True).eval()
    layers = models.conv_layers(net)
    assert layers == ["features.0", "features.2", "features.5", "features.7"]
    plan = cd.k_plan(net, 4, layers)
    assert plan["features.0"] == ["tucker2", [2, 16]] and plan["features.7"] == ["tucker2", [32, 32]]
    x = torch.rand(2, 3, 32, 32)
    full = decompose.decompose_model(net, cd.k_plan(net, 8, layers))
    assert torch.allclose(full(x), net(x), atol=1e-4)
    with pytest.raises(ValueError, match=r"k=9 is out of range; allowed: 1..8"):
        cd.k_plan(net, 9, layers)


def test_reconstruction_error_falls_with_rank_and_vanishes_at_full_rank():
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 24, 3)
    curves = cd.reconstruction_curves(conv, [1, 4, 8, 16, 24])
    for _, group in curves.groupby("varied"):
        assert group["relative error"].is_monotonic_decreasing
    assert curves[curves["rank"] == 16]["relative error"].min() < 1e-5
    assert set(curves["varied"]) == {"R2 varied, R1 = 16", "R1 varied, R2 = 24"}


@pytest.mark.parametrize("method", ["cp", "tucker2", "tt", "jaderberg", "btd"])
def test_budget_plans_keep_the_budget(method):
    net = models.CifarCNN(pool=True)
    names = ["features.2", "features.5", "features.7"]
    plan = cd.budget_plan(net, method, names, 0.25)
    new = decompose.decompose_model(net, plan)
    for name in names:
        assert models.count_parameters(new.get_submodule(name)) <= 0.25 * models.count_parameters(
            net.get_submodule(name)
        )
    assert cd.layers_parameters(new, names) < cd.layers_parameters(net, names) / 4
    with pytest.raises(ValueError, match=r"fraction=1.5 is out of range; allowed: \(0, 1\)"):
        cd.budget_plan(net, method, names, 1.5)
