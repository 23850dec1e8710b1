"""Linear layers decomposed: Tucker-1 (in->R->out), Tucker-2 (in->R_in->R_out->out) and a
tensor-train matrix (Novikov et al. 2015). W is (out, in)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import tensorly as tl
import torch
from tensorly.decomposition import partial_tucker, tensor_train_matrix
from torch import nn

from netshrink.compress.layers import (
    check_linear,
    check_modes,
    check_rank,
    finish,
    rank_list,
    rank_pair,
    set_weight,
    weight64,
)

__all__ = [
    "TTLinear",
    "tt_linear",
    "tucker1_linear",
    "tucker2_linear",
]

tl.set_backend("pytorch")


def tucker1_linear(linear: nn.Linear, rank: int) -> nn.Sequential:
    """W (out, in) = A G with A (out, R), G (R, in): Linear in->R (no bias), Linear R->out."""
    linear = check_linear(linear)
    out_f, in_f = linear.weight.shape
    check_rank("rank", rank, min(in_f, out_f))
    (core, (a,)), _ = partial_tucker(weight64(linear), rank=[rank], modes=[0], init="svd")
    first = nn.Linear(in_f, rank, bias=False)
    last = nn.Linear(rank, out_f, bias=linear.bias is not None)
    set_weight(first, core)
    set_weight(last, a)
    return finish([first, last], linear)


def tucker2_linear(linear: nn.Linear, rank: int | Sequence[int]) -> nn.Sequential:
    """W (out, in) = A G B^T with B (in, R_in), G (R_out, R_in), A (out, R_out):
    Linear in->R_in, R_in->R_out (no biases), R_out->out with the bias."""
    linear = check_linear(linear)
    out_f, in_f = linear.weight.shape
    r_in, r_out = rank_pair(rank, "rank")
    check_rank("rank[0] (input features)", r_in, in_f)
    check_rank("rank[1] (output features)", r_out, out_f)
    (core, (a, b)), _ = partial_tucker(weight64(linear), rank=[r_out, r_in], modes=[0, 1], init="svd")
    first = nn.Linear(in_f, r_in, bias=False)
    middle = nn.Linear(r_in, r_out, bias=False)
    last = nn.Linear(r_out, out_f, bias=linear.bias is not None)
    set_weight(first, b.T)
    set_weight(middle, core)
    set_weight(last, a)
    return finish([first, middle, last], linear)


class TTLinear(nn.Module):
    """A tensor-train linear layer (Novikov et al. 2015): the (in x out) matrix is stored as TT
    cores (r_{k-1}, i_k, o_k, r_k) and the forward pass contracts the input with one core at a
    time, never forming the matrix. Input (N, prod(in_modes)), output (N, prod(out_modes))."""

    def __init__(self, cores: Sequence[torch.Tensor], bias: torch.Tensor | None = None):
        super().__init__()
        self.cores = nn.ParameterList(nn.Parameter(c.detach().clone()) for c in cores)
        self.in_modes = tuple(int(c.shape[1]) for c in cores)
        self.out_modes = tuple(int(c.shape[2]) for c in cores)
        self.ranks = tuple(int(c.shape[3]) for c in cores[:-1])
        self.in_features, self.out_features = math.prod(self.in_modes), math.prod(self.out_modes)
        self.bias = nn.Parameter(bias.detach().clone()) if bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        state = x.reshape(n, 1, self.in_modes[0], -1)  # (N * o_<k, r_{k-1}, i_k, i_>k)
        for k, core in enumerate(self.cores):
            state = torch.einsum("nrim,rios->nosm", state, core)  # (N o_<k, o_k, r_k, i_>k)
            rows, o, r, rest = state.shape
            nxt = self.in_modes[k + 1] if k + 1 < len(self.cores) else 1
            state = state.reshape(rows * o, r, nxt, rest // nxt)
        y = state.reshape(n, self.out_features)
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return f"in_modes={self.in_modes}, out_modes={self.out_modes}, ranks={self.ranks}"


def tt_linear(
    linear: nn.Linear, in_modes: Sequence[int], out_modes: Sequence[int], rank: int | Sequence[int]
) -> TTLinear:
    """TT-SVD (TensorLy's `tensor_train_matrix`) of W^T tensorized as (i_1..i_d, o_1..o_d).
    `rank`: one internal rank for all, or the d-1 internal rank."""
    linear = check_linear(linear)
    out_f, in_f = linear.weight.shape
    in_modes, out_modes = check_modes("in_modes", in_modes), check_modes("out_modes", out_modes)
    if len(in_modes) != len(out_modes) or len(in_modes) < 2 or min(in_modes + out_modes) < 1:
        raise ValueError(
            f"in_modes={in_modes}, out_modes={out_modes}; allowed: equally long lists (>= 2) of positive ints"
        )
    if math.prod(in_modes) != in_f:
        raise ValueError(
            f"in_modes={in_modes} multiply to {math.prod(in_modes)}; allowed: a product of {in_f}"
        )
    if math.prod(out_modes) != out_f:
        raise ValueError(
            f"out_modes={out_modes} multiply to {math.prod(out_modes)}; allowed: a product of {out_f}"
        )
    d = len(in_modes)
    r = rank_list(rank, d - 1)
    sizes = [i * o for i, o in zip(in_modes, out_modes, strict=True)]
    for k, value in enumerate(r):
        check_rank(f"rank[{k}]", value, min(math.prod(sizes[: k + 1]), math.prod(sizes[k + 1 :])))
    tensor = weight64(linear).T.reshape(*in_modes, *out_modes)
    cores = tensor_train_matrix(tensor, rank=[1, *r, 1]).factors
    layer = TTLinear(cores, linear.bias.detach().double() if linear.bias is not None else None)
    return layer.to(device=linear.weight.device, dtype=linear.weight.dtype)
