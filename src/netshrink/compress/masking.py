"""The one batched evaluator of keep-masks: the loss and accuracy, per class, of a model whose
layer keeps only the nodes (or conv channels) of each mask, every mask in batched passes.

A *keep-mask* is a boolean tensor over the nodes of one layer (True = keep). Zeroing a node's
output equals zeroing its incoming weights and bias; with a ReLU after the layer (as in every
network here) it equals removing the node, which `prune.remove_nodes` does physically.

`evaluate_masks` picks the fastest exact path for the model:
- a chain of linear layers (`chain.linear_chain`) whose masks each remove one node: rank-one
  updates of the next layer's pre-activations, O(N * width) a node instead of a forward pass;
- a chain with any masks: the next layer's pre-activations under a chunk of masks in one matrix
  product with per-mask weights W_next * mask;
- any other model (conv layers) whose masks each remove one node (or one more than the mask
  before: a sweep), when only ReLU, pooling or a flatten lie between the layer and the next
  weighted one (checked on the model): a hook on the next layer subtracts each node's
  contribution, 1/C of that layer's cost (`next_layer`);
- any other model and masks: a forward hook replaces the layer's output by one copy per mask,
  so every later layer runs once on (masks x images) rows (`hooked`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from netshrink.checks import check_examples, check_labels, check_layer, check_width, node_count
from netshrink.compress.chain import LinearChain, linear_chain
from netshrink.compress.chain_sums import chain_sums
from netshrink.compress.graph import node_path
from netshrink.compress.hooked import check_runs_once, hooked_sums, next_layer_sums
from netshrink.compress.layers import check_chunk
from netshrink.compress.next_layer import NextLayer, find_next_layer
from netshrink.devices import mode, model_device, to_device

__all__ = [
    "MERGE_ROWS",
    "PROBE_ROWS",
    "MaskEvaluation",
    "check_keep",
    "evaluate_masks",
    "merged_batches",
]


def check_keep(keep: torch.Tensor, n_nodes: int, name: str = "keep", one: bool = False) -> torch.Tensor:
    """A keep-mask (n_nodes,) or, unless `one`, one a row (T, n_nodes) as a bool tensor. Only
    booleans are taken (a bool tensor or array, a list of bools): integer indices or 0/1 floats
    would otherwise be read as True/False node by node, silently keeping the wrong nodes."""
    try:
        mask = keep if isinstance(keep, torch.Tensor) else torch.as_tensor(keep)
    except (TypeError, ValueError, RuntimeError):
        mask = None
    if mask is None or mask.dtype != torch.bool:
        what = f"dtype {mask.dtype}" if mask is not None else type(keep).__name__
        raise ValueError(
            f"{name} must be booleans, True for each node to keep (a bool tensor or a list of bools); "
            f"got {what}. To keep nodes by index: torch.isin(torch.arange({n_nodes}), indices)"
        )
    if mask.dim() not in ((1,) if one else (1, 2)) or mask.shape[-1] != n_nodes:
        shapes = f"({n_nodes},)" if one else f"({n_nodes},) or (masks, {n_nodes})"
        raise ValueError(
            f"{name} must have shape {shapes} for a layer of {n_nodes} nodes; got {tuple(mask.shape)}"
        )
    return mask


@dataclass
class MaskEvaluation:
    """Per-class sums over a data set for the model under each keep-mask, and for the intact model.

    Every per-mask field and property is indexed by mask: row j is the model under `keep[j]`
    (`loss[j]`, `acc[j]`, `loss_change[j]`). The intact model's numbers are named as such
    (`intact_loss`, `intact_acc`, `intact_class_loss`, ...).
    """

    keep: torch.Tensor  # (t, n_nodes) bool, the masks
    loss_sum: torch.Tensor  # (t, C) summed cross-entropy per class under each mask, float64
    correct: torch.Tensor | None  # (t, C) correct predictions per class (None: not computed)
    count: torch.Tensor  # (C,) examples per class
    intact_loss_sum: torch.Tensor  # (C,) summed cross-entropy per class of the intact model
    intact_correct: torch.Tensor | None  # (C,) its correct predictions per class

    @classmethod
    def from_rows(
        cls, keep: torch.Tensor, loss_sum: torch.Tensor, correct: torch.Tensor | None, count: torch.Tensor
    ) -> MaskEvaluation:
        """From sums of t + 1 rows, (t + 1, C), the intact model in row 0 (as the passes make them)."""
        return cls(
            keep, loss_sum[1:], None if correct is None else correct[1:], count,
            loss_sum[0], None if correct is None else correct[0],
        )  # fmt: skip

    @property
    def loss(self) -> torch.Tensor:
        """Mean loss under each mask, (t,)."""
        return self.loss_sum.sum(1) / self.count.sum()

    @property
    def acc(self) -> torch.Tensor:
        """Accuracy under each mask, (t,)."""
        return self.correct.sum(1).double() / self.count.sum()

    @property
    def intact_loss(self) -> float:
        """Mean loss of the intact model."""
        return float(self._intact_loss())

    @property
    def intact_acc(self) -> float:
        """Accuracy of the intact model."""
        return float(self.intact_correct.unsqueeze(0).sum(1)[0].double() / self.count.sum())

    def _intact_loss(self) -> torch.Tensor:  # summed as a row, as the masks' rows are
        return self.intact_loss_sum.unsqueeze(0).sum(1)[0] / self.count.sum()

    @property
    def loss_change(self) -> torch.Tensor:
        """Loss under each mask minus the intact loss, (t,)."""
        return self.loss - self._intact_loss()

    @property
    def class_loss(self) -> torch.Tensor:
        """Mean loss per class under each mask, (t, C); NaN for a class with no examples."""
        return self.loss_sum / self.count.double()

    @property
    def class_acc(self) -> torch.Tensor:
        """Accuracy per class under each mask, (t, C)."""
        return self.correct.double() / self.count.double()

    @property
    def intact_class_loss(self) -> torch.Tensor:
        """Mean loss per class of the intact model, (C,)."""
        return self.intact_loss_sum / self.count.double()

    @property
    def intact_class_acc(self) -> torch.Tensor:
        """Accuracy per class of the intact model, (C,)."""
        return self.intact_correct.double() / self.count.double()

    @property
    def class_loss_change(self) -> torch.Tensor:
        """Per-class loss change under each mask, (t, C)."""
        return self.class_loss - self.intact_class_loss

    @property
    def nodes(self) -> torch.Tensor:
        """The node each mask removes, (t,), when every mask removes exactly one (`ablate`)."""
        nodes = _single_removals(self.keep)
        if nodes is None:
            raise ValueError("nodes is defined when every mask removes exactly one node")
        return nodes


def _single_removals(keep: torch.Tensor) -> torch.Tensor | None:
    """The node each mask removes when every mask removes exactly one, else None."""
    removed = ~keep
    return removed.long().argmax(1) if bool((removed.sum(1) == 1).all()) else None


def _removal_sweep(keep: torch.Tensor) -> torch.Tensor | None:
    """The order of removal when mask j removes the nodes of mask j-1 and one more (mask 0 one
    node), else None: mask j removes order[0..j]."""
    removed = ~keep
    counts = removed.sum(1)
    if not len(keep) or not bool((counts == torch.arange(1, len(keep) + 1, device=keep.device)).all()):
        return None
    if not bool((removed[1:] >= removed[:-1]).all()):
        return None
    added = removed.clone()
    added[1:] &= ~removed[:-1]
    return added.long().argmax(1)


PROBE_ROWS = 8  # input rows on which `find_next_layer` checks that the next-layer path is exact
# Batches are merged, or split, to about this many rows: the sums are additive. Measured on the
# oracle of a 784-128-10 nn.Sequential (10,000 images): batches of 10,000 took 39 ms whole and
# 30 ms as 4,096-row pieces, the time of merged batches of 100 or 1,000.
MERGE_ROWS = 4096


def merged_batches(loader: Iterable, device: torch.device, rows: int = MERGE_ROWS):
    """The batches of `loader` on `device`, consecutive ones concatenated up to `rows` rows, and
    one larger than `rows` split into near-equal pieces of at most `rows`, so that neither the
    per-pass overhead (small batches) nor the temporaries (large ones) grow with the batch."""
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    held = 0
    for x, y in loader:
        x, y = to_device((x, y), device)
        if len(y) > rows:
            if xs:
                yield (xs[0], ys[0]) if len(xs) == 1 else (torch.cat(xs), torch.cat(ys))
                xs, ys, held = [], [], 0
            pieces = -(-len(y) // rows)
            yield from zip(x.tensor_split(pieces), y.tensor_split(pieces), strict=True)
            continue
        if xs and held + len(y) > rows:
            yield (xs[0], ys[0]) if len(xs) == 1 else (torch.cat(xs), torch.cat(ys))
            xs, ys, held = [], [], 0
        xs.append(x)
        ys.append(y)
        held += len(y)
    if xs:
        yield (xs[0], ys[0]) if len(xs) == 1 else (torch.cat(xs), torch.cat(ys))


def _chain_or_none(model: nn.Module) -> LinearChain | None:
    """The chain view of `model` when it is one (fast paths), else None (hooks: any layer)."""
    try:
        return linear_chain(model)
    except ValueError:
        return None


def _checked(model: nn.Module, layer: str, keep: torch.Tensor, chunk: int | None):
    """The module `layer`, the classes, the masks (t, n_nodes) on the model's device and the
    chunk, after every check (the layers found in the traced graph, `graph.node_path`)."""
    path = node_path(model, layer, "mask evaluation")
    module = check_layer(model, layer, [layer])
    masks = check_keep(keep, check_width(module, layer))
    masks = masks.unsqueeze(0) if masks.dim() == 1 else masks
    if chunk is not None:
        chunk = check_chunk(chunk, len(masks), "masks")
    return module, node_count(model.get_submodule(path.output)), masks.to(model_device(model)), chunk


@torch.no_grad()
def evaluate_masks(
    model: nn.Module,
    layer: str,
    loader: Iterable,
    *,
    keep: torch.Tensor,
    chunk: int | None = None,
    accuracy: bool = True,
) -> MaskEvaluation:
    """Loss (and accuracy) per class of the intact model and of the model whose `layer` keeps
    only the nodes of each keep-mask, all masks in batched passes.

    keep: (t, n_nodes) bool (or one mask, (n_nodes,)); t may be 0 (the intact model alone).
    `chunk` masks go in one pass, 1..t (default: as many as fit a 64 MB intermediate on a chain,
    `hooked.PASS_BUDGET` elements of activations otherwise). `accuracy=False` skips the predictions,
    which the loss does not need. Small batches of `loader` are merged (`merged_batches`).
    """
    module, n_classes, masks, chunk = _checked(model, layer, keep, chunk)
    device = masks.device
    view = _chain_or_none(model)
    # the next-layer path's removal order: one node a mask, else a sweep (one more node a mask)
    singles = _single_removals(masks)
    order, cumulative = (singles, False) if singles is not None else (_removal_sweep(masks), True)
    nxt: NextLayer | None = None
    probed = view is not None  # the hooked paths check the layer and look for the next one once
    loss_sum = torch.zeros(len(masks) + 1, n_classes, dtype=torch.float64, device=device)
    correct = torch.zeros(len(masks) + 1, n_classes, dtype=torch.long, device=device) if accuracy else None
    count = torch.zeros(n_classes, dtype=torch.long, device=device)
    with mode(model, training=False):
        for x, y in merged_batches(loader, device):
            if not len(y):  # an empty batch adds nothing (and would divide by zero)
                continue
            check_labels(y, n_classes)
            count += torch.bincount(y, minlength=n_classes)
            if view is not None:
                index = view.names.index(layer)
                sums = chain_sums(view, index, x, y, masks, singles, chunk, n_classes, accuracy)
            else:
                if not probed:
                    check_runs_once(model, layer, x[:1])
                    probed = True
                    if order is not None:
                        nxt = find_next_layer(model, layer, x[:PROBE_ROWS])
                if nxt is not None:
                    sums = next_layer_sums(
                        model, nxt, x, y, order, chunk, n_classes, accuracy, cumulative=cumulative
                    )
                else:
                    sums = hooked_sums(model, module, x, y, masks, chunk, n_classes, accuracy)
            loss_sum += sums[0]
            if accuracy:
                correct += sums[1]
    if int(count.sum()) == 0:
        check_examples(0, "evaluate_masks")
    correct = None if correct is None else correct.cpu()
    return MaskEvaluation.from_rows(masks.cpu(), loss_sum.cpu(), correct, count.cpu())
