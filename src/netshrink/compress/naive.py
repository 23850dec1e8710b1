"""The plain loops the batched paths replace: one forward pass over the data per mask or per
removed node. They are the ground truth of the tests and the baseline of the benchmarks."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from netshrink.checks import check_examples, check_labels, check_layer, check_width
from netshrink.compress.chain import linear_chain
from netshrink.compress.masking import MaskEvaluation, check_keep
from netshrink.devices import mode, model_device, to_device
from netshrink.metrics import class_sums, evaluate

__all__ = [
    "evaluate_masks_naive",
    "loss_change_naive",
]


@torch.no_grad()
def evaluate_masks_naive(
    model: nn.Module, layer: str, loader: Iterable, *, keep: torch.Tensor
) -> MaskEvaluation:
    """The draft's way, for comparison with `masking.evaluate_masks`: the intact model, then per
    mask zero the weights, evaluate, restore. One pass over the data per mask."""
    view = linear_chain(model)
    index = view.index(layer, model)
    lin, nxt = view.linears[index], view.linears[index + 1]
    saved = (lin.weight.clone(), None if lin.bias is None else lin.bias.clone(), nxt.weight.clone())
    device = model_device(model)
    masks = check_keep(keep, lin.out_features)
    masks = masks.unsqueeze(0) if masks.dim() == 1 else masks
    n_classes = view.linears[-1].out_features
    loss_sums, corrects = [], []
    count = torch.zeros(n_classes, dtype=torch.long, device=device)
    with mode(model, training=False):
        for row, mask in enumerate([None, *masks.to(device)]):
            if mask is not None:
                lin.weight[~mask] = 0
                if lin.bias is not None:
                    lin.bias[~mask] = 0
                nxt.weight[:, ~mask] = 0
            loss_sum = torch.zeros(1, n_classes, dtype=torch.float64, device=device)
            correct = torch.zeros(1, n_classes, dtype=torch.long, device=device)
            for x, y in loader:
                x, y = to_device((x, y), device)
                check_labels(y, n_classes)
                sums = class_sums(model(x).unsqueeze(0), y, n_classes)
                loss_sum += sums[0]
                correct += sums[1]
                if row == 0:
                    count += torch.bincount(y, minlength=n_classes)
            loss_sums.append(loss_sum)
            corrects.append(correct)
            lin.weight.copy_(saved[0])
            if lin.bias is not None:
                lin.bias.copy_(saved[1])
            nxt.weight.copy_(saved[2])
    check_examples(int(count.sum()), "evaluate_masks_naive")
    return MaskEvaluation.from_rows(
        masks.cpu(), torch.cat(loss_sums).cpu(), torch.cat(corrects).cpu(), count.cpu()
    )


def loss_change_naive(model: nn.Module, layer: str, loader: Iterable) -> torch.Tensor:
    """`importance.loss_change` with one masked forward pass over the data per node. (n_nodes,)"""
    module = check_layer(model, layer, operation="node importance")
    zeroed: list[int] = []

    def zero(_module, _inputs, output):
        if zeroed:
            output = output.clone()
            output[:, zeroed[0]] = 0
        return output

    handle = module.register_forward_hook(zero)
    try:
        base = evaluate(model, loader)["loss"]
        out = []
        for j in range(check_width(module, layer)):
            zeroed[:] = [j]
            out.append(evaluate(model, loader)["loss"] - base)
            zeroed.clear()
    finally:
        handle.remove()
    return torch.tensor(out, dtype=torch.float64)
