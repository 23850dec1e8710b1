"""Checks of the models and batches the public functions take, with one message style:
what is wrong with the argument, then `allowed: ...`."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from torch import nn

from netshrink.models import layer_names

FLOAT_DTYPES = (torch.float32, torch.float64)


def check_model(model: nn.Module, name: str = "model") -> torch.device:
    """The device of `model`'s parameters, after checking that it has real weights (not on the
    meta device) of one float dtype (float32 or float64) on one device; a ValueError otherwise."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"{name} is {type(model).__name__}; allowed: a torch.nn.Module")
    params = list(model.parameters())
    if not params:
        raise ValueError(f"{name} has no parameters; allowed: a model with Linear or Conv2d layers")
    if any(p.is_meta for p in params):
        raise ValueError(
            f"{name} has parameters on the meta device (shapes without data); allowed: a model with real "
            f"weights (for example model.to_empty(device='cpu') followed by load_state_dict)"
        )
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in params})
    if len(dtypes) > 1:
        raise ValueError(f"{name} mixes parameter dtypes ({', '.join(dtypes)}); allowed: one dtype, "
                         f"float32 or float64 (model.float())")  # fmt: skip
    if params[0].dtype not in FLOAT_DTYPES:
        raise ValueError(
            f"{name} has {dtypes[0]} parameters; allowed: float32 or float64 (convert with model.float(); "
            f"training in bfloat16 is train.fit's precision setting, over float32 weights)"
        )
    devices = sorted({str(p.device) for p in params})
    if len(devices) > 1:
        raise ValueError(f"{name} has parameters on several devices ({', '.join(devices)}); allowed: one")
    return params[0].device


def check_labels(y: torch.Tensor, n_classes: int, name: str = "labels") -> None:
    """Class indices in 0..n_classes-1 (a ValueError naming the first bad one otherwise)."""
    if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise ValueError(
            f"{name} have dtype {str(y.dtype).removeprefix('torch.')}; allowed: integer class indices"
        )
    if y.numel() == 0:
        return
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= n_classes:
        bad = low if low < 0 else high
        raise ValueError(
            f"{name} hold class {bad}; allowed: 0..{n_classes - 1} (the model has {n_classes} outputs)"
        )


def node_count(module: nn.Module) -> int:
    """The nodes of a layer: a Linear layer's outputs, a conv layer's channels."""
    return module.out_features if isinstance(module, nn.Linear) else module.out_channels


def check_width(module: nn.Module, layer: str) -> int:
    """The number of nodes (Linear outputs, conv channels) of `layer`, at least one."""
    width = node_count(module)
    if width < 1:
        raise ValueError(f"layer={layer!r} has no nodes (width 0); allowed: layers with at least one node")
    return width


def prunable_layers(model: nn.Module) -> list[str]:
    """Names of the Linear and Conv2d layers whose nodes can be removed, in registration order:
    those whose nodes reach one next weighted layer in the traced graph (`compress.graph`), so
    never the output layer (its nodes are the classes)."""
    from netshrink.compress.graph import node_layers  # compress imports this module

    return node_layers(model)


def check_layer(
    model: nn.Module, layer: str, allowed: list[str] | None = None, operation: str = "node removal"
) -> nn.Module:
    """The module `layer` of `model` after checking the model (`check_model`) and the layer: one
    of `allowed` when given, else a layer whose nodes the traced graph follows to the next
    weighted layer (`compress.graph.node_path`, naming `operation` in its refusals); with at
    least one node. A ValueError naming what the layer is and the allowed values otherwise."""
    modules = dict(model.named_modules())
    if allowed is None:
        from netshrink.compress.graph import node_path  # compress imports this module

        node_path(model, layer, operation)
    elif layer not in allowed:
        names = layer_names(model)
        what = (
            "does not exist" if layer not in modules
            else "is the output layer, whose nodes are the classes" if names and layer == names[-1]
            else "has no nodes to remove here" if isinstance(modules[layer], nn.Linear | nn.Conv2d)
            else "has no nodes to remove (not a Linear or Conv2d layer)"
        )  # fmt: skip
        raise ValueError(f"layer={layer!r} {what}; allowed values: {', '.join(allowed)}")
    check_model(model)
    check_width(modules[layer], layer)
    return modules[layer]


def check_examples(n: int, what: str) -> int:
    """`n`, the examples a loader gave `what`; a ValueError when it gave none."""
    if n == 0:
        raise ValueError(f"loader yielded no examples; {what} needs at least one batch")
    return n


def finite(value: Any) -> bool:
    """A finite int or float, never a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    """An int or numpy integer, never a bool (True is an int to Python, not a count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value: Any, low: int, high: int | None = None, what: str = "") -> int:
    """An int (numpy integers too, never a bool) in low..high (no upper bound when `high` is None),
    else a ValueError: "name=value is out of range; allowed: integers low..high (what)"."""
    if not is_integer(value) or value < low or (high is not None and value > high):
        allowed = f"integers {low}..{high}" if high is not None else f"integers >= {low}"
        note = f" ({what})" if what else ""
        raise ValueError(f"{name}={value!r} is out of range; allowed: {allowed}{note}")
    return int(value)


def check_tol(name: str, value: float) -> float:
    """A finite number >= 0 (NaN and infinity refused), else a ValueError naming `name`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name}={value!r} must be a finite number >= 0")
    return float(value)


def check_finite(name: str, tensor: torch.Tensor, hint: str = "") -> torch.Tensor:
    """`tensor` when every value is finite; else a ValueError naming `name`, how many values are
    NaN or infinite and where the first is (a NaN loss change would read as 'zero', safe to remove)."""
    bad = ~torch.isfinite(torch.as_tensor(tensor).detach())
    if bool(bad.any()):
        first = [int(i) for i in bad.nonzero()[0]]
        raise ValueError(f"{name} holds {int(bad.sum())} NaN or infinite value(s) (the first at index "
                         f"{first}){'; ' + hint if hint else ''}; allowed: finite numbers")  # fmt: skip
    return tensor


def check_finite_model(model: nn.Module, name: str = "model") -> None:
    """Every parameter and buffer of `model` finite, else a ValueError naming the tensor."""
    for what, tensors in (("parameter", model.named_parameters()), ("buffer", model.named_buffers())):
        for key, t in tensors:
            if t.is_floating_point() and not bool(torch.isfinite(t.detach()).all()):
                check_finite(f"{name} {what} {key!r}", t, "NaN or infinite weights give no loss changes")


def check_indices(name: str, value: Any, n: int) -> torch.Tensor:
    """Node indices in 0..n-1 as a long tensor (k,): integers only. Booleans (a mask read as
    indices 0 and 1) and floats (truncated to other nodes) are refused, as `check_keep` refuses
    indices where a mask belongs."""
    items = value if isinstance(value, list | tuple) else None
    try:
        t = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        t = None
    if t is not None and t.numel() == 0 and t.dtype != torch.bool:
        return torch.zeros(0, dtype=torch.long)  # no nodes ([] is a float tensor to torch)
    if (
        t is None
        or t.dtype == torch.bool
        or t.is_floating_point()
        or t.is_complex()
        or (items is not None and not all(is_integer(v) or isinstance(v, torch.Tensor) for v in items))
    ):
        got = f"dtype {str(t.dtype).removeprefix('torch.')}" if t is not None else type(value).__name__
        if items is not None and any(isinstance(v, bool) for v in items):
            got = "booleans"
        raise ValueError(f"{name} must be integer node indices in 0..{n - 1}; got {got}. For a keep-mask "
                         f"of booleans use the functions that take `keep`")  # fmt: skip
    t = t.reshape(-1).long()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
        bad = int(t.max()) if int(t.max()) >= n else int(t.min())
        raise ValueError(f"{name} must be indices in 0..{n - 1}; got index {bad}")
    return t


def check_fraction(name: str, value: Any, low: float = 0.0, high: float = 1.0) -> float:
    """A real number (not a bool, finite) in [low, high], else a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a fraction, a number in {low:g}..{high:g}")
    if not low <= value <= high:
        raise ValueError(f"{name}={value!r} is out of range; allowed: {low:g}..{high:g}")
    return float(value)
