"""Conv2d layers decomposed into sequences of smaller convs (see `decompose` for the table of
methods). A conv weight is W (T, S, kh, kw): T output channels, S input channels."""

from __future__ import annotations

import math
from collections.abc import Sequence

import tensorly as tl
import torch
from tensorly.decomposition import parafac, partial_tucker, tensor_train
from torch import nn

from netshrink.compress.layers import (
    check_conv,
    check_rank,
    conv_like,
    finish,
    rank_list,
    rank_pair,
    set_weight,
    weight64,
)

__all__ = [
    "btd_conv",
    "cp_conv",
    "cp_layers",
    "jaderberg_conv",
    "tt_conv",
    "tucker1_conv",
    "tucker2_conv",
    "tucker2_error",
]

tl.set_backend("pytorch")


def tucker2_conv(conv: nn.Conv2d, rank: int | Sequence[int]) -> nn.Sequential:
    """Tucker-2 (Kim et al. 2016): W = G x_1 U_out x_2 U_in, G (R2, R1, kh, kw).
    Layers: 1x1 S->R1, kxk R1->R2 with the conv's stride/padding/dilation, 1x1 R2->T with its bias."""
    conv = check_conv(conv)
    T, S, kh, kw = conv.weight.shape
    r_in, r_out = rank_pair(rank, "rank")
    check_rank("rank[0] (input channels)", r_in, S)
    check_rank("rank[1] (output channels)", r_out, T)
    (core, (u_out, u_in)), _ = partial_tucker(weight64(conv), rank=[r_out, r_in], modes=[0, 1], init="svd")
    first = conv_like(S, r_in, (1, 1))
    middle = conv_like(r_in, r_out, (kh, kw), like=conv)
    last = conv_like(r_out, T, (1, 1), bias=conv.bias is not None)
    set_weight(first, u_in.T)
    set_weight(middle, core)
    set_weight(last, u_out)
    return finish([first, middle, last], conv)


def tucker1_conv(conv: nn.Conv2d, rank: int) -> nn.Sequential:
    """Tucker-1 on the output channels: W = G x_1 U, G (R, S, kh, kw).
    Layers: kxk S->R with the conv's stride/padding/dilation, 1x1 R->T with its bias."""
    conv = check_conv(conv)
    T, S, kh, kw = conv.weight.shape
    check_rank("rank", rank, T)
    (core, (u_out,)), _ = partial_tucker(weight64(conv), rank=[rank], modes=[0], init="svd")
    first = conv_like(S, rank, (kh, kw), like=conv)
    last = conv_like(rank, T, (1, 1), bias=conv.bias is not None)
    set_weight(first, core)
    set_weight(last, u_out)
    return finish([first, last], conv)


def cp_layers(conv: nn.Conv2d, weights: torch.Tensor, factors: Sequence[torch.Tensor]) -> nn.Sequential:
    """The four convs of Lebedev et al. (2015) from CP factors (T,R), (S,R), (kh,R), (kw,R)
    and weights (R,): 1x1 S->R, depthwise kx1, depthwise 1xk, 1x1 R->T with the bias."""
    k_t, k_s, k_y, k_x = factors
    T, S, kh, kw = conv.weight.shape
    rank = k_t.shape[1]
    first = conv_like(S, rank, (1, 1))
    vertical = conv_like(rank, rank, (kh, 1), like=conv, axis="h", groups=rank)
    horizontal = conv_like(rank, rank, (1, kw), like=conv, axis="w", groups=rank)
    last = conv_like(rank, T, (1, 1), bias=conv.bias is not None)
    set_weight(first, k_s.T)
    set_weight(vertical, k_y.T)
    set_weight(horizontal, k_x.T)
    set_weight(last, k_t * weights)
    return finish([first, vertical, horizontal, last], conv)


def cp_conv(conv: nn.Conv2d, rank: int, n_iter_max: int = 150, seed: int = 0) -> nn.Sequential:
    """CP (Lebedev et al. 2015): W = sum_r K_t(:,r) o K_s(:,r) o K_y(:,r) o K_x(:,r), by
    TensorLy's ALS. CP has no exact finite 'full rank'; `rank` may be at most T*S*kh*kw / max dim.

    ALS stops after `n_iter_max` sweeps or when the error improves by less than 1e-8: 150
    sweeps fit better than tensorly-torch's defaults (100) at under 2x their time (`make bench`)."""
    conv = check_conv(conv)
    T, S, kh, kw = conv.weight.shape
    dims = (T, S, kh, kw)
    check_rank("rank", rank, math.prod(dims) // max(dims))
    check_rank("n_iter_max", n_iter_max, 100_000)
    cp = parafac(
        weight64(conv), rank, init="random" if rank > min(dims) else "svd", n_iter_max=n_iter_max,
        tol=1e-8, random_state=seed,
    )  # fmt: skip
    return cp_layers(conv, cp.weights, cp.factors)


def tt_conv(conv: nn.Conv2d, rank: int | Sequence[int]) -> nn.Sequential:
    """Tensor train of the kernel ordered (S, kh, kw, T): cores (1,S,r1), (r1,kh,r2), (r2,kw,r3),
    (r3,T,1), run as 1x1 S->r1, kx1 r1->r2, 1xk r2->r3, 1x1 r3->T (as tltorch's `tt_conv`)."""
    conv = check_conv(conv)
    T, S, kh, kw = conv.weight.shape
    r = rank_list(rank, 3)  # (r1, r2, r3)
    dims = (S, kh, kw, T)
    for i, value in enumerate(r):
        upper = min(math.prod(dims[: i + 1]), math.prod(dims[i + 1 :]))
        check_rank(f"rank[{i}]", value, upper)
    cores = tensor_train(weight64(conv).permute(1, 2, 3, 0), rank=[1, *r, 1]).factors
    first = conv_like(S, r[0], (1, 1))
    vertical = conv_like(r[0], r[1], (kh, 1), like=conv, axis="h")
    horizontal = conv_like(r[1], r[2], (1, kw), like=conv, axis="w")
    last = conv_like(r[2], T, (1, 1), bias=conv.bias is not None)
    set_weight(first, cores[0][0].T)
    set_weight(vertical, cores[1].permute(2, 0, 1))
    set_weight(horizontal, cores[2].permute(2, 0, 1))
    set_weight(last, cores[3][..., 0].T)
    return finish([first, vertical, horizontal, last], conv)


def jaderberg_conv(conv: nn.Conv2d, rank: int) -> nn.Sequential:
    """Jaderberg et al. (2014), scheme 2: W[t,s,y,x] = sum_r V[r,s,y] H[t,r,x], the closed-form
    optimum from the SVD of W arranged as (S kh) x (T kw). Layers: kx1 S->R, 1xk R->T (+bias)."""
    conv = check_conv(conv)
    T, S, kh, kw = conv.weight.shape
    check_rank("rank", rank, min(S * kh, T * kw))
    matrix = weight64(conv).permute(1, 2, 0, 3).reshape(S * kh, T * kw)
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)  # a plain matrix SVD, no TensorLy needed
    root = s[:rank].sqrt()
    vertical_w = (u[:, :rank] * root).reshape(S, kh, rank).permute(2, 0, 1)  # (R, S, kh)
    horizontal_w = (root[:, None] * vh[:rank]).reshape(rank, T, kw).permute(1, 0, 2)  # (T, R, kw)
    vertical = conv_like(S, rank, (kh, 1), like=conv, axis="h")
    horizontal = conv_like(rank, T, (1, kw), like=conv, axis="w", bias=conv.bias is not None)
    set_weight(vertical, vertical_w)
    set_weight(horizontal, horizontal_w)
    return finish([vertical, horizontal], conv)


def btd_conv(conv: nn.Conv2d, rank: int | Sequence[int], n_blocks: int, sweeps: int = 10) -> nn.Sequential:
    """Block term decomposition (Wang and Cheng 2016): W = sum of `n_blocks` Tucker-2 terms of
    rank (R1, R2), fitted by block coordinate descent (each block the Tucker-2 of the residual
    of the others; TensorLy has no BTD). Layers: 1x1 S->n R1, grouped kxk -> n R2, 1x1 -> T."""
    conv = check_conv(conv)
    T, S, kh, kw = conv.weight.shape
    r_in, r_out = rank_pair(rank, "rank")
    check_rank("rank[0] (input channels)", r_in, S)
    check_rank("rank[1] (output channels)", r_out, T)
    check_rank("n_blocks", n_blocks, 64)
    check_rank("sweeps", sweeps, 1000)
    weight = weight64(conv)
    blocks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def term(block: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        core, u_out, u_in = block
        return tl.tenalg.multi_mode_dot(core, [u_out, u_in], modes=[0, 1])

    def fit(residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        (core, (u_out, u_in)), _ = partial_tucker(residual, rank=[r_out, r_in], modes=[0, 1], init="svd")
        return core, u_out, u_in

    for _ in range(n_blocks):  # greedy start: each block fits what the previous ones left
        blocks.append(fit(weight - sum((term(b) for b in blocks), torch.zeros_like(weight))))
    for _ in range(sweeps - 1):
        for i in range(n_blocks):
            others = sum((term(b) for j, b in enumerate(blocks) if j != i), torch.zeros_like(weight))
            blocks[i] = fit(weight - others)
    first = conv_like(S, n_blocks * r_in, (1, 1))
    middle = conv_like(n_blocks * r_in, n_blocks * r_out, (kh, kw), like=conv, groups=n_blocks)
    last = conv_like(n_blocks * r_out, T, (1, 1), bias=conv.bias is not None)
    set_weight(first, torch.cat([u_in.T for _, _, u_in in blocks]))
    set_weight(middle, torch.cat([core for core, _, _ in blocks]))
    set_weight(last, torch.cat([u_out for _, u_out, _ in blocks], dim=1))
    return finish([first, middle, last], conv)


def tucker2_error(conv: nn.Conv2d, ranks: Sequence[int]) -> float:
    """Relative Frobenius error of the kernel rebuilt from a Tucker-2 decomposition at `ranks`."""
    first, middle, last = tucker2_conv(conv, ranks)
    rebuilt = torch.einsum(
        "tb,bayx,as->tsyx", last.weight[:, :, 0, 0], middle.weight, first.weight[:, :, 0, 0]
    )
    w = conv.weight.detach()
    return float((rebuilt.detach() - w).norm() / w.norm())
