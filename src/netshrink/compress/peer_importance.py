"""Torch-Pruning's importance criteria for the nodes of one layer, beside the book's oracle.

Torch-Pruning (Fang et al. 2023, `pip install torch-pruning`) scores a *group*: the layer's
output units together with everything its dependency graph couples to them (here the next
layer's input columns), reduced by the mean over the group's layers and normalised by the mean,
as the library ships its criteria. Higher scores mean more important, as for the oracle's loss
change. The library is optional: `version()` is None when it is not installed, and
`torch_pruning_scores` then refuses in one line. A criterion that needs what the layer does not
have (BN-scale: a batch norm after it) is listed in `NOT_APPLICABLE` with the reason.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata

import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from netshrink.checks import check_examples, check_layer, check_width
from netshrink.devices import mode, model_device, to_device

__all__ = [
    "CRITERIA",
    "NOT_APPLICABLE",
    "PEER",
    "Criterion",
    "ranking_order",
    "require",
    "torch_pruning_scores",
    "version",
]

PEER = "Torch-Pruning"
_DIST = "torch-pruning"


def version() -> str | None:
    """The installed Torch-Pruning's version (from its package metadata), or None."""
    try:
        return metadata.version(_DIST)
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Criterion:
    """One Torch-Pruning importance: its class name in `torch_pruning.importance`, the keyword
    arguments, and what it needs of the data (None, "gradients", "per-example gradients" or
    "activations")."""

    cls: str
    kwargs: dict
    needs: str | None = None


# criterion name -> how Torch-Pruning computes it (defaults as the library ships them)
CRITERIA: dict[str, Criterion] = {
    "magnitude L1": Criterion("GroupMagnitudeImportance", {"p": 1}),
    "magnitude L2 (group norm)": Criterion("GroupMagnitudeImportance", {"p": 2}),
    "LAMP": Criterion("LAMPImportance", {}),
    "FPGM (geometric median)": Criterion("FPGMImportance", {}),
    "Taylor (grouped)": Criterion("GroupTaylorImportance", {}, "gradients"),
    "Hessian (OBD)": Criterion("GroupHessianImportance", {}, "per-example gradients"),
    "activation": Criterion("ActivationImportance", {}, "activations"),
    "random": Criterion("RandomImportance", {}),
}
NOT_APPLICABLE = {"BN scale": "the layer has no batch norm whose scale could rank its units"}


def require() -> None:
    """Nothing when Torch-Pruning is installed; an ImportError in one line when it is not."""
    if version() is None:
        raise ImportError(f"{PEER} is not installed (pip install {_DIST}); its criteria cannot be computed")


def _batches(loader: Iterable, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    batches = [to_device((x, y), device) for x, y in loader]
    check_examples(sum(len(y) for _, y in batches), "torch_pruning_scores")
    return batches


def _fill_gradients(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """`.grad` of every parameter: the gradient of the mean cross-entropy over all batches."""
    n = sum(len(y) for _, y in batches)
    model.zero_grad()
    for x, y in batches:
        (F.cross_entropy(model(x), y, reduction="sum") / n).backward()


def _fill_fisher_diagonal(model: nn.Module, batches, chunk: int = 256) -> None:
    """`.grad` of every parameter: the mean over examples of the squared per-example gradient
    (the diagonal Hessian estimate OBD ranks by). Filled here rather than by the scorer's own
    `accumulate_grad`, which in Torch-Pruning 1.6.1 keeps only the last example (its sums are
    keyed by parameter but looked up by name)."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_one(p, x, y):
        return F.cross_entropy(functional_call(model, p, (x[None],)), y[None])

    per_example = vmap(grad(loss_one), in_dims=(None, 0, 0))
    sums = {k: torch.zeros_like(v) for k, v in params.items()}
    n = 0
    for x, y in batches:
        for i in range(0, len(y), chunk):
            for k, g in per_example(params, x[i : i + chunk], y[i : i + chunk]).items():
                sums[k] += g.pow(2).sum(0)
        n += len(y)
    for k, p in model.named_parameters():
        p.grad = sums[k] / n


def _score(tp, name: str, model: nn.Module, group, batches, seed: int) -> torch.Tensor:
    criterion = CRITERIA[name]
    scorer = getattr(tp.importance, criterion.cls)(**criterion.kwargs)
    if criterion.needs == "gradients":
        _fill_gradients(model, batches)
    elif criterion.needs == "per-example gradients":
        _fill_fisher_diagonal(model, batches)
    elif criterion.needs == "activations":
        with torch.no_grad(), scorer.compute_importance(model):
            model(torch.cat([x for x, _ in batches]))  # one pass: the hook keeps the last call's sums
    with torch.random.fork_rng(devices=[]):  # the random criterion draws from the global generator
        torch.manual_seed(seed)
        scores = scorer(group)
    model.zero_grad(set_to_none=True)
    return scores.detach().double().cpu()


def torch_pruning_scores(
    model: nn.Module,
    layer: str,
    loader: Iterable,
    criteria: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Each Torch-Pruning criterion's score of every unit of `layer` (a Linear's outputs or a
    Conv2d's channels), (n_units,) float64, higher meaning more important. Computed on a copy of
    `model` (the caller's weights and gradients stay as they are); `loader` gives (x, y) batches
    for the criteria that need data. criteria: names of `CRITERIA` (default: all)."""
    names = list(CRITERIA) if criteria is None else list(criteria)
    unknown = [n for n in names if n not in CRITERIA]
    if unknown:
        raise ValueError(f"criteria={unknown} not known; allowed values: {', '.join(CRITERIA)}")
    module = check_layer(model, layer, operation="Torch-Pruning importance")
    if not isinstance(module, (nn.Linear, nn.Conv2d)):
        raise ValueError(f"layer={layer!r} is a {type(module).__name__}; allowed: a Linear or a Conv2d")
    require()
    import torch_pruning as tp  # optional dependency: imported only here

    width = check_width(module, layer)
    work = copy.deepcopy(model)
    batches = _batches(loader, model_device(model))
    graph = tp.DependencyGraph().build_dependency(work, example_inputs=batches[0][0][:1])
    prune_fn = tp.prune_linear_out_channels if isinstance(module, nn.Linear) else tp.prune_conv_out_channels
    group = graph.get_pruning_group(work.get_submodule(layer), prune_fn, idxs=list(range(width)))
    with mode(work, training=False), torch.enable_grad():
        return {name: _score(tp, name, work, group, batches, seed) for name in names}


def ranking_order(scores: torch.Tensor) -> torch.Tensor:
    """Units from least to most important by `scores` (n_units,), ties by index. (n_units,) long."""
    return torch.sort(scores, stable=True).indices
