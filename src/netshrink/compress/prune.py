"""Removing hidden nodes: random masks, masking, physical removal, batched evaluation.

A *keep-mask* is a boolean tensor over the nodes of one hidden linear layer (True = keep).
Masking a node zeroes its incoming weights, its bias and its outgoing weights (Algorithm 1 of
the Oslo draft); since ReLU(0) = 0 the masked node then contributes nothing, so masking equals
removing the node, which `remove_nodes` does physically (smaller weight matrices).

Layers are named as in the model: `hidden.0`, `hidden.1`, ... for `models.MLP`, `0`, `2`, ...
for an `nn.Sequential` (see `chain.linear_chain`); the output layer cannot lose nodes: they
are the classes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from netshrink.checks import check_examples, check_labels, check_model, check_tol, check_width
from netshrink.compress.chain import linear_chain
from netshrink.compress.graph import follow_filters
from netshrink.compress.layers import check_chunk
from netshrink.devices import mode, model_device, to_device
from netshrink.models import layer_names


def hidden_layers(model: nn.Module) -> list[str]:
    """Names of the hidden linear layers whose nodes can be removed (see `chain.linear_chain`)."""
    return linear_chain(model).hidden


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


def random_node_masks(
    n_nodes: int,
    n_remove: int,
    n_trials: int,
    candidates: Iterable[int] | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Algorithm 1, for `n_trials` trials at once: keep-masks (n_trials, n_nodes) that each
    remove `n_remove` nodes chosen without replacement among `candidates` (default: all)."""
    if n_nodes <= 0:
        raise ValueError(f"n_nodes={n_nodes} must be positive")
    cand = (
        torch.arange(n_nodes) if candidates is None else torch.as_tensor(list(candidates), dtype=torch.long)
    )
    if cand.numel() and (cand.min() < 0 or cand.max() >= n_nodes or cand.unique().numel() != cand.numel()):
        raise ValueError(f"candidates must be distinct node indices in 0..{n_nodes - 1}")
    if not 0 <= n_remove <= cand.numel():
        raise ValueError(f"n_remove={n_remove} is out of range; allowed: 0..{cand.numel()} (the candidates)")
    if n_trials < 0:
        raise ValueError(f"n_trials={n_trials} must be a non-negative integer")
    order = torch.rand(n_trials, cand.numel(), generator=generator).argsort(dim=1)
    removed = cand[order[:, :n_remove]]
    keep = torch.ones(n_trials, n_nodes, dtype=torch.bool)
    keep.scatter_(1, removed, False)
    return keep


def _check_chain(model: nn.Module, layer: str) -> tuple[nn.Module, str, nn.Module]:
    """The module `layer`, the name of the layer it feeds and that layer; a ValueError otherwise."""
    names = layer_names(model)
    modules = dict(model.named_modules())
    if layer not in names[:-1]:
        what = (
            "does not exist" if layer not in modules
            else "is the output layer, whose nodes are the classes" if layer == names[-1]
            else "has no nodes to remove (not a Linear or Conv2d layer)"
        )  # fmt: skip
        raise ValueError(f"layer={layer!r} {what}; allowed values: {', '.join(names[:-1])}")
    check_model(model)
    check_width(modules[layer], layer)
    norms = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
    if norms:
        raise ValueError(
            f"model has normalisation layers ({', '.join(norms)}); remove_nodes handles plain chains"
        )
    if any(isinstance(m, nn.Conv2d) and m.groups != 1 for m in modules.values()):
        raise ValueError("model has grouped convolutions; remove_nodes handles plain chains")
    following = names[names.index(layer) + 1]
    return modules[layer], following, modules[following]


def _input_mask(module: nn.Module, nxt: nn.Module, keep: torch.Tensor) -> torch.Tensor:
    """Which inputs of `nxt` survive: a conv layer feeding a linear one through a flatten gives
    each channel `in_features / channels` consecutive inputs."""
    if isinstance(module, nn.Conv2d) and isinstance(nxt, nn.Linear):
        per, rest = divmod(nxt.in_features, module.out_channels)
        if rest:
            raise ValueError(
                f"{nxt.in_features} inputs of the next layer do not split over {module.out_channels} channels"
            )
        return keep.repeat_interleave(per)
    return keep


def mask_nodes(model: nn.Module, layer: str, keep: torch.Tensor) -> nn.Module:
    """A copy of `model` whose removed nodes (or channels) have zero incoming weights and bias
    and zero outgoing weights."""
    module, following, _ = _check_chain(model, layer)
    masked = copy.deepcopy(model)
    lin, nxt = masked.get_submodule(layer), masked.get_submodule(following)
    keep = check_keep(keep, lin.weight.shape[0], one=True).to(lin.weight.device)
    with torch.no_grad():
        lin.weight[~keep] = 0
        if lin.bias is not None:
            lin.bias[~keep] = 0
        nxt.weight[:, ~_input_mask(lin, nxt, keep)] = 0
    return masked


def _smaller(module: nn.Module, out_keep: torch.Tensor | None, in_keep: torch.Tensor | None) -> nn.Module:
    """A new Linear/Conv2d holding the kept output rows and input columns of `module`."""
    w = module.weight
    w = w[out_keep] if out_keep is not None else w
    w = w[:, in_keep] if in_keep is not None else w
    if isinstance(module, nn.Linear):
        new = nn.Linear(w.shape[1], w.shape[0], bias=module.bias is not None)
    else:
        new = nn.Conv2d(
            w.shape[1], w.shape[0], module.kernel_size, module.stride, module.padding, module.dilation,
            bias=module.bias is not None, padding_mode=module.padding_mode,
        )  # fmt: skip
    new = new.to(w.device, w.dtype).train(module.training)
    with torch.no_grad():
        new.weight.copy_(w)
        if module.bias is not None:
            new.bias.copy_(module.bias[out_keep] if out_keep is not None else module.bias)
    return new


def remove_nodes(model: nn.Module, layer: str, keep: torch.Tensor) -> nn.Module:
    """A copy of `model` in which the removed nodes (or conv channels) are gone: `layer` has
    `keep.sum()` outputs and the next layer as many inputs. Its outputs equal
    `mask_nodes(model, layer, keep)`'s. Works on MLP, Conv4Net and other plain chains."""
    module, following, nxt = _check_chain(model, layer)
    keep = check_keep(keep, module.weight.shape[0], one=True).to(module.weight.device)
    if not keep.any():
        raise ValueError(f"keep removes every node of layer={layer!r}; at least one must stay")
    smaller = copy.deepcopy(model)
    smaller.set_submodule(layer, _smaller(module, keep, None))
    smaller.set_submodule(following, _smaller(nxt, None, _input_mask(module, nxt, keep)))
    return smaller


def _masked_next_preactivations(act: torch.Tensor, masks: torch.Tensor, nxt: nn.Linear) -> torch.Tensor:
    """Pre-activations of the next layer under each mask: (N, t, out) from act (N, H), masks (t, H).

    One matrix product act @ [W_next^T * m_1, ..., W_next^T * m_t] of shape (N, H) x (H, t*out).
    """
    w_eff = masks.to(act.dtype).unsqueeze(2) * nxt.weight.T.unsqueeze(0)  # (t, H, out)
    z = act @ w_eff.permute(1, 0, 2).reshape(act.shape[1], -1)  # (N, t*out)
    z = z.view(len(act), len(masks), -1)
    return z if nxt.bias is None else z + nxt.bias


@dataclass
class MaskScores:
    """Mean cross-entropy and accuracy of a model under each of T keep-masks: (T,) each,
    float64 on the CPU."""

    loss: torch.Tensor
    acc: torch.Tensor


@torch.no_grad()
def evaluate_masks(
    model: nn.Module, layer: str, loader: Iterable, *, keep: torch.Tensor, chunk: int | None = None
) -> MaskScores:
    """Loss and accuracy of the model under each keep-mask, in batched passes.

    keep: (T, n_nodes) bool, one keep-mask a row. The layer's activations are computed once per
    data batch; the next layer's pre-activations under a chunk of masks come from one matrix product with
    per-mask effective weights W_next * mask, never from T forward passes.
    """
    check_model(model)
    view = linear_chain(model)
    index = view.index(layer, model)
    check_width(view.linears[index], layer)
    nxt = view.linears[index + 1]
    masks = check_keep(keep, view.linears[index].out_features)
    if masks.dim() == 1:
        masks = masks.unsqueeze(0)
    chunk = max(1, min(32, len(masks))) if chunk is None else check_chunk(chunk, len(masks), "masks")
    device = model_device(model)
    masks = masks.to(device)
    n_masks = masks.shape[0]
    loss_sum = torch.zeros(n_masks, dtype=torch.float64, device=device)
    correct = torch.zeros(n_masks, dtype=torch.long, device=device)
    n = 0
    with mode(model, training=False):
        for x, y in loader:
            x, y = to_device((x, y), device)
            check_labels(y, view.linears[-1].out_features)
            act = view.activations(index, x)  # (N, H), shared by every mask
            for start in range(0, n_masks, chunk):
                z = _masked_next_preactivations(act, masks[start : start + chunk], nxt)  # (N, t, out)
                t = z.shape[1]
                if index + 2 < len(view.linears):  # layers follow: run them on all N*t rows at once
                    z = view.forward_from(index, z.flatten(0, 1)).view(len(y), t, -1)
                target = z.gather(2, y.view(-1, 1, 1).expand(-1, t, 1)).squeeze(2)  # (N, t)
                top = z.max(2).values  # one pass gives the stable log-sum-exp and the prediction
                # the plain max-shifted log-sum-exp; importance._last_hidden_sums needs its own (a bound
                # of every ablated logit for its rank-one updates, and per-class sums)
                lse = top + (z - top.unsqueeze(2)).exp_().sum(2).log_()
                loss_sum[start : start + t] += (lse - target).sum(0).double()
                correct[start : start + t] += (target >= top).sum(0)  # the target's logit is the largest
            n += len(y)
    check_examples(n, "evaluate_masks")
    return MaskScores((loss_sum / n).cpu(), (correct.double() / n).cpu())


@dataclass
class ShrinkResult:
    """Algorithm 2 over R runs of S steps (row 0: the intact model). Per (step, run): the nodes
    removed so far (long), whether that step's removal was kept (bool), and the kept model's
    validation loss and accuracy (float64), each (S + 1, R); `keep` the final keep-masks
    (R, n_nodes)."""

    removed: torch.Tensor
    accepted: torch.Tensor
    val_loss: torch.Tensor
    val_acc: torch.Tensor
    keep: torch.Tensor


@torch.no_grad()
def shrink_randomly(
    model: nn.Module,
    layer: str,
    n_remove: int,
    val_loader: Iterable,
    n_runs: int = 1,
    generator: torch.Generator | None = None,
    tol: float = 0.0,
) -> ShrinkResult:
    """Algorithm 2 (shrinking by random removal), `n_runs` independent runs side by side.

    Rule: each step draws `n_remove` nodes at random from the candidates not yet tested and
    removes them together; the removal is kept if the validation loss does not rise by more
    than `tol` (loss_new <= loss_current + tol), otherwise it is undone. Either way
    the drawn nodes leave the candidate pool. A run ends when fewer than `n_remove` candidates
    remain. Each step evaluates one mask per run, all runs in one batched pass.
    """
    view = linear_chain(model)
    n_nodes = view.linears[view.index(layer, model)].out_features
    if not 1 <= n_remove <= n_nodes:
        raise ValueError(f"n_remove={n_remove} is out of range; allowed: 1..{n_nodes}")
    if n_runs < 1:
        raise ValueError(f"n_runs={n_runs} must be at least 1")
    check_tol("tol", tol)
    keep = torch.ones(n_runs, n_nodes, dtype=torch.bool)
    untested = torch.ones(n_runs, n_nodes, dtype=torch.bool)
    base = evaluate_masks(model, layer, val_loader, keep=keep[:1])
    loss, acc = base.loss.expand(n_runs).clone(), base.acc.expand(n_runs).clone()
    history = [((~keep).sum(1), torch.ones(n_runs, dtype=torch.bool), loss.clone(), acc.clone())]
    while int(untested.sum(1).min()) >= n_remove:
        # draw n_remove untested nodes per run: random keys, untested first
        keys = torch.rand(n_runs, n_nodes, generator=generator) + (~untested).float() * 2
        drawn = keys.argsort(dim=1)[:, :n_remove]
        trial = keep.clone()
        trial.scatter_(1, drawn, False)
        untested.scatter_(1, drawn, False)
        scores = evaluate_masks(model, layer, val_loader, keep=trial)
        accept = scores.loss <= loss + tol
        keep[accept] = trial[accept]
        loss[accept] = scores.loss[accept]
        acc[accept] = scores.acc[accept]
        history.append(((~keep).sum(1), accept, loss.clone(), acc.clone()))
    removed, accepted, val_loss, val_acc = (torch.stack(column) for column in zip(*history, strict=True))
    return ShrinkResult(removed, accepted, val_loss, val_acc, keep)


def magnitude_prune(model: nn.Module, layer: str, fraction: float) -> nn.Module:
    """A copy of `model` with the fraction `fraction` of `layer`'s weights of smallest magnitude set
    to zero (unstructured, no retraining; draft 003, part 2). The shapes stay: zeroed weights save
    nothing on dense hardware, which is why the book removes whole nodes instead."""
    if not (isinstance(fraction, int | float) and 0 <= fraction < 1):
        raise ValueError(f"fraction={fraction!r} is out of range; allowed: [0, 1)")
    names = dict(model.named_modules())
    if layer not in names or not isinstance(names[layer], nn.Conv2d | nn.Linear):
        allowed = [n for n, m in names.items() if isinstance(m, nn.Conv2d | nn.Linear)]
        raise ValueError(
            f"layer={layer!r} is not a Conv2d or Linear of the model; allowed: {', '.join(allowed)}"
        )
    new = copy.deepcopy(model)
    weight = new.get_submodule(layer).weight.data
    n_zero = int(round(fraction * weight.numel()))
    if n_zero:
        order = weight.abs().flatten().argsort()
        weight.view(-1)[order[:n_zero]] = 0.0
    return new


def smallest_l1_filters(conv: nn.Conv2d, fraction: float) -> torch.Tensor:
    """Keep-mask (out_channels,) without the fraction `fraction` of filters of smallest L1 norm
    (Li et al. 2017); at least one filter stays."""
    if not (isinstance(fraction, int | float) and 0 <= fraction < 1):
        raise ValueError(f"fraction={fraction!r} is out of range; allowed: [0, 1)")
    n = conv.out_channels
    n_remove = min(int(round(fraction * n)), n - 1)
    order = conv.weight.detach().abs().sum(dim=(1, 2, 3)).argsort()
    keep = torch.ones(n, dtype=torch.bool, device=conv.weight.device)
    keep[order[:n_remove]] = False
    return keep


def _smaller_norm(norm: nn.BatchNorm2d, keep: torch.Tensor) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(int(keep.sum()), norm.eps, norm.momentum, norm.affine, norm.track_running_stats)
    new = new.to(norm.weight.device if norm.affine else keep.device).train(norm.training)
    with torch.no_grad():
        if norm.affine:
            new.weight.copy_(norm.weight[keep])
            new.bias.copy_(norm.bias[keep])
        if norm.track_running_stats:
            new.running_mean.copy_(norm.running_mean[keep])
            new.running_var.copy_(norm.running_var[keep])
            new.num_batches_tracked.copy_(norm.num_batches_tracked)
    return new


def remove_filters(model: nn.Module, layer: str, keep: torch.Tensor) -> nn.Module:
    """A copy of `model` without the filters of conv `layer` that `keep` (bool, (out_channels,))
    drops, nor their batch-norm channels, nor the next layer's matching inputs (a conv, or a
    linear layer after a flatten). Its outputs equal those of the model with those filters'
    activations zeroed after the batch norm (tested)."""
    path = follow_filters(model, layer)  # batch norm and next layer, from the traced graph
    check_model(model)
    modules = dict(model.named_modules())
    conv = modules[layer]
    keep = check_keep(keep, conv.out_channels, one=True).to(conv.weight.device)
    if not keep.any():
        raise ValueError(f"keep removes every filter of layer={layer!r}; at least one must stay")
    smaller = copy.deepcopy(model)
    smaller.set_submodule(layer, _smaller(conv, keep, None))
    if path.norm is not None:
        smaller.set_submodule(path.norm, _smaller_norm(modules[path.norm], keep))
    nxt = modules[path.next]
    smaller.set_submodule(path.next, _smaller(nxt, None, _input_mask(conv, nxt, keep)))
    return smaller
