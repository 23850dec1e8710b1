"""Torch-Pruning's criteria beside the book's (compress.peer_importance, experiments.peer_criteria)."""

from __future__ import annotations

import types

import pandas as pd
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from netshrink.compress import peer_importance as pi
from netshrink.compress.masking import evaluate_masks
from netshrink.experiments import node_importance as ni
from netshrink.experiments import peer_criteria as pc
from netshrink.models import MLP

needs_peer = pytest.mark.skipif(pi.version() is None, reason="torch-pruning is not installed")


@pytest.fixture
def mlp_and_data():
    torch.manual_seed(0)
    model = MLP(784, [24], 10).eval()
    x, y = torch.randn(300, 1, 28, 28), torch.randint(0, 10, (300,))
    return model, [(x[i : i + 100], y[i : i + 100]) for i in range(0, 300, 100)]


@needs_peer
def test_every_criterion_scores_every_node_and_leaves_the_model_alone(mlp_and_data):
    model, loader = mlp_and_data
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores = pi.torch_pruning_scores(model, "hidden.0", loader)
    assert list(scores) == list(pi.CRITERIA)
    for name, s in scores.items():
        assert s.shape == (24,) and s.dtype == torch.float64 and torch.isfinite(s).all(), name
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


@needs_peer
def test_magnitude_is_the_groups_mean_norm_and_lamp_keeps_its_order(mlp_and_data):
    model, loader = mlp_and_data
    scores = pi.torch_pruning_scores(
        model, "hidden.0", loader, criteria=["magnitude L1", "magnitude L2 (group norm)", "LAMP"]
    )
    w_in, w_out = model.hidden[0].weight.detach(), model.out.weight.detach()
    l1 = (w_in.abs().sum(1) + w_out.abs().sum(0)) / 2  # the hidden rows and the output layer's columns
    torch.testing.assert_close(scores["magnitude L1"], (l1 / l1.mean()).double(), rtol=1e-5, atol=1e-6)
    assert torch.equal(
        pi.ranking_order(scores["LAMP"]), pi.ranking_order(scores["magnitude L2 (group norm)"])
    )


def test_the_fisher_diagonal_is_the_mean_squared_per_example_gradient(mlp_and_data):
    model, loader = mlp_and_data
    pi._fill_fisher_diagonal(model, loader, chunk=64)
    got = {k: p.grad.clone() for k, p in model.named_parameters()}
    want = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    for x, y in loader:
        for xi, yi in zip(x, y, strict=True):
            model.zero_grad()
            F.cross_entropy(model(xi[None]), yi[None]).backward()
            for k, p in model.named_parameters():
                want[k] += p.grad**2 / 300
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-9)


@needs_peer
def test_a_conv_layers_channels_are_scored():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3), nn.ReLU(), nn.Conv2d(6, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 24 * 24, 10)
    )
    loader = [(torch.randn(20, 1, 28, 28), torch.randint(0, 10, (20,)))]
    scores = pi.torch_pruning_scores(model, "0", loader, criteria=["magnitude L1", "Taylor (grouped)"])
    assert {k: v.shape for k, v in scores.items()} == {"magnitude L1": (6,), "Taylor (grouped)": (6,)}


def test_bad_criteria_and_layers_are_refused_before_any_work(mlp_and_data):
    model, loader = mlp_and_data
    with pytest.raises(ValueError, match=r"criteria=\['L3'\] not known; allowed values: magnitude L1"):
        pi.torch_pruning_scores(model, "hidden.0", loader, criteria=["L3"])
    with pytest.raises(ValueError, match="layer="):
        pi.torch_pruning_scores(model, "nothing", loader)
    with pytest.raises(ValueError, match="budget=-0.1"):
        pc.criteria_table([], pd.DataFrame(), loader, loader, budget=-0.1)


def test_prefix_masks_remove_one_more_node_of_the_order_each():
    keep = pc.prefix_masks(torch.tensor([2, 0, 3, 1]))
    assert keep.tolist() == [
        [True, True, False, True],
        [False, True, False, True],
        [False, True, False, False],
    ]


def test_the_budget_stops_at_the_first_removal_over_it(mlp_and_data):
    model, loader = mlp_and_data
    scores = {"some order": torch.randn(24, dtype=torch.float64)}
    removed, curves = pc.budget_removals(model, "hidden.0", loader, scores, budget=0.02)
    masks = pc.prefix_masks(pi.ranking_order(scores["some order"]))
    change = evaluate_masks(model, "hidden.0", loader, keep=masks).loss_change
    over = (change > 0.02).nonzero()
    assert removed["some order"] == (int(over[0]) if len(over) else 23)
    torch.testing.assert_close(torch.tensor(curves["loss change"].to_numpy()), change)


def _nets(n: int):
    torch.manual_seed(1)
    return [types.SimpleNamespace(model=MLP(784, [16], 10).eval()) for _ in range(n)]


def test_without_the_peer_the_table_has_the_books_rows_and_the_page_says_so(mlp_and_data, monkeypatch):
    _, loader = mlp_and_data
    monkeypatch.setattr(pi, "version", lambda: None)
    with pytest.raises(ImportError, match="Torch-Pruning is not installed"):
        pi.torch_pruning_scores(_nets(1)[0].model, "hidden.0", loader)
    nets = _nets(3)
    summary, per_network, _ = pc.criteria_table(
        nets, ni.importance_table(nets, loader, 1e-4), loader, loader, 0.01
    )
    assert list(summary.index) == [pc.ORACLE, pc.TAYLOR]
    assert "not installed" in pc.peer_line()
    assert (
        pc.criteria_findings(summary, per_network, "mnist").glue["peer_sentence_mnist"]
        == "No peer criterion was computed."
    )


@needs_peer
def test_the_summary_has_every_criterion_its_interval_and_the_rows_that_do_not_apply(mlp_and_data):
    _, loader = mlp_and_data
    nets = _nets(3)
    summary, per_network, curves = pc.criteria_table(
        nets, ni.importance_table(nets, loader, 1e-4), loader, loader, 0.01
    )
    assert list(summary.index) == [pc.ORACLE, pc.TAYLOR, *pi.CRITERIA, *pi.NOT_APPLICABLE]
    assert summary.loc[pc.ORACLE, "Spearman (mean)"] == pytest.approx(1.0)
    rows = summary.loc[list(pi.CRITERIA)]
    assert (rows["Spearman low"] <= rows["Spearman (mean)"]).all() and (rows["Spearman high"] <= 1).all()
    assert (rows["networks"] == 3).all() and summary.loc["BN scale", "note"].startswith("does not apply")
    assert (rows["removed low"] >= 0).all() and (rows["removed high"] <= 15).all()  # at most 15 of 16 nodes
    assert len(per_network) == 3 * (2 + len(pi.CRITERIA)) and set(curves["criterion"]) == set(
        per_network["criterion"]
    )


def _findings(taylor: list[float], best: list[float]):
    per_network = pd.DataFrame(
        [
            {"network": i, "criterion": c, "spearman": v}
            for c, vals in ((pc.TAYLOR, taylor), ("magnitude L1", best))
            for i, v in enumerate(vals)
        ]
    )
    summary = pd.DataFrame(
        {
            "library": ["netshrink", "netshrink", pi.PEER],
            "Spearman (mean)": [1.0, sum(taylor) / 3, sum(best) / 3],
            "nodes removed (mean)": [20.0, 18.0, 9.5],
        },
        index=[pc.ORACLE, pc.TAYLOR, "magnitude L1"],
    )
    glue = pc.criteria_findings(summary, per_network, "mnist").glue
    assert (glue["peer_removed_oracle_mnist"], glue["peer_removed_taylor_mnist"]) == (20.0, 18.0)
    assert glue["peer_removed_best_mnist"] == 9.5 and glue["peer_sentence_mnist"].endswith(
        f"{glue['peer_verdict_mnist']}."
    )
    return glue["peer_sentence_mnist"]


def test_the_sentence_follows_the_paired_difference():
    assert _findings([0.9, 0.92, 0.91], [0.3, 0.35, 0.32]).endswith("the book's estimate ranks closer.")
    assert _findings([0.3, 0.35, 0.32], [0.9, 0.92, 0.91]).endswith("magnitude L1 ranks closer.")
    assert _findings([0.5, 0.9, 0.2], [0.6, 0.3, 0.7]).endswith("no difference that the networks resolve.")


@needs_peer
def test_the_peers_own_per_example_accumulation_keeps_only_the_last_example():
    """Why `_fill_fisher_diagonal` exists (the chapter says so): Torch-Pruning 1.6.1's
    `accumulate_grad` overwrites its sum with each example's squared gradient."""
    import torch_pruning as tp

    layer = nn.Linear(2, 1)
    scorer = tp.importance.GroupHessianImportance()
    for g in (1.0, 3.0):
        layer.weight.grad = torch.full_like(layer.weight, g)
        scorer.accumulate_grad(layer)
    assert torch.equal(scorer._accu_grad[layer.weight], torch.full_like(layer.weight, 9.0))


def test_the_peer_line_names_the_version_or_says_the_peer_is_missing():
    from netshrink.findings import peer_line

    assert peer_line("P", "p-pkg", "1.2", "made by P {version}", "ours") == "The P rows are made by P 1.2."
    assert peer_line("P", "p-pkg", None, "made by P {version}", "ours") == (
        "P is not installed here (`pip install p-pkg`), so the table has ours only."
    )
