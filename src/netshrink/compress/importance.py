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
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from netshrink.checks import check_examples, check_labels, check_model, check_tol, check_width
from netshrink.compress.chain import LinearChain, linear_chain
from netshrink.compress.layers import check_chunk
from netshrink.compress.prune import check_keep
from netshrink.devices import mode, model_device, to_device
from netshrink.models import layer_names

CLASSES = ("important", "zero", "worse")


def prunable_layers(model: nn.Module) -> list[str]:
    """Names of the Linear and Conv2d layers whose nodes can be removed: all but the last layer."""
    return layer_names(model)[:-1]


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
    check_model(model)
    module = dict(model.named_modules())[layer]
    check_width(module, layer)
    return module


def node_count(module: nn.Module) -> int:
    return module.out_features if isinstance(module, nn.Linear) else module.out_channels


@dataclass
class Ablations:
    """Per-class sums over a data set for the intact model and each single-node ablation.

    Row 0 of `loss_sum` and `correct` is the intact model, row j+1 the model without `nodes[j]`.
    """

    nodes: torch.Tensor  # (k,) node indices
    loss_sum: torch.Tensor  # (k+1, C) summed cross-entropy per class, float64
    correct: torch.Tensor | None  # (k+1, C) correct predictions per class (None: not computed)
    count: torch.Tensor  # (C,) examples per class

    @property
    def loss(self) -> torch.Tensor:
        """Mean loss, (k+1,): intact model first."""
        return self.loss_sum.sum(1) / self.count.sum()

    @property
    def acc(self) -> torch.Tensor:
        """Accuracy, (k+1,): intact model first."""
        return self.correct.sum(1).double() / self.count.sum()

    @property
    def loss_change(self) -> torch.Tensor:
        """Loss without each node minus loss with all nodes, (k,)."""
        return self.loss[1:] - self.loss[0]

    @property
    def class_loss(self) -> torch.Tensor:
        """Mean loss per class, (k+1, C); NaN for a class with no examples."""
        return self.loss_sum / self.count.double()

    @property
    def class_acc(self) -> torch.Tensor:
        """Accuracy per class, (k+1, C)."""
        return self.correct.double() / self.count.double()

    @property
    def class_loss_change(self) -> torch.Tensor:
        """Per-class loss change of removing each node, (k, C)."""
        return self.class_loss[1:] - self.class_loss[0]


_BUDGET = 2**24  # elements of the largest intermediate tensor of one batched pass (64 MB in float32)


def _sums_from_logits(logits: torch.Tensor, y: torch.Tensor, n_classes: int, accuracy: bool):
    """Per-class loss sums (t, C) and correct counts (t, C) or None, from logits (t, N, C)."""
    target = logits.gather(2, y.view(1, -1, 1).expand(len(logits), -1, 1)).squeeze(2)  # (t, N)
    top = logits.amax(2)
    losses = top + (logits - top.unsqueeze(2)).exp_().sum(2).log_() - target  # (t, N)
    loss_sum = torch.zeros(len(logits), n_classes, dtype=torch.float64, device=y.device)
    loss_sum.index_add_(1, y, losses.double())
    if not accuracy:
        return loss_sum, None
    correct = torch.zeros(len(logits), n_classes, dtype=torch.long, device=y.device)
    return loss_sum, correct.index_add_(1, y, (target >= top).long())


def _last_hidden_sums(
    act: torch.Tensor,
    z: torch.Tensor,
    w: torch.Tensor,
    y: torch.Tensor,
    nodes: torch.Tensor,
    accuracy: bool,
    nonnegative: bool = True,
):
    """Per-class sums for removing each of `nodes` from the last hidden layer, without logits tensors.

    act (N, H) hidden outputs, z (N, C) logits, w (C, H) output weights. Removing node j makes the
    logits z - a_j w_j, so the log-sum-exp is accumulated class by class over (t, N) planes, and
    the target term sums to a per-class total minus w[c, j] * (sum of a_j over class c).
    """
    n_classes = z.shape[1]
    whole = len(nodes) == act.shape[1] and bool(
        (nodes == torch.arange(len(nodes), device=nodes.device)).all()
    )
    a_t = act.T.contiguous() if whole else act.T[nodes].contiguous()  # (t, N)
    z_t, w_t = z.T.contiguous(), w[:, nodes]  # (C, N), (C, t)
    gap = 2 * float(a_t.max()) * float(w_t.abs().max()) if a_t.numel() else 0.0
    plane = torch.empty_like(a_t)
    if (
        accuracy or gap > 60 or not nonnegative
    ):  # exact maximum: the prediction is needed, or the bound could underflow exp
        top = torch.addcmul(z_t[0], w_t[0].unsqueeze(1), a_t, value=-1)
        picked = top.clone() if accuracy else None  # the target's logit, from the same arithmetic as top
        for c in range(1, n_classes):
            torch.maximum(top, torch.addcmul(z_t[c], w_t[c].unsqueeze(1), a_t, value=-1, out=plane), out=top)
            if accuracy:
                torch.where(y == c, plane, picked, out=picked)
        z_shift, w_shift = z_t, w_t
    else:  # shift by an upper bound of every ablated logit, max z + a * max|w| (a >= 0 after ReLU)
        z_max, w_max = z_t.amax(0), w_t.abs().amax(0)
        top = z_max + a_t * w_max.unsqueeze(1)
        z_shift, w_shift = z_t - z_max, w_t + w_max  # z_c - a w_c - top = (z_c - max z) - a (w_c + max|w|)
    total = torch.zeros_like(a_t)
    for c in range(n_classes):
        torch.addcmul(z_shift[c], w_shift[c].unsqueeze(1), a_t, value=-1, out=plane)
        if z_shift is z_t:
            plane.sub_(top)
        total += plane.exp_()
    lse = total.log_().add_(top)  # (t, N)
    onehot = F.one_hot(y, n_classes).to(act.dtype)  # (N, C)
    target = (onehot * z).sum(0) - w_t.T * (a_t @ onehot)  # (t, C)
    loss_sum = (lse @ onehot).double() - target.double()
    if not accuracy:
        return loss_sum, None
    hits = (picked >= top).to(act.dtype)  # (t, N)
    return loss_sum, (hits @ onehot).round().long()


def _chain_sums(
    view: LinearChain, index: int, x, y, nodes, chunk: int | None, n_classes: int, accuracy: bool
):
    """Per-class sums of the intact chain (row 0) and of the chain without each node (rows 1..k).

    Removing node j of hidden layer `index` subtracts the rank-one term a_j * W_next[:, j] from
    the next layer's pre-activations: O(N * k * width) work instead of k forward passes.
    """
    act = view.activations(index, x)  # (N, H)
    nxt = view.linears[index + 1]
    z = nxt(act)  # (N, out)
    base = _sums_from_logits(view.forward_from(index, z).unsqueeze(0), y, n_classes, accuracy)
    parts = [base]
    t = chunk or max(1, _BUDGET // (len(x) * nxt.out_features))
    for start in range(0, len(nodes), t):
        sel = nodes[start : start + t]
        if index + 2 == len(view.linears):
            parts.append(_last_hidden_sums(act, z, nxt.weight, y, sel, accuracy, view.nonnegative[index]))
            continue
        zz = z.unsqueeze(0) - (act[:, sel].T.unsqueeze(2) * nxt.weight[:, sel].T.unsqueeze(1))  # (t, N, out)
        logits = view.forward_from(index, zz.flatten(0, 1)).view(len(sel), len(x), -1)
        parts.append(_sums_from_logits(logits, y, n_classes, accuracy))
    loss_sum = torch.cat([p[0] for p in parts])
    return loss_sum, torch.cat([p[1] for p in parts]) if accuracy else None


# Elements of the largest activation of one hooked pass. On the CPU 1 MB in float32: such
# temporaries stay in cache and below glibc's malloc thresholds, so the allocator reuses them
# instead of mapping fresh pages that the kernel must zero on every pass. Measured on conv1 of
# Conv4Net (1,000 images, 1 thread): 4 MB passes spent 30 % of the CPU time in the kernel
# (3.4 M page faults), 1 MB passes none (0 faults) and ran 1.6x faster; the unblocked path
# spent 52 %. On a GPU, 256 MB: fewer, larger kernels.
PASS_BUDGET = {"cpu": 2**18, "cuda": 2**26}


def rows_per_pass(model: nn.Module, module: nn.Module, sample: torch.Tensor) -> int:
    """How many input rows (masks x images) one hooked pass may hold: `PASS_BUDGET` elements
    over the largest output per row of `module` and of every module that runs after it.
    `sample` is one input row, (1, ...)."""
    sizes: list[int] = []
    seen = [False]

    def after(mod, _inputs, output):
        if mod is module:
            seen[0] = True
        if seen[0] and isinstance(output, torch.Tensor):
            sizes.append(output.numel())

    leaves = [m for m in model.modules() if m is module or not any(True for _ in m.children())]
    handles = [m.register_forward_hook(after) for m in leaves]
    try:
        model(sample)
    finally:
        for h in handles:
            h.remove()
    budget = PASS_BUDGET.get(sample.device.type, PASS_BUDGET["cpu"])
    return max(1, budget // max(sizes, default=1))


def _hooked_sums(
    model: nn.Module,
    module: nn.Module,
    x,
    y,
    keep: torch.Tensor,
    chunk: int | None,
    n_classes: int,
    accuracy: bool,
):
    """The same for any layer and any keep-masks (t, n_nodes): a forward hook replaces the
    layer's output (n, n_nodes, ...) by t copies stacked along the batch, copy j multiplied by
    keep[j]; the later layers run once on t*n rows. Passes hold at most `rows_per_pass` rows
    (t masks of `chunk`, default as many as fit, times a block of n images), so no pass makes
    a large temporary; the layers before run once per block and chunk."""
    rows = rows_per_pass(model, module, x[:1])
    t = chunk or max(1, min(len(keep), rows))
    block = max(1, rows // t)
    loss_sum = torch.zeros(len(keep) + 1, n_classes, dtype=torch.float64, device=y.device)
    correct = torch.zeros(len(keep) + 1, n_classes, dtype=torch.long, device=y.device) if accuracy else None
    current: list[torch.Tensor] = []

    def replicate(_module, _inputs, output):
        if not current:  # the intact pass
            return None
        factor = current[0].to(output.dtype).view(len(current[0]), 1, -1, *([1] * (output.dim() - 2)))
        return (output.unsqueeze(0) * factor).flatten(0, 1)

    def add(first: int, logits: torch.Tensor, yb: torch.Tensor) -> None:
        sums = _sums_from_logits(logits, yb, n_classes, accuracy)
        loss_sum[first : first + len(logits)] += sums[0]
        if accuracy:
            correct[first : first + len(logits)] += sums[1]

    handle = module.register_forward_hook(replicate)
    try:
        for b in range(0, len(x), block):
            xb, yb = x[b : b + block], y[b : b + block]
            current.clear()
            add(0, model(xb).unsqueeze(0), yb)
            for start in range(0, len(keep), t):
                current[:] = [keep[start : start + t]]
                add(1 + start, model(xb).view(len(current[0]), len(xb), -1), yb)
    finally:
        handle.remove()
    return loss_sum, correct


MERGE_ROWS = 4096  # small batches are merged up to this many rows: the sums are additive


def merged_batches(loader: Iterable, device: torch.device, rows: int = MERGE_ROWS):
    """The batches of `loader` on `device`, consecutive ones concatenated up to `rows` rows (a
    batch is never split), so that the per-pass overhead does not grow with small batches."""
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    held = 0
    for x, y in loader:
        x, y = to_device((x, y), device)
        if xs and held + len(y) > rows:
            yield (xs[0], ys[0]) if len(xs) == 1 else (torch.cat(xs), torch.cat(ys))
            xs, ys, held = [], [], 0
        xs.append(x)
        ys.append(y)
        held += len(y)
    if xs:
        yield (xs[0], ys[0]) if len(xs) == 1 else (torch.cat(xs), torch.cat(ys))


def _accumulate(model, layer, loader, rows: int, sums_of_batch, accuracy: bool) -> Ablations:
    n_classes = model.get_submodule(layer_names(model)[-1]).weight.shape[0]
    device = model_device(model)
    loss_sum = torch.zeros(rows + 1, n_classes, dtype=torch.float64, device=device)
    correct = torch.zeros(rows + 1, n_classes, dtype=torch.long, device=device) if accuracy else None
    count = torch.zeros(n_classes, dtype=torch.long, device=device)
    with mode(model, training=False):
        for x, y in merged_batches(loader, device):
            check_labels(y, n_classes)
            count += torch.bincount(y, minlength=n_classes)
            sums = sums_of_batch(x, y, n_classes)
            loss_sum += sums[0]
            if accuracy:
                correct += sums[1]
    if int(count.sum()) == 0:
        raise ValueError("loader yielded no examples; the ablations need at least one batch")
    return Ablations(
        torch.arange(rows), loss_sum.cpu(), None if correct is None else correct.cpu(), count.cpu()
    )


def _chain_or_none(model: nn.Module) -> LinearChain | None:
    """The chain view of `model` when it is one (fast path), else None (hooks: any layer)."""
    try:
        return linear_chain(model)
    except ValueError:
        return None


@torch.no_grad()
def ablate(
    model: nn.Module,
    layer: str,
    loader: Iterable,
    nodes: torch.Tensor | None = None,
    chunk: int | None = None,
    accuracy: bool = True,
) -> Ablations:
    """Loss (and accuracy) per class of the model, and of the model with each of `nodes`
    (default: all nodes of `layer`) removed alone, in batched passes.

    `chunk` nodes go in one pass, 1..len(nodes) (default: as many as fit a 64 MB intermediate
    for chain layers, `PASS_BUDGET` elements of activations for others). `accuracy=False` skips
    the predictions, which the loss does not need.
    """
    module = check_layer(model, layer)
    n = node_count(module)
    nodes = torch.arange(n) if nodes is None else torch.as_tensor(nodes, dtype=torch.long)
    if nodes.numel() and (nodes.min() < 0 or nodes.max() >= n):
        raise ValueError(f"nodes must be indices in 0..{n - 1} of layer={layer!r}")
    if chunk is not None:
        chunk = check_chunk(chunk, len(nodes), f"nodes ablated in {layer!r}")
    device = model_device(model)
    nodes = nodes.to(device)
    view = _chain_or_none(model)
    if view is not None and layer in view.hidden:
        index = view.names.index(layer)

        def sums(x, y, n_classes):
            return _chain_sums(view, index, x, y, nodes, chunk, n_classes, accuracy)
    else:
        keep = torch.ones(len(nodes), n, dtype=torch.bool, device=device)
        keep[torch.arange(len(nodes), device=device), nodes] = False

        def sums(x, y, n_classes):
            return _hooked_sums(model, module, x, y, keep, chunk, n_classes, accuracy)

    result = _accumulate(model, layer, loader, len(nodes), sums, accuracy)
    result.nodes = nodes.cpu()
    return result


@torch.no_grad()
def ablate_masks(
    model: nn.Module,
    layer: str,
    loader: Iterable,
    *,
    keep: torch.Tensor,
    chunk: int | None = None,
    accuracy: bool = True,
) -> Ablations:
    """Like `ablate`, for arbitrary keep-masks (t, n_nodes) of `layer`: row j+1 of the result is
    the model with the nodes outside keep[j] removed together, all masks in batched passes."""
    module = check_layer(model, layer)
    n = node_count(module)
    keep = check_keep(keep, n)
    if keep.dim() != 2:
        raise ValueError(f"keep must have shape (masks, {n}) for layer={layer!r}; got {tuple(keep.shape)}")
    if chunk is not None:
        chunk = check_chunk(chunk, len(keep), "masks")
    keep = keep.to(model_device(model))

    def sums(x, y, n_classes):
        return _hooked_sums(model, module, x, y, keep, chunk, n_classes, accuracy)

    return _accumulate(model, layer, loader, len(keep), sums, accuracy)


def loss_change(model: nn.Module, layer: str, loader: Iterable, chunk: int | None = None) -> torch.Tensor:
    """For every node (or channel) of `layer`: loss without it minus loss with all nodes. (n_nodes,)"""
    return ablate(model, layer, loader, chunk=chunk, accuracy=False).loss_change


def classify(importance: torch.Tensor, tol: float) -> np.ndarray:
    """'important' (removal raises the loss by more than tol), 'worse' (removal lowers it by more
    than tol), else 'zero'."""
    check_tol("tol", tol)
    imp = torch.as_tensor(importance).cpu().numpy()
    return np.where(imp > tol, "important", np.where(imp < -tol, "worse", "zero"))


def taylor(model: nn.Module, layer: str, loader: Iterable) -> torch.Tensor:
    """First-order Taylor estimate of `loss_change` (Molchanov et al. 2017): removing node j sets
    its output a_j to 0, so dL ~ -sum(a_j * dL/da_j), averaged over the examples. (n_nodes,)

    Molchanov et al. rank by the absolute value; the signed value is returned here so that it can
    be compared with the oracle's sign.
    """
    module = check_layer(model, layer)
    device = model_device(model)
    saved: list[torch.Tensor] = []

    def keep(_module, _inputs, output):
        output.retain_grad()
        saved[:] = [output]

    handle = module.register_forward_hook(keep)
    total = torch.zeros(node_count(module), dtype=torch.float64, device=device)
    n = 0
    try:
        with mode(model, training=False):
            for x, y in loader:
                x, y = to_device((x, y), device)
                model.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(x), y, reduction="sum")
                loss.backward()
                a = saved[0]
                contribution = -(a.detach() * a.grad)  # (N, C) or (N, C, H, W)
                total += (
                    contribution.flatten(2).sum(2).sum(0).double()
                    if a.dim() > 2
                    else contribution.sum(0).double()
                )
                n += len(y)
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
    check_examples(n, "taylor")
    return (total / n).cpu()
