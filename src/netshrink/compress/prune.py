"""Removing hidden nodes: random masks, masking, physical removal, random shrinking, magnitude
and filter pruning.

A *keep-mask* is a boolean tensor over the nodes of one layer (True = keep; `masking.check_keep`).
Masking a node zeroes its incoming weights, its bias and its outgoing weights (Algorithm 1 of
the Oslo draft); since ReLU(0) = 0 the masked node then contributes nothing, so masking equals
removing the node, which `remove_nodes` does physically (smaller weight matrices).

Layers are named as in the model: `hidden.0`, `hidden.1`, ... for `models.MLP`, `0`, `2`, ...
for an `nn.Sequential`; the layer a layer's nodes feed and the output layer (whose nodes are the
classes and cannot go) are found in the traced graph (`graph.node_path`), whatever the order in
which a model registers its layers.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from netshrink.checks import check_fraction, check_int, check_layer, check_model, check_tol
from netshrink.compress.chain import layer_outputs, linear_chain
from netshrink.compress.chain import tail as chain_tail
from netshrink.compress.graph import follow_filters, node_path
from netshrink.compress.masking import check_keep, evaluate_masks

__all__ = [
    "SHRINK_RULES",
    "ShrinkResult",
    "magnitude_prune",
    "mask_nodes",
    "random_node_masks",
    "remove_filters",
    "remove_nodes",
    "shrink_randomly",
    "smallest_l1_filters",
]


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


def _check_path(model: nn.Module, layer: str, operation: str) -> tuple[nn.Module, str, nn.Module]:
    """The module `layer`, the name of the layer its nodes reach in the traced graph and that
    layer (`graph.node_path`, no normalisation between); a ValueError before any copy otherwise."""
    path = node_path(model, layer, operation, norms=False)
    module = check_layer(model, layer, [layer])
    return module, path.next, model.get_submodule(path.next)


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
    module, following, _ = _check_path(model, layer, "node masking")
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
    module, following, nxt = _check_path(model, layer, "node removal")
    keep = check_keep(keep, module.weight.shape[0], one=True).to(module.weight.device)
    if not keep.any():
        raise ValueError(f"keep removes every node of layer={layer!r}; at least one must stay")
    smaller = copy.deepcopy(model)
    smaller.set_submodule(layer, _smaller(module, keep, None))
    smaller.set_submodule(following, _smaller(nxt, None, _input_mask(module, nxt, keep)))
    return smaller


SHRINK_RULES = ("loss", "loss and accuracy")
"""When Algorithm 2 keeps a removal: the loss does not rise; or (draft 004's `best_loss` and
`best_acc`) the loss does not rise and the accuracy does not fall."""


@dataclass
class ShrinkResult:
    """Algorithm 2 over R runs of S steps, indexed by step: row s is the state after step s (row 0,
    before the first step, the intact model; no row is a mask). Per (step, run): the nodes
    removed so far (long), whether that step's removal was kept (bool), and the kept model's
    loss and accuracy on the data the decisions use (float64), each (S + 1, R); `keep` the
    final keep-masks (R, n_nodes)."""

    removed: torch.Tensor
    accepted: torch.Tensor
    loss: torch.Tensor
    acc: torch.Tensor
    keep: torch.Tensor


def check_rule(rule: str) -> str:
    """One of `SHRINK_RULES`, else a ValueError naming them."""
    if rule not in SHRINK_RULES:
        raise ValueError(f"rule={rule!r} is not known; allowed values: {', '.join(map(repr, SHRINK_RULES))}")
    return rule


@torch.no_grad()
def shrink_randomly(
    model: nn.Module,
    layer: str,
    n_remove: int,
    loader: Iterable,
    n_runs: int = 1,
    generator: torch.Generator | None = None,
    tol: float = 0.0,
    rule: str = "loss",
) -> ShrinkResult:
    """Algorithm 2 (shrinking by random removal), `n_runs` independent runs side by side.

    Each step draws `n_remove` nodes at random from the candidates not yet tested (the draft's
    `to_test`) and removes them together; the removal is kept if the loss on `loader` does not
    rise by more than `tol` (loss_new <= loss_kept + tol) and, with `rule="loss and accuracy"`,
    the accuracy on `loader` does not fall (acc_new >= acc_kept); otherwise it is undone. Either
    way the drawn nodes leave the candidate pool. A run ends when fewer than `n_remove`
    candidates remain. The layer's outputs on `loader` are computed once (`chain.layer_outputs`);
    each step evaluates one mask per run on them, all runs in one batched pass.
    """
    check_rule(rule)
    view = linear_chain(model)
    index = view.index(layer, model)
    n_nodes = view.linears[index].out_features
    check_int("n_remove", n_remove, 1, n_nodes)
    check_int("n_runs", n_runs, 1)
    check_tol("tol", tol)
    outputs, tail = layer_outputs(model, view, index, loader), chain_tail(view, index)
    keep = torch.ones(n_runs, n_nodes, dtype=torch.bool)
    untested = torch.ones(n_runs, n_nodes, dtype=torch.bool)
    base = evaluate_masks(tail, "0", outputs, keep=keep[:0])
    loss = torch.full((n_runs,), base.intact_loss, dtype=torch.float64)
    acc = torch.full((n_runs,), base.intact_acc, dtype=torch.float64)
    history = [((~keep).sum(1), torch.ones(n_runs, dtype=torch.bool), loss.clone(), acc.clone())]
    while int(untested.sum(1).min()) >= n_remove:
        # draw n_remove untested nodes per run: random keys, untested first
        keys = torch.rand(n_runs, n_nodes, generator=generator) + (~untested).float() * 2
        drawn = keys.argsort(dim=1)[:, :n_remove]
        trial = keep.clone()
        trial.scatter_(1, drawn, False)
        untested.scatter_(1, drawn, False)
        scores = evaluate_masks(tail, "0", outputs, keep=trial)
        accept = scores.loss <= loss + tol
        if rule == "loss and accuracy":
            accept &= scores.acc >= acc
        keep[accept] = trial[accept]
        loss[accept] = scores.loss[accept]
        acc[accept] = scores.acc[accept]
        history.append(((~keep).sum(1), accept, loss.clone(), acc.clone()))
    removed, accepted, kept_loss, kept_acc = (torch.stack(column) for column in zip(*history, strict=True))
    return ShrinkResult(removed, accepted, kept_loss, kept_acc, keep)


def _below_one(fraction: object) -> float:
    """A fraction in [0, 1) (not a bool, finite), else a ValueError naming `fraction`."""
    if isinstance(fraction, numbers.Real) and not isinstance(fraction, bool) and not 0 <= fraction < 1:
        raise ValueError(f"fraction={fraction!r} is out of range; allowed: [0, 1)")
    return check_fraction("fraction", fraction)  # its kind: a finite real number, not a bool


def magnitude_prune(model: nn.Module, layer: str, fraction: float) -> nn.Module:
    """A copy of `model` with the fraction `fraction` of `layer`'s weights of smallest magnitude set
    to zero (unstructured, no retraining; draft 003, part 2). The shapes stay: zeroed weights save
    nothing on dense hardware, which is why the book removes whole nodes instead."""
    fraction = _below_one(fraction)
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


def smallest_l1_filters(conv: nn.Conv2d, fraction: float, multiple_of: int = 1) -> torch.Tensor:
    """Keep-mask (out_channels,) without the fraction `fraction` of filters of smallest L1 norm
    (Li et al. 2017); at least one filter stays. With `multiple_of` > 1 the filters kept are rounded
    down to a multiple of it (at least one multiple, at most all filters): on a CPU whose vector
    unit holds 8 floats (AVX2), convs with a multiple of 8 channels run on oneDNN's blocked
    kernels without padding."""
    fraction = _below_one(fraction)
    check_int("multiple_of", multiple_of, 1)
    n = conv.out_channels
    n_keep = n - min(int(round(fraction * n)), n - 1)
    if n_keep < n:
        n_keep = min(max(multiple_of, n_keep - n_keep % multiple_of), n)
    order = conv.weight.detach().abs().sum(dim=(1, 2, 3)).argsort()
    keep = torch.ones(n, dtype=torch.bool, device=conv.weight.device)
    keep[order[: n - n_keep]] = False
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
