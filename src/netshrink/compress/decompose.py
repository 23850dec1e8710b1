"""Convolutional and linear layers replaced by sequences of smaller layers, from tensor
decompositions of their weights computed by TensorLy (PyTorch backend).

A conv weight is W (T, S, kh, kw): T output channels, S input channels. Every method returns
an `nn.Sequential` of plain `nn.Conv2d` / `nn.Linear` layers (its 1x1 convs are `PointwiseConv`,
an `nn.Conv2d` that runs as a matrix product; for `tt_linear`, a `TTLinear`) whose product is
the decomposed weight, so the result prints like the drafts' listings, counts in
`torch.utils.flop_counter` and fine-tunes with any optimiser.
(tltorch's factorized layers keep a factorized tensor behind functional convs: its CP and
Tucker convs have no Jaderberg, BTD or Tucker-1 form, and its tensor-train linear runs one
einsum over all cores whose contraction path may rebuild the matrix; so the layers here are
built from TensorLy's factors directly.)

| method | conv layers | rank |
| --- | --- | --- |
| `tucker2` | 1x1 S->R1, kxk R1->R2 (stride, padding), 1x1 R2->T (+bias) | (R1, R2) |
| `tucker1` | kxk S->R, 1x1 R->T (+bias) | R |
| `cp` | 1x1 S->R, kx1 depthwise, 1xk depthwise, 1x1 R->T (+bias) | R |
| `tt` | 1x1 S->r1, kx1 r1->r2, 1xk r2->r3, 1x1 r3->T (+bias) | (r1, r2, r3) |
| `jaderberg` | kx1 S->R, 1xk R->T (+bias) | R |
| `btd` | 1x1 S->n R1, grouped kxk (n groups) -> n R2, 1x1 -> T (+bias) | (R1, R2), n blocks |

Linear layers (W: out x in): `tucker1` (in->R->out, W = A G), `tucker2` (in->R_in->R_out->out,
W = A G B^T) and `tt` (a tensor-train matrix, Novikov et al. 2015).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from netshrink.checks import check_finite, check_model
from netshrink.compress.conv import (
    btd_conv,
    cp_conv,
    cp_layers,
    jaderberg_conv,
    tt_conv,
    tucker1_conv,
    tucker2_conv,
)
from netshrink.compress.layers import PointwiseConv
from netshrink.compress.linear import TTLinear, tt_linear, tucker1_linear, tucker2_linear
from netshrink.compress.ranks import (
    RANK_RULES,
    layer_parameters,
    rank_for_budget,
    resolve_rank,
    select_rank,
    unfold,
)
from netshrink.models import layer_names

__all__ = [  # the layer functions live in conv, linear and ranks; this is the one place to import them from
    "CONV_METHODS", "LINEAR_METHODS", "RANK_RULES", "PointwiseConv", "TTLinear", "btd_conv", "check_method",
    "cp_conv", "cp_layers", "decompose_layer", "decompose_model", "jaderberg_conv",
    "layer_parameters", "normalise_plan", "rank_for_budget", "resolve_plan", "select_rank", "tt_conv",
    "tt_linear", "tucker1_conv", "tucker1_linear", "tucker2_conv", "tucker2_linear", "unfold",
]  # fmt: skip

CONV_METHODS = ("tucker2", "tucker1", "cp", "tt", "jaderberg", "btd")
LINEAR_METHODS = ("tucker2", "tucker1", "tt")


def decompose_layer(module: nn.Module, method: str, rank: Any = None, **options: Any) -> nn.Module:
    """Decompose one Conv2d or Linear by `method` (see the module docstring) at `rank`:
    explicit ranks, 'vbmf', or an energy fraction. `options`: `n_blocks` (btd), `in_modes`
    and `out_modes` (tt linear)."""
    check_method(module, method)
    check_model(module, "module")
    check_finite(
        "module weight", module.weight, "a decomposition of NaN or infinite weights does not converge"
    )
    if rank is None:
        raise ValueError("rank is missing; allowed: integers, " + ", ".join(RANK_RULES))
    rank = resolve_rank(module, method, rank)
    allowed = {"btd": {"n_blocks", "sweeps"}, "tt": {"in_modes", "out_modes"}, "cp": {"n_iter_max", "seed"}}
    extra = set(options) - allowed.get(method, set())
    if extra:
        raise ValueError(f"options {sorted(extra)} do not apply to {method!r}")
    if isinstance(module, nn.Linear):
        if method == "tt":
            if "in_modes" not in options or "out_modes" not in options:
                raise ValueError("method 'tt' on a Linear needs in_modes and out_modes")
            return tt_linear(module, options["in_modes"], options["out_modes"], rank)
        return {"tucker1": tucker1_linear, "tucker2": tucker2_linear}[method](module, rank)
    if method == "btd":
        if "n_blocks" not in options:
            raise ValueError("method 'btd' needs n_blocks")
        return btd_conv(module, rank, **options)
    functions = {
        "tucker2": tucker2_conv, "tucker1": tucker1_conv, "cp": cp_conv, "tt": tt_conv,
        "jaderberg": jaderberg_conv,
    }  # fmt: skip
    return functions[method](module, rank, **options)


def check_method(module: nn.Module, method: Any) -> str:
    """`method` if it applies to `module` (a Conv2d or Linear), else a ValueError naming both."""
    if isinstance(module, nn.Conv2d):
        if method not in CONV_METHODS:
            raise ValueError(f"method={method!r} for a Conv2d; allowed: {', '.join(CONV_METHODS)}")
    elif isinstance(module, nn.Linear):
        if method not in LINEAR_METHODS:
            raise ValueError(f"method={method!r} for a Linear; allowed: {', '.join(LINEAR_METHODS)}")
    else:
        raise ValueError(f"module is {type(module).__name__}; allowed: nn.Conv2d and nn.Linear")
    return method


def normalise_plan(plan: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A plan maps a layer name to `[method, rank]` or `{"method": .., "rank": .., **options}`."""
    out = {}
    for name, spec in plan.items():
        if isinstance(spec, Mapping):
            if "method" not in spec:
                raise ValueError(f"plan[{name!r}]={dict(spec)} has no 'method'")
            out[name] = dict(spec)
        elif isinstance(spec, Sequence) and not isinstance(spec, str) and len(spec) == 2:
            out[name] = {"method": spec[0], "rank": spec[1]}
        else:
            raise ValueError(f"plan[{name!r}]={spec!r} must be [method, rank] or a dict with 'method'")
    return out


def decompose_model(model: nn.Module, plan: Mapping[str, Any]) -> nn.Module:
    """A copy of `model` with each layer named in `plan` replaced by its decomposition;
    `model` itself is left intact."""
    plan = normalise_plan(plan)
    names = dict(model.named_modules())
    for name in plan:
        if name not in names or name == "":
            raise ValueError(f"layer {name!r} is not in the model; allowed: {', '.join(layer_names(model))}")
    new = copy.deepcopy(model)
    for name, spec in plan.items():
        spec = dict(spec)
        method, rank = spec.pop("method"), spec.pop("rank", None)
        try:
            replacement = decompose_layer(new.get_submodule(name), method, rank, **spec)
        except ValueError as err:
            raise ValueError(f"layer {name!r}: {err}") from None
        parent_name, _, child = name.rpartition(".")
        setattr(new.get_submodule(parent_name), child, replacement)
    return new


def resolve_plan(model: nn.Module, plan: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """`plan` normalised, with rank rules like 'vbmf' replaced by the explicit ranks they give
    on `model` (so the plan rebuilds the same model and can key a cache)."""
    out = {}
    for name, spec in normalise_plan(plan).items():
        layer = model.get_submodule(name) if name in dict(model.named_modules()) else None
        if layer is None:
            raise ValueError(f"layer {name!r} is not in the model; allowed: {', '.join(layer_names(model))}")
        rank = spec.get("rank")
        out[name] = {**spec, "rank": list(rank) if isinstance(rank, tuple) else rank}
        try:
            check_method(layer, spec["method"])
        except ValueError as err:
            raise ValueError(f"layer {name!r}: {err}") from None
        if rank is not None:
            resolved = resolve_rank(layer, spec["method"], rank)
            out[name]["rank"] = list(resolved) if isinstance(resolved, tuple) else resolved
    return out
