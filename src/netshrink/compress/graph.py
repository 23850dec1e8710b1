"""Where a conv layer's channels go, for filter pruning (`prune.remove_filters`) of any model
torch.fx can trace: its output is followed through the graph (batch norm, activations, pooling,
dropout, flatten) to the next Conv2d or Linear, never by attribute names or registration order.

A conv whose output goes anywhere else (a residual add, a concatenation, a second consumer)
is refused with a ValueError naming the layer and the operation: removing its filters would
change what that operation sees. Written by hand on torch.fx: these few rules are the whole of
it (Torch-Pruning's dependency graph covers far more than the book needs).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
from torch import fx, nn

# What a conv's output may pass through on its way to the next Conv2d or Linear.
PASS_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Dropout, nn.Dropout2d,
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Identity,
)  # fmt: skip
PASS_FUNCTIONS = (
    torch.relu, torch.flatten, nn.functional.relu, nn.functional.max_pool2d, nn.functional.avg_pool2d,
    nn.functional.adaptive_avg_pool2d, nn.functional.dropout,
)  # fmt: skip
PASS_METHODS = ("relu", "relu_", "flatten", "view", "reshape", "contiguous")
_QUERIES = ("size", "dim")  # shape questions: not a use of the values
SUPPORTED = "batch norm, activations, pooling, dropout and flatten, then a Conv2d or Linear"


class _Tracer(fx.Tracer):
    """Keeps every layer the path may cross a leaf (the package's pooling modules too)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (*PASS_MODULES, nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)):
            return True
        return super().is_leaf_module(m, qualname)


@dataclass(frozen=True)
class FilterPath:
    """Where the filters of conv `layer` go: its batch norm (or None) and the next layer."""

    layer: str
    norm: str | None
    next: str


def follow_filters(model: nn.Module, layer: str) -> FilterPath:
    """The batch norm and the next Conv2d or Linear that conv `layer`'s channels reach, found in
    the traced graph; a ValueError naming the layer when its output goes anywhere else."""
    modules = dict(model.named_modules())
    if not isinstance(modules.get(layer), nn.Conv2d):
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        raise ValueError(
            f"layer={layer!r} is not a conv layer of the model; allowed values: {', '.join(convs)}"
        )
    try:
        graph = _Tracer().trace(model)
    except Exception as err:  # noqa: BLE001 - fx's errors name no layer
        raise ValueError(
            f"cannot trace the model to follow layer={layer!r} ({type(err).__name__}: {err})"
        ) from err
    starts = [n for n in graph.nodes if n.op == "call_module" and n.target == layer]
    if len(starts) != 1:
        raise ValueError(
            f"layer={layer!r} is called {len(starts)} times in the model; filter pruning needs once"
        )
    node, norm = starts[0], None
    while True:
        users = [u for u in node.users if not (u.op == "call_method" and u.target in _QUERIES)]
        if len(users) != 1:
            what = ", ".join(_describe(u, modules) for u in users) or "the model's output"
            raise ValueError(
                f"layer={layer!r}: its output goes to {what}; filter pruning follows a conv through "
                f"{SUPPORTED}, one consumer at a time (no residual add or concatenation)"
            )
        node = users[0]
        if node.op == "call_module":
            module = modules[node.target]
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and norm is None:
                norm = node.target
                continue
            if isinstance(module, nn.Conv2d | nn.Linear):
                if isinstance(module, nn.Conv2d) and module.groups != 1:
                    raise ValueError(
                        f"layer={layer!r} feeds the grouped conv {node.target!r}; allowed: groups=1"
                    )
                return FilterPath(layer, norm, node.target)
            if isinstance(module, PASS_MODULES):
                continue
        elif (
            node.op == "call_function"
            and node.target in PASS_FUNCTIONS
            or node.op == "call_method"
            and node.target in PASS_METHODS
        ):
            continue
        raise ValueError(
            f"layer={layer!r}: its output goes to {_describe(node, modules)}; filter pruning follows a "
            f"conv through {SUPPORTED} (no residual add or concatenation)"
        )


def _describe(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return f"{type(modules[node.target]).__name__} {node.target!r}"
    if node.op == "output":
        return "the model's output"
    name = {operator.add: "an addition (residual add)", torch.cat: "a concatenation"}.get(node.target)
    return name or f"{node.op} {getattr(node.target, '__name__', node.target)!r}"


def prunable_convs(model: nn.Module) -> list[str]:
    """The conv layers whose filters `prune.remove_filters` can remove (those it can follow)."""
    out = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            try:
                follow_filters(model, name)
            except ValueError:
                continue
            out.append(name)
    return out
