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
    assert (table["q25"] <= table["seconds"]).all() and (table["seconds"] <= table["q75"]).all()
    fast, slow = table.loc["batched"], table.loc["per-mask loop"]
    assert fast["speedup low"] == pytest.approx(slow["q25"] / fast["q75"])
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
    assert list(trials.columns) == ["network", "n", "trial", "loss", "acc", "intact_loss", "intact_acc"]
    assert len(trials) == 2 * 2 * 5
    intact = masking.evaluate_masks(
        runs[1].model, "hidden.0", loader, keep=torch.ones(1, 128, dtype=torch.bool)
    )
    assert trials[trials["network"] == 1]["intact_loss"].to_numpy() == pytest.approx(intact.loss[0].item())
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


def test_mask_scores_as_a_table(nets):
    runs, loader = nets
    masks = prune.random_node_masks(128, 8, 3, generator=torch.Generator().manual_seed(0))
    scores = masking.evaluate_masks(runs[0].model, "hidden.0", loader, keep=masks)
    frame = rp.scores_frame(scores)
    assert list(frame.columns) == ["loss", "acc"] and frame["loss"].tolist() == scores.loss.tolist()


def test_benchmark_findings_call_overlapping_spreads_no_difference():
    bench = pd.DataFrame(
        {"seconds": [1.0, 2.0], "q25": [0.9, 1.5], "q75": [1.6, 2.5], "speedup": [2.0, 1.0],
         "speedup low": [0.9, 1.0], "speedup high": [2.8, 1.0], "repeats": 5, "agree": True},
        index=["batched", "per-mask loop"],
    )  # fmt: skip
    found = rp.benchmark_findings(bench).glue
    assert found["bench_apart"] == "overlap (no difference)" and found["bench_agreement"] == "agree"
    assert found["bench_verdict"].startswith("no difference") and found["loop_seconds"] == 2.0
    bench.loc["batched", "q75"] = 1.2
    assert rp.benchmark_findings(bench).glue["bench_apart"] == "do not overlap"


def test_findings_quote_our_numbers_beside_the_drafts(nets):
    runs, loader = nets
    from types import SimpleNamespace

    found = rp.network_findings({"mnist": runs}, {"mnist": SimpleNamespace(train=range(55), val=range(5))})
    assert found.glue["base_acc_mnist"] == pytest.approx(100 * runs[0].test["acc"])
    assert found.glue["n_train_mnist"] == 55 and found.glue["n_val_mnist"] == 5
    mean = 50 * (runs[0].test["acc"] + runs[1].test["acc"])
    assert found.glue["base_mean_mnist"] == pytest.approx(mean) and found.glue["base_low_mnist"] <= mean
    assert found.glue["draft_base_acc_mnist"] == pytest.approx(97.24)
    trials = rp.random_trials(runs, loader, [1, 64], n_trials=4)
    found = rp.trial_findings(trials, "mnist", "MNIST")
    at_64 = trials[trials["n"] == 64]
    acc_64 = next(
        c
        for c in found.comparisons
        if c["quantity"] == "MNIST: mean test accuracy, 64 random nodes removed (mean over networks)"
    )
    network_means = at_64.groupby("network")["acc"].mean()
    assert acc_64["ours"] == pytest.approx(network_means.mean()) and acc_64["draft"] == 0.8485
    low, high = found.glue["low_acc_max_n_mnist"], found.glue["high_acc_max_n_mnist"]
    assert low <= 100 * network_means.mean() <= high
    # the draft's one network is judged by the range of one network's mean, wider than our interval
    r_low, r_high = found.glue["range_low_acc_max_n_mnist"], found.glue["range_high_acc_max_n_mnist"]
    assert r_low < low and r_high > high
    where = "within the 95 % range" if r_low <= 84.85 <= r_high else "outside the 95 % range"
    assert found.glue["draft_where_max_n_mnist"].startswith(where)
    assert acc_64["spread"] == pytest.approx((r_high - 100 * network_means.mean()) / 100)
    assert "one network's mean" in acc_64["spread_what"]
    assert {c["item"] for c in found.comparisons} == {"R-T1", "R-T2"} and len(found.comparisons) == 8
    # and, where the draft gives its intact network, the change from each one's own
    loss_change = next(
        c for c in found.comparisons if c["quantity"].startswith("MNIST: change of the mean test loss")
    )
    assert "1 random node removed" in loss_change["quantity"] and loss_change["draft"] == pytest.approx(
        0.0895 - 0.0879
    )
    assert rp.nodes_removed(8) == "8 random nodes removed"
    at_1 = trials[trials["n"] == 1]
    ours = (at_1["loss"] - at_1["intact_loss"]).groupby(at_1["network"]).mean().mean()
    assert loss_change["ours"] == pytest.approx(ours)
    fashion = rp.trial_findings(
        trials, "fashion-mnist", "Fashion-MNIST"
    ).comparisons  # no intact network given
    assert len(fashion) == 4 and not any("change" in c["quantity"] for c in fashion)
    spread = stats.spread_by_source(trials, "n", "network", "acc")
    assert set(rp.spread_findings(spread, "fashion-mnist", 4).glue) == {
        "share_network_max_n_fashion_mnist",
        "ci_half_max_n_fashion_mnist",
        "mask_se_max_n_fashion_mnist",
    }


def test_evaluation_loader_keeps_the_split_in_large_batches(nets):
    from netshrink import data

    ds = data.ImageDataset(torch.rand(30, 1, 4, 4), torch.randint(0, 10, (30,)))
    splits = data.DataSplits("mnist", "tiny", tuple("0123456789"), ds, ds, ds, {})
    batches = list(rp.evaluation_loader(splits, "val", batch_size=16))
    assert [len(y) for _, y in batches] == [16, 14]


def test_glue_key_makes_a_data_set_name_a_glue_name_part():
    assert rp.glue_key("fashion-mnist") == "fashion_mnist" and rp.glue_key("mnist") == "mnist"


def test_keras_initialisation_is_glorot_uniform_with_zero_biases(tmp_path, monkeypatch):
    from netshrink import cache

    monkeypatch.setenv("NETSHRINK_DATA", str(tmp_path))
    configs = rp.network_configs("mnist", 2, seed=3, hidden=32)
    keras = rp.keras_init_configs(configs)
    assert [c.seed for c in keras] == [3, 4] and keras[0].init != keras[1].init
    assert all(k.key() != c.key() for k, c in zip(keras, configs, strict=True))
    model = cache.initial_model(keras[0])
    limit = (6 / (784 + 32)) ** 0.5
    weight = model.hidden[0].weight
    assert weight.abs().max() <= limit and weight.abs().max() > 0.9 * limit  # Glorot's bound, not PyTorch's
    assert (model.hidden[0].bias == 0).all() and (model.out.bias == 0).all()
    assert torch.equal(cache.initial_model(rp.keras_init_configs(configs)[0]).hidden[0].weight, weight)


def _trials(means: dict[int, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"network": k, "n": 64, "trial": t, "acc": m + 0.001 * t, "loss": 0.1}
            for k, m in means.items()
            for t in range(3)
        ]
    )


def test_init_table_and_its_verdict():
    class Net:
        def __init__(self, acc):
            self.test = {"acc": acc}

    ours = _trials({0: 0.78, 1: 0.79, 2: 0.785})
    near = _trials({0: 0.735, 1: 0.745, 2: 0.74})
    nets = {"ours": [Net(0.87)] * 3, "keras": [Net(0.86)] * 3}
    table = rp.init_table({"ours": ours, "keras": near}, 64, "R-T4", nets)
    assert table.loc["draft 004", "mean"] == pytest.approx(0.7394)
    assert table.loc["keras", "intact mean"] == pytest.approx(0.86) and table.loc["ours", "networks"] == 3
    # paired by seed: keras - ours = -0.045 on every network, the gap to the draft's -0.0456
    assert table.loc["paired difference", "mean"] == pytest.approx(-0.045)
    assert table.loc["paired difference", "networks"] == 3
    assert rp.init_verdict(table, "ours", "keras").startswith(
        "moves the mean towards the draft's by -4.50 points"
    )
    # a shift of each network inside the spread between networks: the pairing says no difference
    same = rp.init_table({"ours": ours, "keras": _trials({0: 0.781, 1: 0.788, 2: 0.786})}, 64, "R-T4", nets)
    assert rp.init_verdict(same, "ours", "keras").startswith("changes the mean by +0.00 points")
    assert "no difference: it does not account for the" in rp.init_verdict(same, "ours", "keras")
    away = rp.init_table({"ours": ours, "keras": _trials({0: 0.80, 1: 0.81, 2: 0.806})}, 64, "R-T4", nets)
    assert rp.init_verdict(away, "ours", "keras").startswith("moves the mean away from the draft's")
    found = rp.init_findings(table, "fashion-mnist", "ours", "keras").glue
    assert found["init_mean_fashion_mnist"] == pytest.approx(100 * table.loc["keras", "mean"])
