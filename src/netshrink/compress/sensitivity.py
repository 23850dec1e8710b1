"""Per-layer filter-pruning sensitivity (Li et al. 2017, their Figure 2b) for any model whose
conv layers `prune.remove_filters` can follow."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from netshrink.checks import check_examples, check_model
from netshrink.compress.graph import follow_filters
from netshrink.compress.prune import remove_filters, smallest_l1_filters
from netshrink.devices import to_device
from netshrink.metrics import evaluate

__all__ = [
    "Sensitivity",
    "filter_sensitivity",
]


@dataclass
class Sensitivity:
    """Accuracy (fraction) and filters left with each fraction `rates[j]` of each conv
    `layers[i]`'s smallest-L1 filters removed, no retraining: (len(layers), len(rates)) each."""

    layers: list[str]
    rates: list[float]
    filters_left: torch.Tensor
    accuracy: torch.Tensor


@torch.no_grad()
def filter_sensitivity(
    model: nn.Module, loader: Iterable, layers: Sequence[str], rates: Sequence[float]
) -> Sensitivity:
    """Li et al.'s per-layer sensitivity (their Figure 2b): the model's accuracy with the fraction
    `rate` of one conv layer's filters of smallest L1 norm removed (`remove_filters`), for every
    layer and rate, on the batches of `loader` (made once, on the model's device)."""
    device = check_model(model)
    for layer in layers:
        follow_filters(model, layer)
    batches = [to_device((x, y), device) for x, y in loader]
    check_examples(sum(len(y) for _, y in batches), "filter_sensitivity")
    left = torch.zeros(len(layers), len(rates), dtype=torch.long)
    accuracy = torch.zeros(len(layers), len(rates), dtype=torch.float64)
    for i, layer in enumerate(layers):
        for j, rate in enumerate(rates):
            keep = smallest_l1_filters(model.get_submodule(layer), rate)
            pruned = remove_filters(model, layer, keep)
            left[i, j], accuracy[i, j] = int(keep.sum()), evaluate(pruned, batches)["acc"]
    return Sensitivity(list(layers), [float(r) for r in rates], left, accuracy)
