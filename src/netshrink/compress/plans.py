"""Decomposition plans for a whole network (`decompose.decompose_model` takes them): Tucker-2
of its convs, or of its hidden Linear layers, with ranks by a rule (`ranks.RANK_RULES`), by a
fraction k/n of the channels, or by a parameter budget per layer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import nn

from netshrink.compress.decompose import rank_for_budget, resolve_plan
from netshrink.compress.graph import output_layer
from netshrink.models import conv_layers, count_parameters, layer_names

__all__ = ["budget_plan", "classifier_plan", "k_plan", "tucker_plan"]


def tucker_plan(model: nn.Module, rule: str | float = "vbmf", skip_first: bool = True) -> dict[str, list]:
    """Tucker-2 of every conv (but the first, 3 input channels, with `skip_first`) with ranks by `rule`."""
    layers = conv_layers(model)[1 if skip_first else 0 :]
    return resolve_plan(model, {name: ["tucker2", rule] for name in layers})


def classifier_plan(model: nn.Module, rule: str | float = "vbmf") -> dict[str, list]:
    """Tucker-2 of the hidden Linear layers (every Linear but the output layer, found in the
    traced graph) with ranks by `rule`."""
    out = output_layer(model)
    return resolve_plan(model, {n: ["tucker2", rule] for n in layer_names(model, nn.Linear) if n != out})


def k_plan(model: nn.Module, k: int, layers: Sequence[str], n: int = 8) -> dict[str, list]:
    """Tucker-2 of every layer in `layers` with ranks k/n of its input and output channels
    (rounded up, at least 1)."""
    if not 1 <= k <= n:
        raise ValueError(f"k={k} is out of range; allowed: 1..{n}")
    plan = {}
    for name in layers:
        T, S = model.get_submodule(name).weight.shape[:2]
        plan[name] = ["tucker2", [max(1, math.ceil(k * S / n)), max(1, math.ceil(k * T / n))]]
    return plan


def budget_plan(
    model: nn.Module, method: str, layers: Sequence[str], fraction: float, n_blocks: int = 2
) -> dict[str, dict[str, Any]]:
    """For each conv in `layers`, `method` at the largest rank within `fraction` of its parameters."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction={fraction} is out of range; allowed: (0, 1)")
    options = {"n_blocks": n_blocks} if method == "btd" else {}
    plan = {}
    for name in layers:
        layer = model.get_submodule(name)
        budget = int(fraction * count_parameters(layer))
        plan[name] = {
            "method": method,
            "rank": rank_for_budget(layer, method, budget, **options),
            **options,
        }
    return plan
