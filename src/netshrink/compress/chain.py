"""A model seen as a chain of linear layers with elementwise activations between them.

The batched mask evaluation (`masking.evaluate_masks`, under the loss-change oracle
`importance.loss_change` too) needs to run the model from one layer's outputs onwards; this is the
view that lets them, for the package's `models.MLP` and for a user's own `nn.Sequential`
(`Flatten`, then `Linear`, activation, `Linear`, ..., `Linear`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from netshrink.checks import check_layer
from netshrink.devices import mode, model_device, to_device
from netshrink.models import MLP

__all__ = [
    "ELEMENTWISE",
    "SUPPORTED",
    "LinearChain",
    "linear_chain",
]

# Modules applied elementwise (Dropout is the identity in eval mode, where the chain is used).
ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softplus,
               nn.Identity, nn.Dropout)  # fmt: skip
_NONNEGATIVE = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Softplus)
SUPPORTED = (
    "netshrink.models.MLP, or an nn.Sequential of an optional nn.Flatten, then nn.Linear layers with "
    f"elementwise activations ({', '.join(m.__name__ for m in ELEMENTWISE)}) between them"
)


@dataclass(frozen=True)
class LinearChain:
    """`names[i]` is the name of `linears[i]` in the model; `acts[i]` follows `linears[i]` (all
    but the last); `nonnegative[i]` says whether its outputs are >= 0 (ReLU, sigmoid, ...)."""

    names: tuple[str, ...]
    linears: tuple[nn.Linear, ...]
    acts: tuple[Callable[[torch.Tensor], torch.Tensor], ...]
    nonnegative: tuple[bool, ...]

    @property
    def hidden(self) -> list[str]:
        """The layers whose nodes can be removed: every linear layer but the output."""
        return list(self.names[:-1])

    def index(self, layer: str, model: nn.Module) -> int:
        """Position of hidden layer `layer`; a ValueError naming it and the allowed ones otherwise."""
        check_layer(model, layer, self.hidden)
        return self.names.index(layer)

    def activations(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Outputs of hidden layer `index` after its activation, for inputs x: (N, n_nodes)."""
        h = x.flatten(1)
        for linear, act in zip(self.linears[: index + 1], self.acts[: index + 1], strict=True):
            h = act(linear(h))
        return h

    def forward_from(self, index: int, z: torch.Tensor) -> torch.Tensor:
        """The logits, from the pre-activations `z` of the layer after hidden layer `index`."""
        for j in range(index + 1, len(self.linears) - 1):
            z = self.linears[j + 1](self.acts[j](z))
        return z


def _sequence(modules: list[nn.Module]) -> Callable[[torch.Tensor], torch.Tensor]:
    if len(modules) == 1:
        return modules[0]
    return nn.Sequential(*modules)


def linear_chain(model: nn.Module) -> LinearChain:
    """The chain view of `model`; a ValueError naming the first module that breaks the chain
    (or the model's type) and what is supported."""
    if isinstance(model, MLP):
        names = [f"hidden.{i}" for i in range(len(model.hidden))] + ["out"]
        linears = [*model.hidden, model.out]
        relu = nn.ReLU()
        return LinearChain(
            tuple(names), tuple(linears), (relu,) * len(model.hidden), (True,) * len(model.hidden)
        )
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"model is a {type(model).__name__}; supported: {SUPPORTED}")
    names, linears, acts, pending = [], [], [], []
    for position, (name, module) in enumerate(model.named_children()):
        if isinstance(module, nn.Flatten) and position == 0:
            continue
        if isinstance(module, nn.Linear):
            if linears:
                acts.append(pending)
            names.append(name)
            linears.append(module)
            pending = []
        elif isinstance(module, ELEMENTWISE) and linears:
            pending.append(module)
        else:
            raise ValueError(
                f"module {name!r} ({type(module).__name__}) breaks the chain of linear layers; "
                f"supported: {SUPPORTED}"
            )
    if len(linears) < 2:
        raise ValueError(
            f"model has {len(linears)} linear layer(s); a chain needs at least 2 (hidden and output)"
        )
    if any(not isinstance(m, nn.Identity | nn.Dropout) for m in pending):
        raise ValueError(
            f"the output layer {names[-1]!r} is followed by an activation; the chain must end in logits"
        )
    effective = [[m for m in mods if not isinstance(m, nn.Identity | nn.Dropout)] for mods in acts]
    nonneg = tuple(bool(mods) and isinstance(mods[-1], _NONNEGATIVE) for mods in effective)
    return LinearChain(
        tuple(names), tuple(linears), tuple(_sequence(m or [nn.Identity()]) for m in acts), nonneg
    )


def tail(view: LinearChain, index: int) -> nn.Sequential:
    """The chain after hidden layer `index`, as a model of that layer's outputs (N, width): an
    identity layer of the layer's width (named '0'), its activation when the outputs are >= 0
    (ReLU, which leaves them as they are; nothing otherwise), then the later layers (shared,
    not copied). Masking the identity layer's nodes equals masking hidden layer `index`'s
    nodes in the whole model, so masks can be evaluated on its outputs computed once
    (`layer_outputs`) without running the layers before it again."""
    width = view.linears[index].out_features
    ref = view.linears[index].weight
    eye = nn.Linear(width, width).to(ref.device, ref.dtype)
    with torch.no_grad():
        eye.weight.copy_(torch.eye(width, dtype=ref.dtype, device=ref.device))
        eye.bias.zero_()
    modules: list[nn.Module] = [eye, nn.ReLU() if view.nonnegative[index] else nn.Identity()]
    for j in range(index + 1, len(view.linears)):
        modules.append(view.linears[j])
        if j < len(view.linears) - 1:
            act = view.acts[j]
            modules.extend(act.children() if isinstance(act, nn.Sequential) else [act])
    return nn.Sequential(*modules)


@torch.no_grad()
def layer_outputs(
    model: nn.Module, view: LinearChain, index: int, loader: Iterable
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(outputs of hidden layer `index` after its activation (N, width), labels (N,)) per batch
    of `loader`, on the model's device, in eval mode: the inputs of `tail(view, index)`."""
    device = model_device(model)
    with mode(model, training=False):
        return [(view.activations(index, x), y) for x, y in (to_device(b, device) for b in loader)]
