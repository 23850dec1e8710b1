"""The Node importance chapter's experiment functions (one hidden layer), on tiny inputs."""

import pytest
import torch
from conftest import trained_mlps

from netshrink import train
from netshrink.compress import importance, masking, prune
from netshrink.experiments import node_importance as ni


@pytest.fixture(scope="module")
def nets():
    return trained_mlps(32, 8, n_batches=3)


def test_importance_table_holds_the_oracle_the_classes_and_taylor(nets):
    runs, loader = nets
    table = ni.importance_table(runs, loader, tol=1e-3)
    assert len(table) == 2 * 32 and list(table["node"][:32]) == list(range(32))
    first = table[table["network"] == 0]
    expected = importance.loss_change(runs[0].model, "hidden.0", loader).numpy()
    assert first["loss_change"].to_numpy() == pytest.approx(expected, abs=1e-6)
    assert set(first["class"]) <= {"important", "zero", "worse"}
    assert (first.loc[first["loss_change"] > 1e-3, "class"] == "important").all()
    counts = ni.class_counts(table)
    assert (counts[["important", "zero", "worse"]].sum(axis=1) == 32).all()
    assert counts["Spearman (Taylor, oracle)"].between(-1, 1).all()
    stats = ni.count_statistics({"tiny": counts})
    assert stats.loc[("tiny", "mean"), "important"] == pytest.approx(counts["important"].mean())
    found = ni.class_findings(counts, "fashion-mnist")
    assert found.glue["important_fashion_mnist"] == pytest.approx(counts["important"].mean())


def test_pruning_strategies_shrink_the_layer_and_time_every_model(nets):
    runs, loader = nets
    x = loader[0][0]
    table, paths = ni.pruning_strategies(
        runs[0].model, loader, loader, x, tol=0.02, class_tol=0.02, important=0.05, repeats=1
    )
    assert list(table.index)[0] == "original" and table.loc["original", "nodes left"] == 32
    assert table.loc["exhaustive", "nodes left"] < 32, "a loss bound of 0.02 lets some node go"
    assert table.loc["exhaustive, width a multiple of 16", "nodes left"] in (16, 32)
    assert (table.drop(index="original")["seconds"] > 0).all()
    # the kept nodes are really gone: the layer is smaller
    assert (
        table.loc["exhaustive", "parameters"]
        == 20 * int(table.loc["exhaustive", "nodes left"])
        + int(table.loc["exhaustive", "nodes left"])
        + 10 * int(table.loc["exhaustive", "nodes left"])
        + 10
    )
    assert set(paths["strategy"]) == {"exhaustive", "greedy"}
    found = ni.strategy_findings(table, "mnist", "tiny")
    assert found.glue["exh_left_mnist"] == table.loc["exhaustive", "nodes left"]
    assert found.glue["exh_vs_greedy"] in ("the faster", "the slower")
    assert {c["item"] for c in found.compressions} == {"I-T2", "I-T3"} and len(found.compressions) == 5
    assert found.glue["exh16_left_mnist"] == table.loc[ni.multiple_row(16), "nodes left"]
    other = table.rename(index={ni.multiple_row(16): ni.multiple_row(8)})  # another multiple: its own glue
    assert (
        ni.strategy_findings(other, "mnist", "tiny").glue["exh8_left_mnist"] == found.glue["exh16_left_mnist"]
    )
    assert ni.glue_short("once: worse + zero") == "once_zero"


def test_loss_change_benchmark_agrees_with_the_loop(nets):
    runs, loader = nets
    bench = ni.loss_change_benchmark(runs[0].model, loader, repeats=1)
    assert bench["agree"].all() and bench.loc["one pass per node", "speedup"] == pytest.approx(1.0)
    assert (bench["nodes"] == 32).all()


def test_base_findings_set_the_drafts_128_node_network_beside_ours(nets):
    runs, _ = nets
    found = ni.base_findings(runs[0])
    assert [c["draft"] for c in found.comparisons] == [0.9724, 0.0879]
    assert found.comparisons[0]["ours"] == runs[0].test["acc"] and found.glue[
        "draft_base_acc_mnist"
    ] == pytest.approx(97.24)


def test_a_removed_node_is_the_masked_node(nets):
    runs, loader = nets
    keep = torch.ones(32, dtype=torch.bool)
    keep[[2, 5]] = False
    removed = prune.remove_nodes(runs[0].model, "hidden.0", keep)
    masked = masking.evaluate_masks(runs[0].model, "hidden.0", loader, keep=keep[None])
    assert train.evaluate(removed, loader)["loss"] == pytest.approx(float(masked.loss[0]), abs=1e-5)
