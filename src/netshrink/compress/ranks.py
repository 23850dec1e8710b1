"""Ranks: the parameters a decomposition would have, the largest rank within a budget, and rank
rules (VBMF, an energy fraction) turned into explicit ranks."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from netshrink.checks import is_integer
from netshrink.compress.layers import check_conv, rank_pair, weight64
from netshrink.compress.vbmf import evbmf_rank

__all__ = [
    "RANK_RULES",
    "layer_parameters",
    "rank_for_budget",
    "resolve_rank",
    "select_rank",
    "unfold",
]

RANK_RULES = ("vbmf", "an energy fraction in (0, 1)")


def layer_parameters(module: nn.Module, method: str, rank: Any, **options: Any) -> int:
    """Parameters of `module` decomposed by `method` at explicit `rank`, without decomposing."""
    bias = module.bias.numel() if module.bias is not None else 0
    if isinstance(module, nn.Linear):
        out_f, in_f = module.weight.shape
        if method == "tucker1":
            return rank * (in_f + out_f) + bias
        if method == "tucker2":
            r_in, r_out = rank_pair(rank)
            return in_f * r_in + r_in * r_out + r_out * out_f + bias
        if method == "tt":
            modes = list(zip(options["in_modes"], options["out_modes"], strict=True))
            r = [1, *([rank] * (len(modes) - 1) if isinstance(rank, int) else rank), 1]
            return sum(r[k] * i * o * r[k + 1] for k, (i, o) in enumerate(modes)) + bias
    elif isinstance(module, nn.Conv2d):
        T, S, kh, kw = module.weight.shape
        if method == "tucker2":
            r_in, r_out = rank_pair(rank)
            return S * r_in + r_in * r_out * kh * kw + r_out * T + bias
        if method == "tucker1":
            return S * rank * kh * kw + rank * T + bias
        if method == "cp":
            return rank * (S + kh + kw + T) + bias
        if method == "tt":
            r1, r2, r3 = (rank,) * 3 if isinstance(rank, int) else rank
            return S * r1 + r1 * r2 * kh + r2 * r3 * kw + r3 * T + bias
        if method == "jaderberg":
            return rank * (S * kh + T * kw) + bias
        if method == "btd":
            r_in, r_out = rank_pair(rank)
            return options["n_blocks"] * (S * r_in + r_in * r_out * kh * kw + r_out * T) + bias
    raise ValueError(f"method={method!r} does not apply to {type(module).__name__}")


def rank_for_budget(module: nn.Conv2d, method: str, budget: int, **options: Any) -> Any:
    """The largest rank of `method` whose decomposition of `module` has at most `budget`
    parameters; one free size t: R for cp/jaderberg/tucker1, (t, t) for tucker2/btd blocks
    and (t, t, t) for tt, each rank capped by its dimension."""
    conv = check_conv(module)
    T, S, kh, kw = conv.weight.shape
    caps = {
        "tucker2": lambda t: [min(t, S), min(t, T)],
        "btd": lambda t: [min(t, S), min(t, T)],
        "tucker1": lambda t: min(t, T),
        "cp": lambda t: t,
        "jaderberg": lambda t: min(t, S * kh, T * kw),
        "tt": lambda t: [min(t, S, kh * kw * T), min(t, S * kh, kw * T), min(t, S * kh * kw, T)],
    }
    if method not in caps:
        raise ValueError(f"method={method!r}; allowed: {', '.join(caps)}")
    best = None
    for t in range(1, max(S, T) * kh * kw + 1):
        rank = caps[method](t)
        if layer_parameters(conv, method, rank, **options) > budget:
            break
        best = rank
    if best is None:
        raise ValueError(f"budget={budget} is below the smallest {method} decomposition of the module")
    return best


# ---------------------------------------------------------------- ranks and whole models


def unfold(weight: torch.Tensor, mode: int) -> torch.Tensor:
    """Mode-`mode` unfolding: (weight.shape[mode], everything else)."""
    return weight.movedim(mode, 0).reshape(weight.shape[mode], -1)


def select_rank(weight: torch.Tensor, mode: int, rule: str | float) -> int:
    """Rank of mode `mode` of `weight` by `rule`: 'vbmf' (EVBMF on the unfolding, as Kim et al.
    2016) or an energy fraction in (0, 1) (fewest singular values whose squares keep it). At least 1."""
    matrix = unfold(weight.detach(), mode)
    if rule == "vbmf":
        return max(1, evbmf_rank(matrix))
    if isinstance(rule, float) and 0 < rule < 1:
        energy = torch.linalg.svdvals(matrix.double()) ** 2
        kept = torch.cumsum(energy, 0) / energy.sum()
        return (
            int(
                torch.searchsorted(
                    kept, torch.tensor(float(rule), dtype=kept.dtype, device=kept.device)
                ).item()
            )
            + 1
        )
    raise ValueError(f"rank rule {rule!r} is not known; allowed: integers, {', '.join(RANK_RULES)}")


def resolve_rank(module: nn.Module, method: str, rank: Any) -> Any:
    """Turn a rule ('vbmf' or an energy fraction) into explicit ranks for a Tucker method."""
    if is_integer(rank):
        return int(rank)
    if isinstance(rank, list | tuple):
        return rank
    if method not in ("tucker1", "tucker2"):
        raise ValueError(f"rank={rank!r} for method {method!r}: rank rules apply to tucker1 and tucker2 only")
    w = weight64(module)
    if method == "tucker1":
        return select_rank(w, 0, rank)
    return [select_rank(w, 1, rank), select_rank(w, 0, rank)]
