import numpy as np
import pandas as pd
import pytest

from netshrink import stats


def test_describe_has_the_drafts_rows_and_one_column_per_group():
    df = pd.DataFrame({"n": [1, 1, 1, 2, 2, 2], "acc": [0.1, 0.2, 0.3, 0.5, 0.5, 0.8]})
    table = stats.describe(df, "n", "acc")
    assert list(table.index) == list(stats.DESCRIBE_ROWS) and list(table.columns) == [1, 2]
    assert table.loc["mean", 1] == pytest.approx(0.2) and table.loc["50%", 2] == pytest.approx(0.5)


def test_beside_draft_interleaves_rows():
    ours = pd.DataFrame({1: [0.5, 0.1]}, index=["mean", "std"])
    draft = pd.DataFrame({1: [0.6, 0.2], 2: [0.0, 0.0]}, index=["mean", "std"])
    table = stats.beside_draft(ours, draft, "004")
    assert list(table.index) == [("mean", "ours"), ("mean", "004"), ("std", "ours"), ("std", "004")]
    assert list(table.columns) == [1]


def test_mean_ci_matches_the_t_interval():
    mean, low, high = stats.mean_ci(np.array([1.0, 2.0, 3.0, 4.0]))
    assert mean == 2.5
    assert high - mean == pytest.approx(3.182446 * np.std([1, 2, 3, 4], ddof=1) / 2, rel=1e-5)
    assert low == pytest.approx(2 * mean - high)


def test_spread_recovers_the_variance_components():
    rng = np.random.default_rng(0)
    rows = []
    for net in range(40):
        offset = rng.normal(0, 2.0)  # between networks: sd 2
        for _ in range(200):
            rows.append({"n": 1, "network": net, "acc": offset + rng.normal(0, 1.0)})  # within: sd 1
    table = stats.spread_by_source(pd.DataFrame(rows), "n", "network", "acc")
    assert table.loc[1, "sd within a network (masks)"] == pytest.approx(1.0, rel=0.05)
    assert table.loc[1, "sd between networks"] == pytest.approx(2.0, rel=0.3)
    assert 0.6 < table.loc[1, "share of variance from the network"] < 0.9
    assert table.loc[1, "ci95 low"] < table.loc[1, "mean"] < table.loc[1, "ci95 high"]


def test_mean_half_width_is_the_half_width_of_mean_ci_and_one_more_range_widens_it():
    values = np.array([1.0, 2.0, 4.0, 7.0])
    mean, low, high = stats.mean_ci(values)
    assert stats.mean_half_width(values.std(ddof=1), 4) == pytest.approx(high - mean)
    r_low, r_high = stats.one_more_range(values)
    assert r_high - mean == pytest.approx((high - mean) * 5**0.5)
    assert r_low == pytest.approx(2 * mean - r_high)
