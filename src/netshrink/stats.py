"""Statistics tables over trials: the drafts' describe() rows, confidence intervals, and how much
of a spread comes from the trained network and how much from the random mask."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy import stats

DESCRIBE_ROWS = ("mean", "std", "min", "25%", "50%", "75%", "max")


def describe(df: pd.DataFrame, by: str, value: str) -> pd.DataFrame:
    """The drafts' table: one column per value of `by`, rows mean, std, min, quartiles, max."""
    table = df.groupby(by)[value].describe().T
    return table.loc[list(DESCRIBE_ROWS)]


def beside_draft(ours: pd.DataFrame, draft: pd.DataFrame, draft_name: str = "draft") -> pd.DataFrame:
    """Each statistic row of `ours` followed by the same row of `draft`: index (statistic, source)."""
    draft = draft.reindex(columns=ours.columns)
    pieces = []
    for stat in ours.index:
        pieces.append(ours.loc[[stat]].assign(source="ours"))
        if stat in draft.index:
            pieces.append(draft.loc[[stat]].assign(source=draft_name))
    return pd.concat(pieces).rename_axis("statistic").set_index("source", append=True)


def mean_half_width(sd: float, n: int, level: float = 0.95) -> float:
    """Half-width of the Student-t confidence interval of a mean of `n` values with sample sd `sd`."""
    return float(stats.t.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n))


def mean_ci(values: np.ndarray | pd.Series, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and the Student-t confidence interval of the mean: (mean, low, high)."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = mean_half_width(float(x.std(ddof=1)), len(x), level)
    return mean, mean - half, mean + half


def one_more_range(values: np.ndarray | pd.Series, level: float = 0.95) -> tuple[float, float]:
    """The Student-t prediction range of one more draw from the population the `values` (m, one
    per trained network) sample: mean +- t(m - 1) * sd * sqrt(1 + 1/m). The range to judge one
    other network's number (a draft's) by, where `mean_ci` judges our mean. NaN for m < 2."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float("nan"), float("nan")
    half = mean_half_width(float(x.std(ddof=1)), len(x), level) * np.sqrt(len(x) + 1)  # sd * sqrt(1 + 1/m)
    return float(x.mean()) - half, float(x.mean()) + half


def spread_by_source(
    df: pd.DataFrame, by: str, network: str, value: str, level: float = 0.95
) -> pd.DataFrame:
    """For each value of `by`: the mean of `value` over all networks and masks, a confidence
    interval of it that treats the trained networks as the sampled units (the mean of each
    network's mean), and the split of the variance into between networks (the training run)
    and within a network (the random mask): one-way random-effects decomposition."""
    rows = {}
    for key, group in df.groupby(by):
        per_net = group.groupby(network)[value]
        means, variances, counts = per_net.mean(), per_net.var(ddof=1), per_net.size()
        within = float((variances * (counts - 1)).sum() / (counts - 1).sum())
        between = (
            max(float(means.var(ddof=1)) - within / float(counts.mean()), 0.0) if len(means) > 1 else 0.0
        )
        mean, low, high = mean_ci(means.to_numpy(), level)
        rows[key] = {
            "mean": float(group[value].mean()),
            f"ci{int(level * 100)} low": low,
            f"ci{int(level * 100)} high": high,
            "networks": len(means),
            "masks per network": int(counts.iloc[0]),
            "sd between networks": between**0.5,
            "sd within a network (masks)": within**0.5,
            "share of variance from the network": between / (between + within) if between + within else 0.0,
        }
    return pd.DataFrame(rows).T.rename_axis(by)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two importance vectors."""
    return float(
        stats.spearmanr(torch.as_tensor(a).cpu().numpy(), torch.as_tensor(b).cpu().numpy()).statistic
    )


def network_means(trials: pd.DataFrame, value: str = "acc") -> pd.DataFrame:
    """Per n: the mean over networks of each network's mean `value` and its 95 % interval over
    the networks (`low`, `high`), and the 95 % range of one more network's mean (`range low`,
    `range high`: `one_more_range`), by which a draft's one network is judged. Index n."""
    per_net = trials.groupby(["n", "network"])[value].mean()
    rows = {
        n: (*mean_ci(group.to_numpy()), *one_more_range(group.to_numpy()))
        for n, group in per_net.groupby(level="n")
    }
    return pd.DataFrame(rows, index=["mean", "low", "high", "range low", "range high"]).T.rename_axis("n")
