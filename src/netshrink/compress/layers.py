"""Building blocks of the decomposed layers: rank and layer checks, the weight in float64,
`PointwiseConv` and convs that copy another conv's stride and padding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from netshrink.checks import check_int, is_integer

__all__ = [
    "PointwiseConv",
    "check_chunk",
    "check_conv",
    "check_linear",
    "check_modes",
    "check_rank",
    "conv_like",
    "finish",
    "rank_list",
    "rank_pair",
    "set_weight",
    "weight64",
]

# ---------------------------------------------------------------- checks


def check_rank(name: str, value: Any, upper: int) -> int:
    """An int (numpy integers too) in 1..upper, else a ValueError naming `name`."""
    return check_int(name, value, 1, upper)


def check_chunk(value: Any, upper: int, what: str) -> int:
    """A batching `chunk`: an int in 1..upper (`upper` = the number of `what`), else a ValueError."""
    return check_int("chunk", value, 1, max(upper, 1), f"the number of {what}")


def rank_pair(rank: int | Sequence[int], name: str = "rank") -> tuple[int, int]:
    if is_integer(rank):
        return int(rank), int(rank)
    if isinstance(rank, Sequence) and len(rank) == 2:
        return rank[0], rank[1]
    raise ValueError(f"{name}={rank!r} must be an integer or a pair (rank_in, rank_out)")


def rank_list(rank: int | Sequence[int], n: int, name: str = "rank") -> list[int]:
    """`n` ranks from one integer (numpy integers too) or a sequence of `n`; a ValueError otherwise."""
    if is_integer(rank):
        return [int(rank)] * n
    if isinstance(rank, Sequence) and not isinstance(rank, str) and len(rank) == n:
        return list(rank)
    raise ValueError(f"{name}={rank!r} must be an integer or {n} ranks")


def check_modes(name: str, modes: Any) -> list[int]:
    """A list of positive integers (numpy integers too), never truncated floats."""
    if (
        isinstance(modes, str)
        or not isinstance(modes, Sequence)
        or not all(is_integer(m) and m >= 1 for m in modes)
    ):
        raise ValueError(f"{name}={modes!r}; allowed: a list of positive integers")
    return [int(m) for m in modes]


def check_conv(conv: nn.Module) -> nn.Conv2d:
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"layer is {type(conv).__name__}; allowed: nn.Conv2d")
    if conv.groups != 1:
        raise ValueError(f"conv has groups={conv.groups}; allowed: groups=1")
    if conv.padding_mode != "zeros":
        raise ValueError(f"conv has padding_mode={conv.padding_mode!r}; allowed: 'zeros'")
    return conv


def check_linear(linear: nn.Module) -> nn.Linear:
    if not isinstance(linear, nn.Linear):
        raise ValueError(f"layer is {type(linear).__name__}; allowed: nn.Linear")
    return linear


def weight64(layer: nn.Module) -> torch.Tensor:
    """The weight in float64: decompositions of these small tensors are cheap, and ALS needs it."""
    return layer.weight.detach().double()


class PointwiseConv(nn.Conv2d):
    """A 1x1 conv (stride 1, no padding, one group) that runs on NCHW input as one batched
    matrix product, (T, S) @ (N, S, H*W) -> (N, T, H, W). Hand-written because oneDNN's NCHW
    1x1 conv is several times slower than that product on CPU (`make bench`);
    channels-last input keeps oneDNN's conv, which is fast in that layout. Same weights,
    state dict and FLOPs as the `nn.Conv2d` it stands for."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or not x.is_contiguous():
            return super().forward(x)
        n, c, h, w = x.shape
        weight = self.weight.view(1, self.out_channels, c).expand(n, -1, -1)  # a view, no copy
        if self.bias is None:
            y = torch.bmm(weight, x.view(n, c, h * w))
        else:
            y = torch.baddbmm(self.bias.view(1, -1, 1), weight, x.view(n, c, h * w))
        return y.view(n, self.out_channels, h, w)


def conv_like(
    c_in: int,
    c_out: int,
    kernel: tuple[int, int],
    like: nn.Conv2d | None = None,
    axis: str = "both",
    bias: bool = False,
    groups: int = 1,
) -> nn.Conv2d:
    """A conv with `like`'s stride, padding and dilation along `axis` ('both', 'h', 'w', or
    'none' for a 1x1 conv with stride 1). A plain 1x1 conv is a `PointwiseConv`."""
    if kernel == (1, 1) and like is None and groups == 1:
        return PointwiseConv(c_in, c_out, bias=bias)
    stride, padding, dilation = (1, 1), (0, 0), (1, 1)
    if like is not None and axis != "none":
        keep_h, keep_w = axis in ("both", "h"), axis in ("both", "w")

        def pick(value: tuple[int, int], default: int) -> tuple[int, int]:
            return (value[0] if keep_h else default, value[1] if keep_w else default)

        stride, dilation = pick(like.stride, 1), pick(like.dilation, 1)
        padding = like.padding if isinstance(like.padding, str) else pick(like.padding, 0)
    return nn.Conv2d(
        c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias
    )


def finish(layers: list[nn.Module], source: nn.Module) -> nn.Sequential:
    """Copy `source`'s bias into the last layer; match its device and dtype."""
    if source.bias is not None:
        layers[-1].bias.data.copy_(source.bias.detach())
    w = source.weight
    return nn.Sequential(*layers).to(device=w.device, dtype=w.dtype)


def set_weight(layer: nn.Module, weight: torch.Tensor) -> None:
    layer.weight.data.copy_(weight.reshape(layer.weight.shape))


# ---------------------------------------------------------------- conv layers
