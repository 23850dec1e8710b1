"""The Random node pruning chapter's experiment functions, on tiny inputs."""

import pandas as pd
import pytest
import torch
from conftest import synthetic_batches, trained_mlps

from netshrink import models, published, stats
from netshrink.compress import masking, prune
from netshrink.experiments import random_pruning as rp


@pytest.fixture(scope="module")
def nets():
    return trained_mlps(128, 5)


def test_timing_reports_both_methods_and_agreement():
    torch.manual_seed(0)
    mlp = models.MLP(in_features=20, hidden=(16,)).eval()
    loader = synthetic_batches(n=3)
    masks = prune.random_node_masks(16, 3, 8, generator=torch.Generator().manual_seed(5))
    table = rp.time_mask_evaluation(mlp, "hidden.0", masks, loader, repeats=1)
    assert set(table.index) == {"batched", "per-mask loop"}
    assert table["agree"].all() and (table["seconds"] > 0).all()
    assert table.loc["per-mask loop", "speedup"] == pytest.approx(1.0)
    assert table.loc["batched", "masks"] == 8
    bench = rp.mask_benchmark(mlp, loader, n_masks=6, n_remove=4, repeats=1, seed=3)
    assert bench.loc["batched", "masks"] == 6 and bench["agree"].all()


def test_network_configs_are_the_drafts_network_with_successive_seeds():
    configs = rp.network_configs("mnist", 3, seed=7, epochs=2, hidden=32)
    assert [c.seed for c in configs] == [7, 8, 9]
    assert all(c.model_kwargs == {"hidden": [32]} and c.optimizer == "adam" and c.lr == 1e-3 for c in configs)
    assert len({c.key() for c in configs}) == 3
    with pytest.raises(ValueError, match=r"n_networks=0 is out of range; allowed: integers >= 1"):
        rp.network_configs("mnist", 0)


def test_random_trials_evaluate_each_mask_as_the_pruned_network(nets):
    runs, loader = nets
    trials = rp.random_trials(runs, loader, [1, 8], n_trials=5, seed=2)
    assert list(trials.columns) == ["network", "n", "trial", "loss", "acc"] and len(trials) == 2 * 2 * 5
    assert trials.groupby(["network", "n"]).size().eq(5).all()
    again = rp.random_trials(runs, loader, [1, 8], n_trials=5, seed=2)
    pd.testing.assert_frame_equal(trials, again)  # seeded
    # removing 8 of 16 nodes costs more on average than removing 1
    mean = trials.groupby("n")["loss"].mean()
    assert mean[8] > mean[1]


def test_statistics_table_sets_the_drafts_rows_below_ours(nets):
    runs, loader = nets
    trials = rp.random_trials(runs, loader, list(published.N_VALUES), n_trials=3)
    table = rp.statistics_table(trials, "acc", "R-T1")
    assert table.loc[("mean", "draft 004"), 64] == pytest.approx(0.8485)
    ours = trials[(trials["network"] == 0) & (trials["n"] == 4)]["acc"].mean()
    assert table.loc[("mean", "ours"), 4] == pytest.approx(ours)
    assert rp.statistics_table(trials, "acc", "R-XX").index.nlevels == 1  # no draft table: ours alone


def test_mask_scores_and_shrink_records_as_tables(nets):
    runs, loader = nets
    masks = prune.random_node_masks(128, 8, 3, generator=torch.Generator().manual_seed(0))
    scores = masking.evaluate_masks(runs[0].model, "hidden.0", loader, keep=masks)
    frame = rp.scores_frame(scores)
    assert list(frame.columns) == ["loss", "acc"] and frame["loss"].tolist() == scores.loss.tolist()
    result = prune.shrink_randomly(runs[0].model, "hidden.0", 32, loader, n_runs=2)
    steps = rp.shrink_steps(result)
    assert len(steps) == 2 * 5 and list(steps.columns[:3]) == ["run", "step", "removed"]
    last = steps[(steps["step"] == 4) & (steps["run"] == 1)].iloc[0]
    assert last["removed"] == int((~result.keep[1]).sum()) and last["val_loss"] == float(
        result.val_loss[4, 1]
    )


def test_shrink_runs_report_the_test_metrics_of_the_kept_nodes(nets):
    runs, loader = nets
    steps, final = rp.shrink_runs(runs[0], loader, loader, [8], n_runs=3, seed=1)
    assert len(final) == 3 and set(final["n"]) == {8} and (final["removed"] >= 0).all()
    assert {"val_loss", "test_loss", "test_acc"} <= set(final.columns) and "step" in steps
    # on the same data, validation and test metrics of the shrunk network agree
    assert final["test_loss"].to_numpy() == pytest.approx(final["val_loss"].to_numpy())


def test_findings_quote_our_numbers_beside_the_drafts(nets):
    runs, loader = nets
    found = rp.network_findings({"mnist": runs})
    assert found.glue["base_acc_mnist"] == pytest.approx(100 * runs[0].test["acc"])
    assert found.glue["draft_base_acc_mnist"] == pytest.approx(97.24)
    trials = rp.random_trials(runs, loader, [1, 64], n_trials=4)
    found = rp.trial_findings(trials, "mnist", "MNIST")
    first = trials[trials["network"] == 0]
    acc_64 = next(
        c for c in found.comparisons if c["quantity"] == "MNIST: mean test accuracy, 64 random nodes removed"
    )
    assert (
        acc_64["ours"] == pytest.approx(first[first["n"] == 64]["acc"].mean()) and acc_64["draft"] == 0.8485
    )
    assert {c["item"] for c in found.comparisons} == {"R-T1", "R-T2"} and len(found.comparisons) == 4
    spread = stats.spread_by_source(trials, "n", "network", "acc")
    assert set(rp.spread_findings(spread, "fashion-mnist", 4).glue) == {
        "share_network_max_n_fashion_mnist",
        "ci_half_max_n_fashion_mnist",
        "mask_se_max_n_fashion_mnist",
    }
    final = pd.DataFrame({"n": [1, 1, 2, 2], "removed": [3, 5, 8, 10], "test_acc": [0.9, 0.8, 0.7, 0.5]})
    found = rp.shrink_findings(final, "MNIST")
    assert found.glue == {
        "shrink_best_n": 2,
        "shrink_best_removed": 9.0,
        "shrink_test_acc": pytest.approx(60.0),
    }
    assert [c["draft"] for c in found.comparisons] == [7.4, 8.9]


def test_evaluation_loader_keeps_the_split_in_large_batches(nets):
    from netshrink import data

    ds = data.ImageDataset(torch.rand(30, 1, 4, 4), torch.randint(0, 10, (30,)))
    splits = data.DataSplits("mnist", "tiny", tuple("0123456789"), ds, ds, ds, {})
    batches = list(rp.evaluation_loader(splits, "val", batch_size=16))
    assert [len(y) for _, y in batches] == [16, 14]


def test_glue_key_makes_a_data_set_name_a_glue_name_part():
    assert rp.glue_key("fashion-mnist") == "fashion_mnist" and rp.glue_key("mnist") == "mnist"
