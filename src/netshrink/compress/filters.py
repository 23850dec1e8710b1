"""Filter pruning of a whole network (Li et al. 2017): rates per conv layer from its accuracy
without retraining (the sensitivity, `sensitivity.filter_sensitivity`), the tolerances whose
rates differ, and the pruning at those rates. Choosing among the candidates by measured time is
the caller's (compress times nothing): `first_fast_enough` takes the speedups it measured.

Accuracies and tolerances here are in one unit of the caller's choosing (the VGG chapter uses
percent and points); `accuracy` maps each layer to {rate: accuracy with that rate removed}.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from torch import nn

from netshrink.compress.graph import prunable_convs
from netshrink.compress.prune import remove_filters, smallest_l1_filters

__all__ = ["first_fast_enough", "prune_filters", "rates_within", "tolerance_candidates"]

Accuracy = Mapping[str, Mapping[float, float]]  # layer -> {rate: accuracy without retraining}


def rates_within(accuracy: Accuracy, base_acc: float, tol: float, max_rate: float) -> dict[str, float]:
    """Per layer, the largest rate whose accuracy without retraining stays within `tol` of
    `base_acc`, at most `max_rate`; 0 when none does."""
    rates = {}
    for layer, by_rate in accuracy.items():
        ok = [rate for rate, acc in by_rate.items() if acc >= base_acc - tol and rate <= max_rate]
        rates[layer] = float(max(ok)) if ok else 0.0
    return rates


def tolerance_candidates(
    accuracy: Accuracy, base_acc: float, step: float, max_rate: float
) -> dict[float, dict[str, float]]:
    """`rates_within` at the tolerances `step`, 2 `step`, 3 `step`, ... until every layer is at
    its largest tested rate: each distinct set of rates once, under the smallest tolerance that
    gives it."""
    if not (isinstance(step, int | float) and math.isfinite(step) and step > 0):
        raise ValueError(f"prune_tol={step!r} is out of range; allowed: a number above 0")
    top = rates_within(accuracy, base_acc, math.inf, max_rate)
    found: dict[float, dict[str, float]] = {}
    k = 1
    while not found or list(found.values())[-1] != top:
        rates = rates_within(accuracy, base_acc, k * step, max_rate)
        if rates not in found.values():
            found[k * step] = rates
        k += 1
    return found


def first_fast_enough(speedups: Mapping[float, float], target: float, max_rate: float) -> float:
    """The smallest tolerance whose candidate measured at least `target` times as fast
    (`speedups`: tolerance -> measured speedup, in increasing tolerance); a ValueError naming
    the fastest when none does."""
    for tol, speedup in speedups.items():
        if speedup >= target:
            return tol
    raise ValueError(
        f"target_speedup={target:g} is out of reach: the fastest pruning candidate (every layer at "
        f"up to max_rate={max_rate:g}) measured {max(speedups.values()):.2f}x; allowed: a lower "
        "target_speedup"
    )


def prune_filters(model: nn.Module, rates: Mapping[str, float], multiple_of: int = 1) -> nn.Module:
    """Remove, in each named conv layer in turn, the fraction `rates[layer]` of filters of smallest
    L1 norm (on the weights the earlier removals left, Li et al.'s greedy variant), physically,
    with their batch-norm channels and the next layer's inputs; the filters kept rounded down to
    a multiple of `multiple_of` (`prune.smallest_l1_filters`)."""
    allowed = prunable_convs(model)
    for layer, rate in rates.items():
        if layer not in allowed:
            raise ValueError(
                f"layer={layer!r} is not a conv layer it can follow; allowed values: {', '.join(allowed)}"
            )
        keep = smallest_l1_filters(model.get_submodule(layer), rate, multiple_of)
        if not keep.all():
            model = remove_filters(model, layer, keep)
    return model
