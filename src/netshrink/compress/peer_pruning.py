"""Torch-Pruning's filter pruning of a whole network, beside the book's sensitivity-based rates.

Torch-Pruning (Fang et al. 2023, `pip install torch-pruning`) removes channels through its
dependency graph: a conv's filters together with its batch norm's channels and the next layer's
inputs, ranked by a *group* importance (here the magnitude of every coupled weight, reduced by
the mean over the group and normalised by the mean, as the library ships it). "l1" is
`GroupMagnitudeImportance(p=1)`, "group-norm" its p=2; the ratio is the fraction of channels
removed, of every layer alike (uniform) or of all layers ranked together (global). The library
is optional: `peer_importance.version()` is None when it is not installed, and
`torch_pruning_filters` then refuses in one line. Choosing a ratio by measured time is the
caller's (compress times nothing): `ratio_for_speedup` takes the speedups it measured.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from netshrink.checks import check_int, layer_names
from netshrink.compress import peer_importance

__all__ = ["CRITERIA", "Reach", "check_ratio", "output_layer", "ratio_for_speedup", "torch_pruning_filters"]

CRITERIA = {"l1": 1, "group-norm": 2}  # criterion -> the norm p of Torch-Pruning's GroupMagnitudeImportance


def check_ratio(name: str, value: object) -> float:
    """A pruning ratio: a real number (not a bool) with 0 < value < 1, else a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
        raise ValueError(f"{name}={value!r} is out of range; allowed: a number with 0 < {name} < 1")
    return float(value)


def output_layer(model: nn.Module) -> str:
    """The name of `model`'s last Linear or Conv2d: its output layer, kept whole (its outputs are
    the classes)."""
    names = layer_names(model)
    if not names:
        raise ValueError("model has no Linear or Conv2d layer; allowed: a model with one")
    return names[-1]


def _check(model: nn.Module, criterion: str, global_pruning: bool, ratio: float, ignored: Sequence[str],
           round_to: int) -> None:  # fmt: skip
    if criterion not in CRITERIA:
        raise ValueError(f"criterion={criterion!r} is not known; allowed values: {', '.join(CRITERIA)}")
    if not isinstance(global_pruning, bool):
        raise ValueError(f"global_pruning={global_pruning!r} is not a bool; allowed values: True, False")
    check_ratio("ratio", ratio)
    check_int("round_to", round_to, 1)
    names = dict(model.named_modules())
    unknown = [name for name in ignored if not isinstance(name, str) or not name or name not in names]
    if unknown:
        raise ValueError(
            f"ignored_layers={unknown} are not layers of the model; allowed: names of its submodules"
        )


def torch_pruning_filters(
    model: nn.Module,
    example_inputs: torch.Tensor,
    *,
    criterion: str,
    global_pruning: bool,
    ratio: float,
    ignored_layers: Sequence[str] = (),
    round_to: int = 1,
) -> nn.Module:
    """A copy of `model` with the fraction `ratio` of its channels removed by Torch-Pruning's
    `MetaPruner` in one step, ranked by `criterion` ("l1" or "group-norm"), per layer
    (`global_pruning` False: every layer loses the same fraction) or over all layers at once;
    channels kept rounded down to a multiple of `round_to`. `example_inputs` (1, ...) traces the
    graph. The layers named in `ignored_layers` and the output layer (`output_layer`) keep
    their outputs (their inputs follow the layers before them). A layer the ratio would empty is
    left whole, as the library does. `model` is left as it was."""
    _check(model, criterion, global_pruning, ratio, ignored_layers, round_to)
    peer_importance.require()
    import torch_pruning as tp  # optional dependency: imported only here

    work = copy.deepcopy(model).eval()
    kept = {*ignored_layers, output_layer(model)}
    pruner = tp.pruner.MetaPruner(
        work,
        example_inputs[:1].to(next(work.parameters()).device),
        importance=tp.importance.GroupMagnitudeImportance(p=CRITERIA[criterion]),
        global_pruning=global_pruning,
        pruning_ratio=ratio,
        ignored_layers=[work.get_submodule(name) for name in kept],
        round_to=round_to,
    )
    pruner.step()
    return work.train(model.training)


@dataclass(frozen=True)
class Reach:
    """The outcome of a search for a target speedup: the chosen `ratio` and its measured
    `speedup`, `reached` False when no ratio reached `target` (then the ratio that measured
    fastest)."""

    ratio: float
    speedup: float
    target: float
    reached: bool

    def note(self) -> str:
        """'' when reached, else 'cannot reach 2x: best 1.7x at ratio 0.9'."""
        if self.reached:
            return ""
        return f"cannot reach {self.target:g}x: best {self.speedup:.2f}x at ratio {self.ratio:g}"


def ratio_for_speedup(speedups: Mapping[float, float], target: float) -> Reach:
    """The smallest ratio whose candidate measured at least `target` times as fast as the
    original (`speedups`: ratio -> measured speedup), or, when none did, the fastest, marked
    not reached."""
    if not speedups:
        raise ValueError("speedups must hold at least one measured ratio")
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or not 1 <= target < math.inf:
        raise ValueError(f"target_speedup={target!r} is out of range; allowed: a number of at least 1")
    for ratio in sorted(speedups):
        if speedups[ratio] >= target:
            return Reach(ratio, speedups[ratio], target, True)
    best = max(speedups, key=speedups.__getitem__)
    return Reach(best, speedups[best], target, False)
