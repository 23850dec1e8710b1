"""tensorly-torch's factorized convolutions at the ranks of the book's own, for side-by-side runs.

tensorly-torch (`pip install tensorly-torch`, Kossaifi et al.) keeps a factorized tensor behind a
functional convolution (`tltorch.FactorizedConv`). With `implementation="factorized"` it convolves
through the factors (CP as a sequence of small convolutions, Tucker through its core, TT through
its cores), so that it can be faster than the dense layer; its default, "reconstructed", rebuilds
the whole kernel on every forward pass. The library is optional: `version()` is None without it.

Ranks map one to one (the kernel is (T, S, kh, kw)): CP rank R is tltorch's CP rank R; Tucker-2
ranks (r_in, r_out) are tltorch's Tucker ranks (r_out, r_in, kh, kw), the spatial modes at full
rank; TT ranks (r1, r2, r3) of the kernel ordered (S, kh, kw, T) are tltorch's (1, r1, r2, r3, 1)
(it moves the output mode last, as `conv.tt_conv` does).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from torch import nn

from netshrink.compress.decompose import resolve_plan

__all__ = ["FACTORIZATION", "PEER", "tltorch_conv", "tltorch_model", "tltorch_rank", "version"]

PEER = "tensorly-torch"
FACTORIZATION = {"cp": "cp", "tucker2": "tucker", "tt": "tt"}  # our method -> tltorch's


def version() -> str | None:
    """The installed tensorly-torch's version (from its package metadata), or None."""
    try:
        return metadata.version(PEER)
    except metadata.PackageNotFoundError:
        return None


def _check_method(method: str) -> None:
    if method not in FACTORIZATION:
        raise ValueError(
            f"method={method!r} has no tensorly-torch layer here; allowed values: {', '.join(FACTORIZATION)}"
        )


def tltorch_rank(conv: nn.Conv2d, method: str, rank: Any) -> int | list[int]:
    """tensorly-torch's rank for our `method` at our `rank` on `conv` (see the module's note)."""
    _check_method(method)
    _, _, kh, kw = conv.weight.shape
    if method == "cp":
        return int(rank)
    if method == "tucker2":
        r_in, r_out = (rank, rank) if isinstance(rank, int) else rank
        return [int(r_out), int(r_in), kh, kw]
    r = [int(rank)] * 3 if isinstance(rank, int) else [int(v) for v in rank]
    return [1, *r, 1]


def tltorch_conv(conv: nn.Conv2d, method: str, rank: Any, implementation: str = "factorized") -> nn.Module:
    """`tltorch.FactorizedConv.from_conv` of `conv` at our `rank` of `method`, its factors
    initialised by decomposing the trained kernel (tensorly-torch's own decomposition)."""
    _check_method(method)
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"conv is a {type(conv).__name__}; allowed: a Conv2d")
    if implementation not in ("factorized", "reconstructed"):
        raise ValueError(
            f"implementation={implementation!r} not known; allowed values: factorized, reconstructed"
        )
    if version() is None:
        raise ImportError(f"{PEER} is not installed (pip install {PEER}); its layers cannot be built")
    import tltorch  # optional dependency: imported only here

    return tltorch.FactorizedConv.from_conv(
        conv,
        rank=tltorch_rank(conv, method, rank),
        factorization=FACTORIZATION[method],
        implementation=implementation,
        decompose_weights=True,
    )


def tltorch_model(model: nn.Module, plan: Mapping[str, Any], implementation: str = "factorized") -> nn.Module:
    """A copy of `model` with each conv of `plan` ({layer: {"method", "rank"}}, as
    `decompose.decompose_model` takes) replaced by tensorly-torch's factorized layer."""
    resolved = resolve_plan(model, plan)
    for spec in resolved.values():
        _check_method(spec["method"])
    out = copy.deepcopy(model)
    for layer, spec in resolved.items():
        parent, _, name = layer.rpartition(".")
        conv = out.get_submodule(layer)
        setattr(
            out.get_submodule(parent) if parent else out,
            name,
            tltorch_conv(conv, spec["method"], spec["rank"], implementation),
        )
    return out
