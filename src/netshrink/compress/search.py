"""Pruning by node importance: remove the nodes whose removal does not raise the validation
loss, once (by the single-node loss changes), exhaustively, greedily, or as many as a loss
bound allows; every candidate set is evaluated by the batched mask evaluator (`masking.evaluate_masks`);
`prune_layers` applies `prune_once` layer by layer."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from netshrink.checks import check_indices, check_int, check_layer, check_tol, node_count, prunable_layers
from netshrink.compress import prune
from netshrink.compress.importance import ablate
from netshrink.compress.masking import MaskEvaluation, evaluate_masks

__all__ = [
    "PruneResult",
    "Step",
    "prefix_masks",
    "prune_exhaustive",
    "prune_greedy",
    "prune_layers",
    "prune_once",
    "prune_within",
]


@dataclass(frozen=True)
class Step:
    """One removal of a search (step 0: the intact model): the original index of the node
    removed (-1: none, or several), its loss change, the nodes removed so far, the validation
    loss and accuracy after it, and the loss evaluations spent so far."""

    step: int
    node: int
    loss_change: float
    removed: int
    val_loss: float
    val_acc: float
    evaluations: int


@dataclass
class PruneResult:
    """A pruned model (nodes physically removed) and how it was found: `keep` over the original
    nodes, one `Step` per removal. (Wall time is the caller's to measure:
    `experiments.node_importance.pruning_strategies` times each strategy.)"""

    model: nn.Module
    keep: torch.Tensor
    steps: list[Step]
    evaluations: int

    @property
    def nodes_left(self) -> int:
        return int(self.keep.sum())


def _step(
    step: int,
    node: int,
    change: float,
    result: MaskEvaluation,
    mask: int | None,
    evaluations: int,
    removed: int,
) -> Step:
    """The Step after `result`'s mask `mask` (None: the intact model)."""
    if mask is None:
        return Step(step, node, change, removed, result.intact_loss, result.intact_acc, evaluations)
    return Step(step, node, change, removed, float(result.loss[mask]), float(result.acc[mask]), evaluations)


def prune_once(
    model: nn.Module, layer: str, loader: Iterable, tol: float = 0.0, zero: bool = False
) -> PruneResult:
    """Importance computed once, then every worse node (loss change < -tol) removed at once; with
    `zero`, every zero node (|change| <= tol) too. At least one node stays."""
    check_tol("tol", tol)
    check_layer(model, layer)
    result = ablate(model, layer, loader)
    change = result.loss_change
    drop = change <= tol if zero else change < -tol
    if drop.all():
        drop[change.argmax()] = False
    pruned = prune.remove_nodes(model, layer, ~drop) if drop.any() else copy.deepcopy(model)
    after = ablate(pruned, layer, loader, nodes=[])
    rise = after.intact_loss - result.intact_loss
    steps = [
        _step(0, -1, 0.0, result, None, 0, 0),
        _step(1, -1, rise, after, None, len(change), int(drop.sum())),
    ]
    return PruneResult(pruned, ~drop, steps, len(change))


def prune_exhaustive(
    model: nn.Module, layer: str, loader: Iterable, tol: float = 0.0, multiple: int = 1
) -> PruneResult:
    """Recomputed, exhaustive: compute every node's loss change, remove the node whose removal
    lowers the loss most, recompute on the smaller model; stop when every removal would raise the
    loss by more than `tol` (default: until no removal lowers or keeps the loss) and the nodes
    left are a multiple of `multiple` (matrix kernels favour widths that are multiples of 8 or 16)."""
    check_tol("tol", tol)
    multiple = check_int("multiple", multiple, 1)
    check_layer(model, layer)
    current, original = model, torch.arange(node_count(model.get_submodule(layer)))
    result = ablate(current, layer, loader)
    evaluations, rows = len(original), [_step(0, -1, 0.0, result, None, 0, 0)]
    while len(original) > 1:
        change = result.loss_change
        j = int(change.argmin())
        if change[j] > tol and len(original) % multiple == 0:
            break
        rows.append(_step(len(rows), int(original[j]), float(change[j]), result, j, evaluations, len(rows)))
        keep = torch.arange(len(original)) != j
        current, original = prune.remove_nodes(current, layer, keep), original[keep]
        result = ablate(current, layer, loader)
        evaluations += len(original)
    mask = torch.zeros(node_count(model.get_submodule(layer)), dtype=torch.bool)
    mask[original] = True
    return PruneResult(current if current is not model else copy.deepcopy(model), mask, rows, evaluations)


def prune_greedy(
    model: nn.Module, layer: str, loader: Iterable, tol: float = 0.0, important: float | None = None
) -> PruneResult:
    """Recomputed, greedy: test the nodes one at a time in index order and remove the first whose
    removal does not raise the loss by more than `tol`; a node whose removal raises it by more
    than `important` is never tested again. Passes repeat until one removes nothing."""
    check_tol("tol", tol)
    if important is not None and check_tol("important", important) < tol:
        raise ValueError(f"important={important} must be >= tol={tol}")
    check_layer(model, layer)
    current, original = model, torch.arange(node_count(model.get_submodule(layer)))
    base = ablate(current, layer, loader, nodes=[])
    evaluations, rows = 0, [_step(0, -1, 0.0, base, None, 0, 0)]
    skipped: set[int] = set()
    removed = True
    while removed and len(original) > 1:
        removed = False
        for node in [int(n) for n in original if int(n) not in skipped]:
            if len(original) == 1:
                break
            j = int((original == node).nonzero())
            result = ablate(current, layer, loader, nodes=[j])
            evaluations += 1
            change = float(result.loss_change[0])
            if change <= tol:
                rows.append(_step(len(rows), node, change, result, 0, evaluations, len(rows)))
                keep = torch.arange(len(original)) != j
                current, original = prune.remove_nodes(current, layer, keep), original[keep]
                removed = True
            elif important is not None and change > important:
                skipped.add(node)
    mask = torch.zeros(node_count(model.get_submodule(layer)), dtype=torch.bool)
    mask[original] = True
    return PruneResult(current if current is not model else copy.deepcopy(model), mask, rows, evaluations)


def prefix_masks(order: torch.Tensor, counts: Iterable[int]) -> torch.Tensor:
    """Keep-masks (len(counts), n) removing the first k nodes of `order`, one mask per k."""
    order = check_indices("order", order, len(order))  # integers: a mask or floats are refused
    counts = [check_int(f"counts[{i}]", k, 0, len(order)) for i, k in enumerate(counts)]
    keep = torch.ones(len(counts), len(order), dtype=torch.bool)
    for row, k in enumerate(counts):
        keep[row, order[:k]] = False
    return keep


def prune_within(
    model: nn.Module,
    layer: str,
    loader: Iterable,
    tol: float,
    per_class: bool = False,
    ablations: MaskEvaluation | None = None,
) -> PruneResult:
    """Importance computed once (or given as `ablations` of all nodes), then the largest number k
    of least important nodes removed together whose removal keeps the loss within `tol` of the
    intact model's; with `per_class`, keeps *every class's* loss within `tol` (importance is then
    the largest per-class loss change). All n - 1 candidate prefixes are evaluated in one batched
    pass; `steps` holds that sweep (row k: the k least important nodes removed)."""
    check_tol("tol", tol)
    module = check_layer(model, layer)
    result = ablations if ablations is not None else ablate(model, layer, loader)
    if len(result.nodes) != node_count(module):
        raise ValueError(f"ablations must cover all {node_count(module)} nodes of layer={layer!r}")
    change = result.class_loss_change.nan_to_num(0).amax(1) if per_class else result.loss_change
    order = change.argsort()
    n = len(order)
    sweep = evaluate_masks(model, layer, loader, keep=prefix_masks(order, range(1, n)))
    if per_class:
        rise = (sweep.class_loss - result.intact_class_loss).nan_to_num(0).amax(1)
    else:
        rise = sweep.loss - result.intact_loss
    within = (rise <= tol).nonzero()
    k = int(within.max()) + 1 if len(within) else 0
    keep = prefix_masks(order, [k])[0]
    pruned = prune.remove_nodes(model, layer, keep) if k else copy.deepcopy(model)
    steps = [_step(0, -1, 0.0, result, None, n - 1, 0)] + [
        _step(k, int(order[k - 1]), float(change[order[k - 1]]), sweep, k - 1, n - 1, k) for k in range(1, n)
    ]
    return PruneResult(pruned, keep, steps, n - 1)


def prune_layers(
    model: nn.Module, loader: Iterable, tol: float, layers: list[str] | None = None
) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Layer by layer from the first of `layers` (default: every prunable layer), remove every node
    whose removal does not raise the loss by more than `tol` (`prune_once` with `zero`; importance
    recomputed on the smaller model for each layer). Returns the smaller model and the keep-mask
    of each layer over its original nodes."""
    check_tol("tol", tol)
    layers = prunable_layers(model) if layers is None else list(layers)
    for layer in layers:
        check_layer(model, layer)
    keeps = {}
    for layer in layers:
        result = prune_once(model, layer, loader, tol=tol, zero=True)
        model, keeps[layer] = result.model, result.keep
    return model, keeps
