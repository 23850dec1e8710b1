"""The plain loops the batched paths replace: one forward pass over the data per mask or per
removed node. They are the ground truth of the tests and the baseline of the benchmarks."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F

from netshrink.checks import check_examples
from netshrink.compress.chain import linear_chain
from netshrink.compress.importance import check_layer, node_count
from netshrink.compress.prune import MaskScores, check_keep
from netshrink.devices import mode, model_device, to_device


@torch.no_grad()
def evaluate_masks_naive(model: nn.Module, layer: str, loader: Iterable, *, keep: torch.Tensor) -> MaskScores:
    """The draft's way, for comparison: per mask, zero the weights, evaluate, restore."""
    view = linear_chain(model)
    index = view.index(layer, model)
    lin, nxt = view.linears[index], view.linears[index + 1]
    saved = (lin.weight.clone(), None if lin.bias is None else lin.bias.clone(), nxt.weight.clone())
    device = model_device(model)
    losses, accuracies = [], []
    with mode(model, training=False):
        for mask in check_keep(keep, lin.out_features).to(device):
            lin.weight[~mask] = 0
            if lin.bias is not None:
                lin.bias[~mask] = 0
            nxt.weight[:, ~mask] = 0
            total, correct, n = 0.0, 0, 0
            for x, y in loader:
                x, y = to_device((x, y), device)
                logits = model(x)
                total += F.cross_entropy(logits, y, reduction="sum").item()
                correct += (logits.argmax(1) == y).sum().item()
                n += len(y)
            losses.append(total / n)
            accuracies.append(correct / n)
            lin.weight.copy_(saved[0])
            if lin.bias is not None:
                lin.bias.copy_(saved[1])
            nxt.weight.copy_(saved[2])
    return MaskScores(
        torch.tensor(losses, dtype=torch.float64), torch.tensor(accuracies, dtype=torch.float64)
    )


def loss_change_naive(model: nn.Module, layer: str, loader: Iterable) -> torch.Tensor:
    """`importance.loss_change` with one masked forward pass per node. (n_nodes,)"""
    module = check_layer(model, layer)
    device = model_device(model)
    zeroed: list[int] = []

    def zero(_module, _inputs, output):
        if zeroed:
            output = output.clone()
            output[:, zeroed[0]] = 0
        return output

    def mean_loss() -> float:
        total, n = 0.0, 0
        for x, y in loader:
            x, y = to_device((x, y), device)
            total += F.cross_entropy(model(x), y, reduction="sum").item()
            n += len(y)
        check_examples(n, "loss_change_naive")
        return total / n

    handle = module.register_forward_hook(zero)
    try:
        with torch.no_grad(), mode(model, training=False):
            base = mean_loss()
            out = []
            for j in range(node_count(module)):
                zeroed[:] = [j]
                out.append(mean_loss() - base)
                zeroed.clear()
    finally:
        handle.remove()
    return torch.tensor(out, dtype=torch.float64)
