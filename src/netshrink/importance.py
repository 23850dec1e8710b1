"""Node importance: the change in loss when one node (or conv channel) is removed.

`loss_change` is the exact oracle of the Oslo draft, computed for all single-node ablations of a
layer at once: a forward hook replaces the layer's output (N, C, ...) by k+1 copies stacked along
the batch, copy 0 untouched and copy j with node j zeroed, so every later layer runs once on
(k+1)N rows instead of k separate forward passes. Zeroing a node's output equals zeroing its
incoming weights and bias; with a ReLU after the layer (as in every network here) it equals
removing the node.

`taylor` is the first-order estimate of the same quantity (Molchanov et al. 2017).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from scipy import stats
from torch import nn
from torch.nn import functional as F

from netshrink import prune
from netshrink.models import MLP

CLASSES = ("important", "zero", "worse")


def prunable_layers(model: nn.Module) -> list[str]:
    """Names of the Linear and Conv2d layers whose nodes can be removed: all but the last layer."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    return names[:-1]


def check_layer(model: nn.Module, layer: str) -> nn.Module:
    """The module `layer` of `model`, or a ValueError naming the allowed layers."""
    allowed = prunable_layers(model)
    if layer not in allowed:
        modules = dict(model.named_modules())
        if layer not in modules:
            what = "does not exist"
        elif isinstance(modules[layer], nn.Linear | nn.Conv2d):
            what = "is the output layer, whose nodes are the classes"
        else:
            what = "has no nodes to remove (not a Linear or Conv2d layer)"
        raise ValueError(f"layer={layer!r} {what}; allowed values: {', '.join(allowed)}")
    return dict(model.named_modules())[layer]


def _n_nodes(module: nn.Module) -> int:
    return module.out_features if isinstance(module, nn.Linear) else module.out_channels


@torch.no_grad()
def ablation_losses(
    model: nn.Module, layer: str, loader: Iterable, nodes: torch.Tensor | None = None, chunk: int = 32
) -> tuple[float, torch.Tensor]:
    """Mean cross-entropy of the model, and of the model with each of `nodes` zeroed alone.

    Returns (base loss, losses of shape (len(nodes),)). `chunk` nodes are ablated per pass.
    """
    module = check_layer(model, layer)
    n = _n_nodes(module)
    nodes = torch.arange(n) if nodes is None else torch.as_tensor(nodes, dtype=torch.long)
    if chunk < 1:
        raise ValueError(f"chunk={chunk} must be at least 1")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    base_sum = 0.0
    sums = torch.zeros(len(nodes), dtype=torch.float64)
    count = 0
    current: list[torch.Tensor] = []

    def replicate(_module, _inputs, output):
        ablate = current[0]
        copies = output.unsqueeze(0).repeat(len(ablate) + 1, *([1] * output.dim()))
        copies[torch.arange(1, len(ablate) + 1), :, ablate] = 0  # copy j+1: node ablate[j] zeroed
        return copies.flatten(0, 1)

    handle = module.register_forward_hook(replicate)
    try:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            for start in range(0, len(nodes), chunk):
                current[:] = [nodes[start : start + chunk].to(device)]
                logits = model(x).view(len(current[0]) + 1, len(y), -1)
                loss = F.cross_entropy(logits.flatten(0, 1), y.repeat(len(current[0]) + 1), reduction="none")
                loss = loss.view(len(current[0]) + 1, -1).sum(1).double().cpu()
                if start == 0:
                    base_sum += float(loss[0])
                sums[start : start + chunk] += loss[1:]
            count += len(y)
    finally:
        handle.remove()
        model.train(was_training)
    return base_sum / count, sums / count


def loss_change(model: nn.Module, layer: str, loader: Iterable, chunk: int = 32) -> torch.Tensor:
    """For every node (or channel) of `layer`: loss without it minus loss with all nodes. (n_nodes,)

    Hidden layers of an MLP go through `prune.evaluate_masks` (the k single-node masks in one
    product with masked output weights); other layers through `ablation_losses`.
    """
    check_layer(model, layer)
    if isinstance(model, MLP) and layer in prune.hidden_layers(model):
        n = model.get_submodule(layer).out_features
        masks = torch.cat([torch.ones(1, n, dtype=torch.bool), ~torch.eye(n, dtype=torch.bool)])
        losses = torch.tensor(prune.evaluate_masks(model, layer, masks, loader)["loss"].to_numpy())
        return losses[1:] - losses[0]
    base, losses = ablation_losses(model, layer, loader, chunk=chunk)
    return losses - base


def loss_change_naive(model: nn.Module, layer: str, loader: Iterable) -> torch.Tensor:
    """The same, one masked forward pass per node: for tests and the benchmark."""
    module = check_layer(model, layer)
    was_training = model.training
    model.eval()
    zeroed: list[int] = []

    def zero(_module, _inputs, output):
        if zeroed:
            output = output.clone()
            output[:, zeroed[0]] = 0
        return output

    def mean_loss() -> float:
        total, n = 0.0, 0
        for x, y in loader:
            total += F.cross_entropy(model(x), y, reduction="sum").item()
            n += len(y)
        return total / n

    handle = module.register_forward_hook(zero)
    try:
        with torch.no_grad():
            base = mean_loss()
            out = []
            for j in range(_n_nodes(module)):
                zeroed[:] = [j]
                out.append(mean_loss() - base)
                zeroed.clear()
    finally:
        handle.remove()
        model.train(was_training)
    return torch.tensor(out, dtype=torch.float64)


def classify(importance: torch.Tensor, tol: float) -> np.ndarray:
    """'important' (removal raises the loss by more than tol), 'worse' (removal lowers it by more
    than tol), else 'zero'."""
    if tol < 0:
        raise ValueError(f"tol={tol} must be >= 0")
    imp = torch.as_tensor(importance).cpu().numpy()
    return np.where(imp > tol, "important", np.where(imp < -tol, "worse", "zero"))


def taylor(model: nn.Module, layer: str, loader: Iterable) -> torch.Tensor:
    """First-order Taylor estimate of `loss_change` (Molchanov et al. 2017): removing node j sets
    its output a_j to 0, so dL ~ -sum(a_j * dL/da_j), averaged over the examples. (n_nodes,)

    Molchanov et al. rank by the absolute value; the signed value is returned here so that it can
    be compared with the oracle's sign.
    """
    module = check_layer(model, layer)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    saved: list[torch.Tensor] = []

    def keep(_module, _inputs, output):
        output.retain_grad()
        saved[:] = [output]

    handle = module.register_forward_hook(keep)
    total = torch.zeros(_n_nodes(module), dtype=torch.float64)
    n = 0
    try:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            model.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y, reduction="sum")
            loss.backward()
            a = saved[0]
            contribution = -(a.detach() * a.grad)  # (N, C) or (N, C, H, W)
            total += (
                contribution.flatten(2).sum(2).sum(0).double().cpu()
                if a.dim() > 2
                else contribution.sum(0).double().cpu()
            )
            n += len(y)
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return total / n


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two importance vectors."""
    return float(
        stats.spearmanr(torch.as_tensor(a).cpu().numpy(), torch.as_tensor(b).cpu().numpy()).statistic
    )
