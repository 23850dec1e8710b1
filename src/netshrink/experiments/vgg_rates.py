"""The VGG-16 case study's pruning rates (Li et al. 2017): each conv layer's accuracy without
retraining (the sensitivity), and the rates of the smallest tolerance whose pruned network runs a
target speedup faster, measured (`compress.filters` holds the algorithms; `vgg_case_study`
re-exports these for the chapter).

Accuracies are fractions and tolerances points (percentage points of accuracy, the unit of the
chapter's `prune_tol`); rates are fractions of a layer's filters removed, by layer; times are
seconds. The rates chosen, their tolerance and their measured speedup travel as a `ChosenRates`,
whose `table` is what the page shows of the candidates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import pandas as pd
import torch
from torch import nn

from netshrink import measure, models, train
from netshrink.compress import filters
from netshrink.compress.filters import prune_filters
from netshrink.compress.fold import fold_batch_norm
from netshrink.compress.sensitivity import filter_sensitivity
from netshrink.experiments.vgg_prose import rates_text
from netshrink.progress import update as report_progress

K = TypeVar("K")  # a candidate's key

__all__ = [
    "ACCURACY", "Candidate", "ChosenRates", "measured_speedups", "rates_for_speedup",
    "rates_from_sensitivity", "sensitivity", "tolerance_candidates",
]  # fmt: skip

ACCURACY = "validation accuracy"  # the `sensitivity` table's accuracy column (a fraction)


@torch.no_grad()
def sensitivity(
    model: nn.Module, loader: Iterable, layers: Sequence[str], rates: Sequence[float]
) -> pd.DataFrame:
    """V-F1: the accuracy on `loader` (the chapter's validation split; a fraction, column
    `ACCURACY`) with the fraction `rate` of one conv layer's filters of smallest L1 norm removed,
    no retraining (Li et al. 2017, Figure 2b; `compress.sensitivity`, which follows any traceable
    model). One row per (layer, rate): layer, rate, filters left, validation accuracy."""
    report_progress(stage="filter-pruning sensitivity")
    found = filter_sensitivity(model, loader, layers, rates)
    return pd.DataFrame(
        [
            {
                "layer": layer,
                "rate": rate,
                "filters left": int(found.filters_left[i, j]),
                ACCURACY: float(found.accuracy[i, j]),
            }  # fmt: skip
            for i, layer in enumerate(found.layers)
            for j, rate in enumerate(found.rates)
        ]
    )


def _points_by_layer(table: pd.DataFrame) -> dict[str, dict[float, float]]:
    """The `sensitivity` table as `filters.Accuracy` in percent, the unit the tolerances (points)
    are in: layer -> {rate: 100 x accuracy}."""
    if ACCURACY not in table:
        raise ValueError(f"sensitivity has no column {ACCURACY!r}; its columns: {', '.join(map(str, table))}")
    return {
        layer: {rate: 100 * float(acc) for rate, acc in zip(group["rate"], group[ACCURACY], strict=True)}
        for layer, group in table.groupby("layer", sort=False)
    }


def rates_from_sensitivity(
    table: pd.DataFrame, base_acc: float, tol: float, max_rate: float
) -> dict[str, float]:
    """Per layer, the largest rate whose accuracy without retraining stays within `tol` points of
    `base_acc` (a fraction), at most `max_rate`; 0 when none does (`filters.rates_within`)."""
    return filters.rates_within(_points_by_layer(table), 100 * base_acc, tol, max_rate)


def tolerance_candidates(
    sensitivity: pd.DataFrame, base_acc: float, prune_tol: float, max_rate: float
) -> dict[float, dict[str, float]]:
    """`filters.tolerance_candidates` of the `sensitivity` table below `base_acc` (a fraction), in
    steps of `prune_tol` points: tolerance (points) -> rates by layer."""
    return filters.tolerance_candidates(_points_by_layer(sensitivity), 100 * base_acc, prune_tol, max_rate)


@dataclass(frozen=True)
class Candidate:
    """One tolerance's pruning, timed: the `tolerance` (points), its `rates` (layer -> fraction
    of filters removed), the `parameters` left, the median `seconds` of a forward pass on the
    timing batch and the `speedup` over the unpruned network, timed in the same run."""

    tolerance: float
    rates: dict[str, float]
    parameters: int
    seconds: float
    speedup: float


@dataclass(frozen=True)
class ChosenRates:
    """The pruning rates a chapter uses (layer -> fraction of filters removed), the `tolerance`
    (points) that gave them, their measured `speedup` (None when nothing was timed) and the
    timed `candidates` they were chosen from (none when nothing was timed)."""

    rates: dict[str, float]
    tolerance: float
    speedup: float | None = None
    candidates: tuple[Candidate, ...] = field(default=())

    def table(self) -> pd.DataFrame:
        """The candidates as the page shows them, by `tolerance (points)`: the rates as text (%,
        layer order; made here, for reading only), parameters, seconds, speedup."""
        columns = ["tolerance (points)", "rates (%)", "parameters", "seconds", "speedup"]
        rows = [
            (c.tolerance, rates_text(c.rates), c.parameters, c.seconds, c.speedup) for c in self.candidates
        ]
        return pd.DataFrame(rows, columns=columns).set_index("tolerance (points)")


def measured_speedups(
    model: nn.Module, candidates: Mapping[K, nn.Module], images: torch.Tensor, *, repeats: int
) -> tuple[dict[K, float], dict[K, float]]:
    """The chapter's speed measure: each candidate's median seconds on the batch `images`
    (N, 3, 32, 32) and its speedup over `model`, every model with its batch norms folded (as
    deployed), all timed in turn with `model` in one run (`measure.time_images`, one batch,
    default layout)."""
    named = {f"candidate {i}": fold_batch_norm(m) for i, m in enumerate(candidates.values())}
    named["unpruned"] = fold_batch_norm(model)
    timed = measure.time_images(named, images, batch_size=len(images), repeats=repeats)
    seconds = {key: float(timed[f"candidate {i}"]) for i, key in enumerate(candidates)}
    return seconds, {key: float(timed["unpruned"]) / s for key, s in seconds.items()}


def rates_for_speedup(
    model: nn.Module,
    sensitivity: pd.DataFrame,
    base_acc: float,
    images: torch.Tensor,
    *,
    prune_tol: float,
    max_rate: float,
    speedup: float,
    multiple_of: int = 1,
    repeats: int = 10,
) -> ChosenRates:
    """Pruning rates by accuracy and measured time: those of the smallest tolerance (in steps of
    `prune_tol` points below `base_acc`, a fraction; `tolerance_candidates`) whose pruned network
    (`prune_filters` with `multiple_of`) runs at least `speedup` times as fast as `model` on the
    batch `images` (N, 3, 32, 32), timed by `measured_speedups` (batch norms folded, all
    candidates in turn in one run), with every candidate timed. With `speedup` 1 the rates at
    `prune_tol`, nothing timed."""
    if not train.finite(speedup) or speedup < 1:
        raise ValueError(f"target_speedup={speedup!r} is out of range; allowed: a number of at least 1")
    if speedup == 1:
        return ChosenRates(rates_from_sensitivity(sensitivity, base_acc, prune_tol, max_rate), prune_tol)
    candidates = tolerance_candidates(sensitivity, base_acc, prune_tol, max_rate)
    report_progress(stage="timing the pruning candidates")
    pruned = {tol: prune_filters(model, rates, multiple_of) for tol, rates in candidates.items()}
    seconds, speedups = measured_speedups(model, pruned, images, repeats=repeats)
    timed = tuple(
        Candidate(tol, rates, models.count_parameters(pruned[tol]), seconds[tol], speedups[tol])
        for tol, rates in candidates.items()
    )
    chosen = filters.first_fast_enough(speedups, speedup, max_rate)
    return ChosenRates(candidates[chosen], chosen, speedups[chosen], timed)
