"""Decomposition plans for a whole network (`decompose.decompose_model` takes them): Tucker-2
of its convs, or of its hidden Linear layers, with ranks by a rule (`ranks.RANK_RULES`)."""

from __future__ import annotations

from torch import nn

from netshrink.compress.decompose import resolve_plan
from netshrink.compress.graph import output_layer
from netshrink.models import conv_layers, layer_names

__all__ = ["classifier_plan", "tucker_plan"]


def tucker_plan(model: nn.Module, rule: str | float = "vbmf", skip_first: bool = True) -> dict[str, list]:
    """Tucker-2 of every conv (but the first, 3 input channels, with `skip_first`) with ranks by `rule`."""
    layers = conv_layers(model)[1 if skip_first else 0 :]
    return resolve_plan(model, {name: ["tucker2", rule] for name in layers})


def classifier_plan(model: nn.Module, rule: str | float = "vbmf") -> dict[str, list]:
    """Tucker-2 of the hidden Linear layers (every Linear but the output layer, found in the
    traced graph) with ranks by `rule`."""
    out = output_layer(model)
    return resolve_plan(model, {n: ["tucker2", rule] for n in layer_names(model, nn.Linear) if n != out})
