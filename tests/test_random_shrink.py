"""Algorithm 2 of the Random node pruning chapter (`experiments.random_shrink`), on tiny inputs."""

import pandas as pd
import pytest
import torch
from conftest import synthetic_batches, trained_mlps

from netshrink.compress import prune
from netshrink.experiments import random_shrink as rs


@pytest.fixture(scope="module")
def nets():
    runs, loader = trained_mlps(128, 5)
    other = synthetic_batches(n=2, seed=7)
    return runs, {"train": loader, "val": other, "test": other}


def test_shrink_records_as_tables(nets):
    runs, loaders = nets
    result = prune.shrink_randomly(runs[0].model, "hidden.0", 32, loaders["train"], n_runs=2)
    steps = rs.shrink_steps(result)
    assert len(steps) == 2 * 5 and list(steps.columns[:3]) == ["run", "step", "removed"]
    last = steps[(steps["step"] == 4) & (steps["run"] == 1)].iloc[0]
    assert last["removed"] == int((~result.keep[1]).sum()) and last["loss"] == float(result.loss[4, 1])


def test_each_reading_decides_on_its_split_by_its_rule(nets):
    runs, loaders = nets
    steps, final = rs.shrink_networks(runs, loaders, [8], n_runs=3, reading="draft", seed=1)
    assert set(final["network"]) == {0, 1} and set(final["reading"]) == {"draft"} and len(final) == 2 * 3
    # the draft's reading decides on the training data: its kept loss and accuracy never get worse there
    for _, run in steps.groupby(["network", "run"]):
        assert (run["loss"].diff().dropna() <= 1e-12).all() and (run["acc"].diff().dropna() >= 0).all()
    by_hand = prune.shrink_randomly(
        runs[1].model, "hidden.0", 8, loaders["train"], n_runs=3,
        generator=torch.Generator().manual_seed(1000 + 8 + 10_000), rule="loss and accuracy",
    )  # fmt: skip
    assert final[final["network"] == 1]["removed"].tolist() == by_hand.removed[-1].tolist()
    _, val = rs.shrink_networks(runs[:1], loaders, [8], n_runs=3, reading="validation loss", seed=1)
    # on the validation split, whose metrics are the test split's here
    assert val["test_loss"].to_numpy() == pytest.approx(val["loss"].to_numpy())
    with pytest.raises(
        ValueError, match=r"reading='test' is not known; allowed values: 'draft', 'validation loss'"
    ):
        rs.shrink_networks(runs, loaders, [8], n_runs=1, reading="test")


def _final(removed: dict[int, list[list[int]]]) -> pd.DataFrame:
    """removed[n][network] -> nodes removed per run."""
    rows = [
        {"n": n, "network": k, "run": r, "removed": v, "reading": "draft"}
        for n, per_net in removed.items()
        for k, runs in enumerate(per_net)
        for r, v in enumerate(runs)
    ]
    return pd.DataFrame(rows)


def test_shrink_table_describes_network_0_and_the_mean_over_networks():
    final = _final({1: [[6, 8, 10], [12, 12, 12], [9, 9, 9]], 8: [[0, 8, 0], [0, 0, 0], [8, 8, 0]]})
    table = rs.shrink_table(final, "fashion-mnist")
    assert table.loc[("mean", "ours"), 1] == pytest.approx(8.0) and table.loc[("max", "ours"), 1] == 10
    assert table.loc[("mean", "draft 004"), 1] == pytest.approx(5.5)  # draft Table 3.6
    assert table.loc[("mean over networks", "ours"), 1] == pytest.approx((8 + 12 + 9) / 3)
    assert table.loc[("ci95 low", "ours"), 1] < 29 / 3 < table.loc[("ci95 high", "ours"), 1]
    assert ("mean over networks", "draft 004") not in table.index


def test_shrink_findings_place_our_mean_against_the_drafts_range():
    high = _final({1: [[12, 12], [13, 13], [12, 14]], 2: [[4, 4], [4, 4], [4, 4]]})
    low = high.assign(reading="validation loss", removed=high["removed"] - 7)
    found = rs.shrink_findings({"mnist": pd.concat([high, low])}, {"mnist": "MNIST"})
    g = found.glue
    assert g["alg2_first_n"] == 1 and g["table_max_mnist"] == 11 and g["table_min_mnist"] == 5
    assert g["alg2_draft_mean_mnist"] == pytest.approx(76 / 6) and g["alg2_draft_best_n_mnist"] == 1
    assert g["alg2_draft_net0_mnist"] == 12 and g["alg2_val_net0_mnist"] == 5
    assert (
        g["alg2_draft_net0_min_mnist"],
        g["alg2_draft_net0_median_mnist"],
        g["alg2_draft_net0_max_mnist"],
    ) == (12, 12, 12)
    assert g["table_median_mnist"] == 7 and g["alg2_draft_runs"] == 20
    # network means at n = 1: 12, 13, 13; one network's 95 % range 12.67 +- 4.303 * 0.577 * sqrt(4/3)
    assert g["alg2_draft_range_high_mnist"] - g["alg2_draft_mean_mnist"] == pytest.approx(2.868, abs=1e-3)
    # draft R-T3 means 7.4 (n = 1) and 8.9 (n = 2): below the range 9.8-15.5, above 4-4
    assert g["alg2_draft_positions_mnist"] == "below it at n = 1 and above it at n = 2"
    first = found.comparisons[0]
    assert first["spread"] == pytest.approx(2.868, abs=1e-3) and "one network's mean" in first["spread_what"]
    # the draft's mean over its 20 runs (inferred): t(19) * 1.6983 / sqrt(20)
    assert first["draft_spread"] == pytest.approx(2.093 * 1.6983 / 20**0.5, rel=1e-3)
    assert {c["item"] for c in found.comparisons} == {"R-T3"} and len(found.comparisons) == 4
    assert [c["draft"] for c in found.comparisons[:2]] == [7.4, 8.9]


def test_acceptance_sets_groups_beside_independent_single_draws():
    steps = pd.DataFrame(
        {"n": [1] * 5 + [2] * 3, "step": [0, 1, 2, 3, 4, 0, 1, 2],
         "accepted": [True, True, False, True, False, True, False, False], "reading": "draft"}
    )  # fmt: skip
    table = rs.acceptance(steps)
    assert table.loc[1, "share kept"] == pytest.approx(0.5) and table.loc[2, "share kept"] == 0
    assert table.loc[2, "p1 ** n"] == pytest.approx(0.25)
    g = rs.acceptance_findings(steps).glue
    assert g["alg2_kept_first_mnist"] == pytest.approx(50) and g["alg2_kept_second_mnist"] == 0
    assert g["alg2_independent_second_mnist"] == pytest.approx(25) and g["alg2_second_n"] == 2
    assert g["alg2_groups_vs_independent_mnist"] == "less often than"


@pytest.mark.parametrize("bad", ["val", "", None])
def test_unknown_rules_and_readings_are_refused_naming_the_allowed_values(nets, bad):
    runs, loaders = nets
    with pytest.raises(ValueError, match=r"rule=.*allowed values: 'loss', 'loss and accuracy'"):
        prune.check_rule(bad)
    with pytest.raises(ValueError, match=r"rule="):
        prune.shrink_randomly(runs[0].model, "hidden.0", 8, loaders["train"], rule=bad)
    with pytest.raises(ValueError, match=r"reading=.*allowed values"):
        rs.check_reading(bad)
    with pytest.raises(ValueError, match=r"reading=.*allowed values"):
        rs.reading_stem("mnist", bad)
    with pytest.raises(ValueError, match=r"dataset='cifar10' is not known; allowed values: 'mnist'"):
        rs.reading_stem("cifar10", "draft")
    assert rs.reading_stem("mnist", "draft") == "R-T3"  # the draft's item; the book's own apart
    assert rs.reading_stem("fashion-mnist", "validation loss") == "R-S3-fashion-mnist"
    assert prune.check_rule("loss and accuracy") == "loss and accuracy"


def test_shrink_runs_decide_on_one_split_and_report_the_test_metrics_of_the_kept_nodes(nets):
    runs, loaders = nets
    steps, final = rs.shrink_runs(runs[0], loaders["train"], loaders["train"], [8], n_runs=3, seed=1)
    assert len(final) == 3 and set(final["n"]) == {8} and (final["removed"] >= 0).all()
    # decided and tested on the same data: the loss it kept is the test loss of the kept nodes
    assert final["test_loss"].to_numpy() == pytest.approx(final["loss"].to_numpy())
    again, _ = rs.shrink_runs(runs[0], loaders["train"], loaders["train"], [8], n_runs=3, seed=1)
    assert again.equals(steps), "the same seed draws the same nodes"


def test_over_networks_is_the_mean_of_network_means_with_a_t_interval():
    final = pd.DataFrame({"n": [1] * 4, "network": [0, 0, 1, 1], "removed": [100, 102, 110, 112]})
    table = rs.over_networks(final)
    mean, low, high = (float(table.loc[row, 1]) for row in ("mean over networks", "ci95 low", "ci95 high"))
    # network means 101 and 111; t(0.975, 1 df) = 12.706; sd of the two means 7.071
    assert mean == 106 and high - mean == pytest.approx(12.706 * 7.0711 / 2**0.5, rel=1e-3)
    assert low == pytest.approx(2 * mean - high)


def test_draft_positions_group_the_ns_by_where_the_drafts_mean_lies():
    rows = ["mean over networks", "one network range low", "one network range high"]
    table = pd.DataFrame({1: [5.0, 4.0, 6.0], 2: [5.0, 4.0, 6.0], 3: [5.0, 4.0, 6.0]}, index=rows)
    draft = pd.DataFrame({1: [5.5], 2: [7.0], 3: [3.0], 8: [1.0]}, index=["mean"])
    assert (
        rs.draft_positions(table, draft)
        == "within the range of one network's mean at n = 1 and above it at n = 2 and below it at n = 3"
    )


def test_the_bounds_of_a_count_are_clipped_at_zero():
    final = _final({8: [[0, 0], [0, 8], [0, 0]]})  # network means 0, 4, 0: symmetric bounds go below 0
    table = rs.over_networks(final)
    assert table.loc["ci95 low", 8] == 0 and table.loc["one network range low", 8] == 0
    assert (
        table.loc["one network range high", 8]
        > table.loc["ci95 high", 8]
        > table.loc["mean over networks", 8]
    )
