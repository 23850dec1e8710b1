"""One cause of a gap tested in the Random node pruning chapter (R-S2): the same networks trained
from Keras's default initialisation instead of PyTorch's, judged network by network (same seeds)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from netshrink import cache, published, stats
from netshrink.cache import TrainResult
from netshrink.findings import Findings
from netshrink.stats import network_means
from netshrink.train import TrainConfig

__all__ = ["init_findings", "init_table", "init_verdict", "keras_init_configs"]


def keras_init_configs(configs: Sequence[TrainConfig]) -> list[TrainConfig]:
    """The same networks started from Keras's default initialisation of a Dense layer
    (Glorot-uniform weights, zero biases) instead of PyTorch's (weights and biases uniform in
    +-1/sqrt(fan_in)), drawn from each configuration's seed; the initial weights are stored
    (`cache.store_init`) and named by the returned configurations' `init`."""
    out = []
    for config in configs:
        model = cache.initial_model(config)
        torch.manual_seed(config.seed)
        for module in model.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        out.append(dataclasses.replace(config, init=cache.store_init(model)))
    return out


def init_table(
    trials: Mapping[str, pd.DataFrame], n: int, item: str, nets: Mapping[str, Sequence[TrainResult]]
) -> pd.DataFrame:
    """Mean test accuracy after removing `n` random nodes under each initialisation (`trials`:
    name -> `random_trials` frame, the same seeds as network numbers), mean over networks with its
    95 % interval, the intact networks' mean test accuracy (`nets`, by the same names); then the
    paired difference (second initialisation minus first, network by network) with its 95 %
    interval, and the draft's mean from `item`'s table. Index: the initialisations,
    'paired difference', 'draft 004'."""
    rows, per_net = {}, {}
    for name, frame in trials.items():
        at_n = frame[frame["n"] == n]
        means = network_means(at_n)
        per_net[name] = at_n.groupby("network")["acc"].mean()
        rows[name] = {
            "mean": means.loc[n, "mean"],
            "ci95 low": means.loc[n, "low"],
            "ci95 high": means.loc[n, "high"],
            "networks": frame["network"].nunique(),
            "intact mean": sum(r.test["acc"] for r in nets[name]) / len(nets[name]),
        }
    first, second = list(per_net.values())[:2] if len(per_net) > 1 else (None, None)
    if first is not None:
        paired = (second - first).dropna()  # the networks both initialisations trained (same seeds)
        mean, low, high = stats.mean_ci(paired.to_numpy())
        rows["paired difference"] = {
            "mean": mean,
            "ci95 low": low,
            "ci95 high": high,
            "networks": len(paired),
        }
    draft = published.RANDOM_PRUNING_TABLES[item]
    rows["draft 004"] = {"mean": draft.loc["mean", n] if n in draft.columns else float("nan")}
    return pd.DataFrame(rows).T.rename_axis("initialisation")


def init_verdict(table: pd.DataFrame, ours: str, other: str) -> str:
    """What starting from `other`'s initialisation instead of `ours` does to the mean, judged by
    the paired difference over the same seeds (rows of `init_table`), set against the gap to the
    draft's mean, in words for the prose (points)."""
    d = table.loc["paired difference"]
    gap = 100 * (float(table.loc["draft 004", "mean"]) - float(table.loc[ours, "mean"]))
    change, low, high = 100 * d["mean"], 100 * d["ci95 low"], 100 * d["ci95 high"]
    nets = int(d["networks"])
    how = f"by {change:+.2f} points (paired 95 % interval {low:+.2f} to {high:+.2f} over {nets} networks)"
    gap_words = f"the {gap:+.2f}-point gap to the draft's"
    if low <= 0 <= high:
        return f"changes the mean {how}, no difference: it does not account for {gap_words}"
    if (change > 0) == (gap > 0):
        return f"moves the mean towards the draft's {how}, {change / gap:.0%} of {gap_words}"
    return f"moves the mean away from the draft's {how}; {gap_words} is the wider"


def init_findings(table: pd.DataFrame, dataset: str, ours: str, other: str) -> Findings:
    """`init_table`'s numbers for the prose, in percent (`init_*`: `other`'s row, `init_ours_*`:
    `ours`'s), and `init_verdict`."""
    key, row, base = dataset.replace("-", "_"), table.loc[other], table.loc[ours]
    return Findings(
        {
            f"init_mean_{key}": 100 * row["mean"],
            f"init_low_{key}": 100 * row["ci95 low"],
            f"init_high_{key}": 100 * row["ci95 high"],
            f"init_intact_{key}": 100 * row["intact mean"],
            f"init_ours_mean_{key}": 100 * base["mean"],
            f"init_ours_low_{key}": 100 * base["ci95 low"],
            f"init_ours_high_{key}": 100 * base["ci95 high"],
            f"init_ours_intact_{key}": 100 * base["intact mean"],
            f"init_verdict_{key}": init_verdict(table, ours, other),
        }
    )
