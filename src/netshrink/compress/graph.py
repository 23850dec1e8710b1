"""Where a layer's nodes (Linear outputs, conv channels) go, found in the graph torch.fx traces,
never by attribute names or registration order: the output of `layer` is followed through
batch norm, activations, pooling, dropout and flatten to the next Conv2d or Linear, and the
output layer is the Conv2d or Linear that feeds the model's output through the same kind of
steps. Every node operation of the package finds its layers here (`node_path`): removal and
masking (`prune`), the mask evaluator (`masking.evaluate_masks`), importance and filter pruning.

A layer whose output goes anywhere else (a residual add, a concatenation, a second consumer),
that runs more than once or not at all, or that reaches the output with no weighted layer after
it, is refused with a ValueError naming the layer, the operation and what the graph shows,
before any work; so is a model torch.fx cannot trace. Written by hand on torch.fx: these few
rules are the whole of it (Torch-Pruning's dependency graph covers far more than the book needs).
"""

from __future__ import annotations

import operator
import weakref
from dataclasses import dataclass

import torch
from torch import fx, nn

__all__ = [
    "FilterPath",
    "LayerPath",
    "PASS_FUNCTIONS",
    "PASS_METHODS",
    "PASS_MODULES",
    "SUPPORTED",
    "follow_filters",
    "node_layers",
    "node_path",
    "output_layer",
    "prunable_convs",
]

# What a layer's output may pass through on its way to the next Conv2d or Linear.
PASS_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softplus,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d, nn.Flatten, nn.Identity,
)  # fmt: skip
PASS_FUNCTIONS = (
    torch.relu, torch.sigmoid, torch.tanh, torch.flatten, nn.functional.relu, nn.functional.gelu,
    nn.functional.silu, nn.functional.max_pool2d, nn.functional.avg_pool2d,
    nn.functional.adaptive_avg_pool2d, nn.functional.dropout,
)  # fmt: skip
PASS_METHODS = ("relu", "relu_", "sigmoid", "tanh", "flatten", "view", "reshape", "contiguous")
_QUERIES = ("size", "dim")  # shape questions: not a use of the values
_NORMS = nn.modules.batchnorm._BatchNorm
SUPPORTED = "batch norm, activations, pooling, dropout and flatten, then a Conv2d or Linear"
_WEIGHTED = (nn.Conv2d, nn.Linear)
# Operations that zero a layer's nodes to measure the model (not change its shapes).
EVALUATIONS = ("mask evaluation", "node importance")


class _Tracer(fx.Tracer):
    """Keeps every layer the path may cross a leaf (the package's pooling modules too)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (*PASS_MODULES, *_WEIGHTED, _NORMS)):
            return True
        return super().is_leaf_module(m, qualname)


# The traced graph of each model, kept while the model lives and its modules stay the same: the
# node operations of a search ask about one model hundreds of times, and a trace takes milliseconds.
_TRACED: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, fx.Graph]] = weakref.WeakKeyDictionary()


def _trace(model: nn.Module) -> fx.Graph:
    """`model` traced by `_Tracer`, from `_TRACED` when its modules are the same objects as then."""
    signature = tuple((name, id(m)) for name, m in model.named_modules())
    hit = _TRACED.get(model)
    if hit is not None and hit[0] == signature:
        return hit[1]
    graph = _Tracer().trace(model)
    _TRACED[model] = (signature, graph)
    return graph


@dataclass(frozen=True)
class LayerPath:
    """Where the nodes of `layer` go: its batch norm (or None), the next Conv2d or Linear, and
    the model's output layer (whose nodes are the classes)."""

    layer: str
    norm: str | None
    next: str
    output: str = ""


FilterPath = LayerPath  # the name filter pruning has used


def _describe(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return f"{type(modules[node.target]).__name__} {node.target!r}"
    if node.op == "output":
        return "the model's output"
    name = {
        operator.add: "an addition (residual add)",
        operator.iadd: "an addition (residual add)",
        torch.add: "an addition (residual add)",
        torch.cat: "a concatenation",
        torch.stack: "a concatenation",
    }.get(node.target)
    return name or f"{node.op} {getattr(node.target, '__name__', node.target)!r}"


def _passes(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Whether `node` only carries its first input's units on (activation, pooling, flatten)."""
    if node.op == "call_module":
        return isinstance(modules[node.target], PASS_MODULES)
    if node.op == "call_function":
        return node.target in PASS_FUNCTIONS
    return node.op == "call_method" and node.target in PASS_METHODS


class _Graph:
    """The traced graph of a model, asked for one `operation` (named in every refusal)."""

    def __init__(self, model: nn.Module, operation: str, layer: str, need_output: bool = True):
        self.operation, self.need_output = operation, need_output
        self.grouped = operation in EVALUATIONS  # a grouped next conv takes zeroed inputs as they are
        self.modules = dict(model.named_modules())
        try:
            self.graph = _trace(model)
        except Exception as err:  # noqa: BLE001 - fx's errors name no layer
            raise ValueError(
                f"layer={layer!r}: {operation} cannot trace the model with torch.fx to find where the "
                f"layer's nodes go ({type(err).__name__}: {err}); allowed: a model torch.fx can trace "
                "(no data-dependent control flow in forward)"
            ) from err

    def output_layer(self) -> str | None:
        """The Conv2d or Linear whose output reaches the model's output through passing steps."""
        out = next(n for n in self.graph.nodes if n.op == "output")
        node = out.args[0]
        while isinstance(node, fx.Node):
            if node.op == "call_module" and isinstance(self.modules[node.target], _WEIGHTED):
                return node.target
            if not _passes(node, self.modules):
                return None
            node = node.args[0]
        return None

    def _calls(self, name: str) -> list[fx.Node]:
        return [n for n in self.graph.nodes if n.op == "call_module" and n.target == name]

    def follow(self, layer: str, norms: bool) -> LayerPath:
        """The path of `layer` (a batch norm only where `norms`); a ValueError otherwise."""
        op, output = self.operation, self.output_layer()
        starts = self._calls(layer)
        if len(starts) != 1:
            raise ValueError(
                f"layer={layer!r} runs {len(starts)} times in one forward pass; allowed: a layer that runs "
                f"once ({op} changes every call of a layer whose weights are shared, and an unused one "
                "has no weighted layer after it)"
            )
        if layer == output:
            raise ValueError(
                f"layer={layer!r} is the output layer (it feeds the model's output), whose nodes are the "
                f"classes: {op} keeps them"
            )
        node, norm = starts[0], None
        while True:
            users = [u for u in node.users if not (u.op == "call_method" and u.target in _QUERIES)]
            if len(users) != 1:
                what = ", ".join(_describe(u, self.modules) for u in users) or "nothing"
                raise ValueError(
                    f"layer={layer!r}: its output goes to {what}; {op} follows a layer through {SUPPORTED}, "
                    "one consumer at a time (no residual add or concatenation)"
                )
            node = users[0]
            module = self.modules.get(node.target) if node.op == "call_module" else None
            if isinstance(module, _NORMS) and norm is None and norms:
                norm = node.target
            elif isinstance(module, _WEIGHTED):
                return self._arrive(layer, norm, node.target, output)
            elif node.op == "output":
                raise ValueError(
                    f"layer={layer!r}: its output reaches the model's output with no Conv2d or Linear after "
                    f"it; {op} needs a weighted layer to take the layer's nodes"
                )
            elif not _passes(node, self.modules):
                what = _describe(node, self.modules)
                hint = "; prune.remove_filters removes conv filters with their batch norm" * (
                    isinstance(module, _NORMS)
                )
                raise ValueError(
                    f"layer={layer!r}: its output goes to {what}; {op} follows a layer through "
                    f"{SUPPORTED if norms else SUPPORTED.replace('batch norm, ', '')} (no residual add, "
                    f"concatenation or normalisation layer in between{hint})"
                )

    def _arrive(self, layer: str, norm: str | None, nxt: str, output: str | None) -> LayerPath:
        module = self.modules[nxt]
        if isinstance(module, nn.Conv2d) and module.groups != 1 and not self.grouped:
            raise ValueError(
                f"layer={layer!r} feeds the grouped conv {nxt!r}; {self.operation} allows: groups=1"
            )
        if len(self._calls(nxt)) != 1:
            raise ValueError(
                f"layer={layer!r} feeds {nxt!r}, which runs {len(self._calls(nxt))} times in one forward "
                f"pass; {self.operation} allows: a next layer that runs once"
            )
        if output is None and self.need_output:
            raise ValueError(
                f"layer={layer!r}: the model's output does not come from one Conv2d or Linear through "
                f"{SUPPORTED.split(', then')[0]}; {self.operation} needs the output layer (the classes)"
            )
        return LayerPath(layer, norm, nxt, output or "")

    def node_layers(self, norms: bool) -> list[str]:
        """The Conv2d and Linear layers this operation can follow, in registration order."""
        out = []
        for name, module in self.modules.items():
            if isinstance(module, _WEIGHTED):
                try:
                    self.follow(name, norms)
                except ValueError:
                    continue
                out.append(name)
        return out


def _listed(names: list[str]) -> str:
    return ", ".join(names) or "none (no layer of this model can lose nodes this way)"


def node_path(model: nn.Module, layer: str, operation: str, norms: bool = True) -> LayerPath:
    """Where the nodes of `layer` go in `model` (`LayerPath`), found in the traced graph; a
    ValueError naming the layer, `operation` and what the graph shows where it is not a
    Conv2d or Linear whose nodes reach exactly one next weighted layer (through a batch norm
    only where `norms`)."""
    modules = dict(model.named_modules())
    graph = _Graph(model, operation, layer)
    if not isinstance(modules.get(layer), _WEIGHTED):
        what = (
            "does not exist" if layer not in modules
            else "has no nodes to remove (not a Linear or Conv2d layer)"
        )  # fmt: skip
        raise ValueError(f"layer={layer!r} {what}; allowed values: {_listed(graph.node_layers(norms))}")
    try:
        return graph.follow(layer, norms)
    except ValueError as err:
        raise ValueError(f"{err}; allowed values: {_listed(graph.node_layers(norms))}") from None


def node_layers(model: nn.Module, operation: str = "node removal", norms: bool = True) -> list[str]:
    """The layers whose nodes `operation` can remove (every Conv2d or Linear `node_path` follows)."""
    return _Graph(model, operation, "").node_layers(norms)


def follow_filters(model: nn.Module, layer: str) -> FilterPath:
    """The batch norm and the next Conv2d or Linear that conv `layer`'s channels reach, found in
    the traced graph; a ValueError naming the layer when its output goes anywhere else."""
    modules = dict(model.named_modules())
    if not isinstance(modules.get(layer), nn.Conv2d):
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        raise ValueError(
            f"layer={layer!r} is not a conv layer of the model; allowed values: {', '.join(convs)}"
        )
    return _Graph(model, "filter pruning", layer, need_output=False).follow(layer, norms=True)


def prunable_convs(model: nn.Module) -> list[str]:
    """The conv layers whose filters `prune.remove_filters` can remove (those it can follow)."""
    graph = _Graph(model, "filter pruning", "", need_output=False)
    return [n for n in graph.node_layers(norms=True) if isinstance(graph.modules[n], nn.Conv2d)]


def output_layer(model: nn.Module) -> str:
    """The Conv2d or Linear whose output is the model's output (its nodes are the classes),
    found in the traced graph; a ValueError when the output comes from anything else."""
    found = _Graph(model, "finding the output layer", "").output_layer()
    if found is None:
        raise ValueError(
            "the model's output does not come from one Conv2d or Linear through "
            f"{SUPPORTED.split(', then')[0]}; allowed: a model whose last weighted layer gives its output"
        )
    return found
