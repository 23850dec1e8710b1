"""Node importance: the change in loss when one node (or conv channel) is removed.

`loss_change` is the exact oracle of the Oslo draft, computed for all single-node ablations of a
layer at once by the batched mask evaluator (`masking.evaluate_masks`): on a chain of linear
layers by rank-one updates of the next layer, on any other model by a forward hook that stacks
k+1 copies of the layer's output (copy 0 untouched, copy j with node j zeroed) so every later
layer runs once on (k+1)N rows instead of k separate forward passes. Zeroing a node's output
equals zeroing its incoming weights and bias; with a ReLU after the layer (as in every network
here) it equals removing the node.

`taylor` is the first-order estimate of the same quantity (Molchanov et al. 2017).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from netshrink.checks import (
    check_examples,
    check_finite,
    check_finite_model,
    check_indices,
    check_labels,
    check_layer,
    check_tol,
    check_width,
)
from netshrink.compress.layers import check_chunk
from netshrink.compress.masking import MaskEvaluation, evaluate_masks
from netshrink.devices import mode, model_device, to_device

__all__ = [
    "CLASSES",
    "ablate",
    "classify",
    "loss_change",
    "taylor",
]

CLASSES = ("important", "zero", "worse")


@torch.no_grad()
def ablate(
    model: nn.Module,
    layer: str,
    loader: Iterable,
    nodes: torch.Tensor | None = None,
    chunk: int | None = None,
    accuracy: bool = True,
) -> MaskEvaluation:
    """Loss (and accuracy) per class of the model, and of the model with each of `nodes`
    (default: all nodes of `layer`) removed alone: `evaluate_masks` with one mask a node
    (row j without `nodes[j]`, `.nodes` gives them back; the intact model as `intact_loss`, ...).

    `chunk` nodes go in one pass, 1..len(nodes); `accuracy=False` skips the predictions.
    """
    n = check_width(check_layer(model, layer, operation="node importance"), layer)
    nodes = torch.arange(n) if nodes is None else check_indices("nodes", nodes, n)
    check_finite_model(model)
    if chunk is not None:
        chunk = check_chunk(chunk, len(nodes), f"nodes ablated in {layer!r}")
    keep = torch.ones(len(nodes), n, dtype=torch.bool)
    keep[torch.arange(len(nodes)), nodes] = False
    result = evaluate_masks(model, layer, _with_rows(loader), keep=keep, chunk=chunk, accuracy=accuracy)
    check_finite("the loss of the model and of each ablation", result.loss_sum, _NOT_FINITE)
    return result


_NOT_FINITE = "NaN or infinite inputs (or weights) give no loss changes"


class _with_rows:  # noqa: N801 - used as a function
    """The batches of `loader` that hold examples (an empty batch adds nothing, and divided by
    zero), as often as it is iterated."""

    def __init__(self, loader: Iterable):
        self.loader = loader

    def __iter__(self):
        return ((x, y) for x, y in self.loader if len(y))


def loss_change(model: nn.Module, layer: str, loader: Iterable, chunk: int | None = None) -> torch.Tensor:
    """For every node (or channel) of `layer`: loss without it minus loss with all nodes. (n_nodes,)"""
    return ablate(model, layer, loader, chunk=chunk, accuracy=False).loss_change


def classify(importance: torch.Tensor, tol: float) -> np.ndarray:
    """'important' (removal raises the loss by more than tol), 'worse' (removal lowers it by more
    than tol), else 'zero'. A NaN or infinite loss change is refused (it is no evidence a node is
    safe to remove)."""
    check_tol("tol", tol)
    imp = check_finite("importance", torch.as_tensor(importance), _NOT_FINITE).cpu().numpy()
    return np.where(imp > tol, "important", np.where(imp < -tol, "worse", "zero"))


def taylor(model: nn.Module, layer: str, loader: Iterable) -> torch.Tensor:
    """First-order Taylor estimate of `loss_change` (Molchanov et al. 2017): removing node j sets
    its output a_j to 0, so dL ~ -sum(a_j * dL/da_j), averaged over the examples. (n_nodes,)

    Molchanov et al. rank by the absolute value; the signed value is returned here so that it can
    be compared with the oracle's sign. The gradient is taken with respect to the layer's output
    alone (`torch.autograd.grad`): the parameters' `.grad` the caller holds stay as they were.
    """
    module = check_layer(model, layer, operation="node importance")
    check_finite_model(model)
    device = model_device(model)
    saved: list[torch.Tensor] = []

    def keep(_module, _inputs, output):
        saved[:] = [output if output.requires_grad else output.requires_grad_()]

    handle = module.register_forward_hook(keep)
    total = torch.zeros(check_width(module, layer), dtype=torch.float64, device=device)
    n = 0
    try:
        with mode(model, training=False), torch.enable_grad():
            for x, y in _with_rows(loader):
                x, y = to_device((x, y), device)
                logits = model(x)
                check_labels(y, logits.shape[1])
                loss = F.cross_entropy(logits, y, reduction="sum")
                a = saved[0]
                (grad,) = torch.autograd.grad(loss, a)
                contribution = -(a.detach() * grad)  # (N, C) or (N, C, H, W)
                total += (
                    contribution.flatten(2).sum(2).sum(0).double()
                    if a.dim() > 2
                    else contribution.sum(0).double()
                )
                n += len(y)
    finally:
        handle.remove()
    check_examples(n, "taylor")
    return check_finite("taylor's estimate", (total / n).cpu(), _NOT_FINITE)
