"""The fast paths of `masking.evaluate_masks` on a chain of linear layers (`chain.linear_chain`):
the next layer's pre-activations under every mask at once, and for single removals from the last
hidden layer rank-one updates of the logits, without a (masks, N, C) logits tensor."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from netshrink.compress.chain import LinearChain
from netshrink.metrics import class_sums

__all__ = ["chain_sums"]

# Elements of the largest intermediate tensor of one chain pass. The last hidden layer's
# rank-one path holds (masks, N) planes, C times smaller than the logits, and runs fastest in
# large passes. Passes that hold every mask's pre-activations or logits, (masks, N, out), run
# fastest when those stay near the cache: measured on 1,000 random masks of a 784-128-10 MLP
# (10,000 images, 2 threads, AMD EPYC with AVX-512), 64 MB passes took 1.5x to 2x the time of
# 2 to 8 MB ones, and 1 MB ones were slower again.
_RANK_ONE_BUDGET = 2**24  # 64 MB in float32
_STACKED_BUDGET = 2**20  # 4 MB


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
    logits z - a_j w_j, so the log-sum-exp is accumulated class by class over (t, N) planes (a
    (t, N, C) logits tensor would be C times larger), and the target term sums to a per-class
    total minus w[c, j] * (sum of a_j over class c).
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


def _masked_preactivations(act: torch.Tensor, masks: torch.Tensor, nxt: nn.Linear) -> torch.Tensor:
    """Pre-activations of the next layer under each mask: (t, N, out) from act (N, H), masks (t, H),
    mask-major so that the logits of the later layers come out as (t, N, C) contiguous.

    One batched product act @ (W_next^T * m_j), (N, H) x (H, out) for each mask j.
    """
    w_eff = masks.to(act.dtype).unsqueeze(2) * nxt.weight.T.unsqueeze(0)  # (t, H, out)
    z = torch.matmul(act, w_eff)  # (t, N, out)
    return z if nxt.bias is None else z.add_(nxt.bias)


def _masked_logit_planes(act: torch.Tensor, masks: torch.Tensor, out: nn.Linear) -> torch.Tensor:
    """Logits under each mask of the last hidden layer as planes (t, C, N), from act (N, H) and
    masks (t, H): one matrix product [W_out * m_1; ...; W_out * m_t] @ act^T of shape
    (t*C, H) x (H, N), each class's logits of the N examples contiguous (`class_sums`, class_dim=1)."""
    w_eff = masks.to(act.dtype).unsqueeze(1) * out.weight.unsqueeze(0)  # (t, C, H)
    planes = w_eff.flatten(0, 1) @ act.T  # (t*C, N)
    if out.bias is not None:
        planes += out.bias.repeat(len(masks)).unsqueeze(1)
    return planes.view(len(masks), -1, len(act))


def chain_sums(
    view: LinearChain, index: int, x, y, keep, nodes, chunk: int | None, n_classes: int, accuracy: bool
):
    """Per-class sums of the intact chain (row 0) and of the chain under each mask (rows 1..t);
    `nodes` the node each mask removes when each removes one (`masking._single_removals`), else None.

    Masks that each remove one node j subtract the rank-one term a_j * W_next[:, j] from the
    next layer's pre-activations; other masks multiply W_next by the mask (`_masked_preactivations`,
    or `_masked_logit_planes` when the next layer is the output). Rows are mask-major, (t, N, ...).
    """
    act = view.activations(index, x)  # (N, H)
    nxt = view.linears[index + 1]
    z = nxt(act)  # (N, out)
    parts = [class_sums(view.forward_from(index, z).unsqueeze(0), y, n_classes, accuracy)]
    last = index + 2 == len(view.linears)
    rank_one = nodes is not None and last  # single removals from the last hidden layer
    budget = _RANK_ONE_BUDGET if rank_one else _STACKED_BUDGET
    t = chunk or max(1, budget // (len(x) * max(nxt.out_features, n_classes)))
    for start in range(0, len(keep), t):
        if rank_one:
            sel = nodes[start : start + t]
            parts.append(_last_hidden_sums(act, z, nxt.weight, y, sel, accuracy, view.nonnegative[index]))
            continue
        if last:  # arbitrary masks of the last hidden layer: the logits straight as planes
            planes = _masked_logit_planes(act, keep[start : start + t], nxt)
            parts.append(class_sums(planes, y, n_classes, accuracy, class_dim=1))
            continue
        if nodes is not None:
            sel = nodes[start : start + t]
            zz = z - act.T[sel].unsqueeze(2) * nxt.weight.T[sel].unsqueeze(1)  # (t, N, out)
        else:
            zz = _masked_preactivations(act, keep[start : start + t], nxt)  # (t, N, out)
        logits = view.forward_from(index, zz.flatten(0, 1)).view(zz.shape[0], len(x), -1)
        parts.append(class_sums(logits, y, n_classes, accuracy))
    loss_sum = torch.cat([p[0] for p in parts])
    return loss_sum, torch.cat([p[1] for p in parts]) if accuracy else None
