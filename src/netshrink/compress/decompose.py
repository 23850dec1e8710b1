"""Convolutional and linear layers replaced by sequences of smaller layers, from tensor
decompositions of their weights computed by TensorLy (PyTorch backend).

A conv weight is W (T, S, kh, kw): T output channels, S input channels. Every method returns
an `nn.Sequential` of plain `nn.Conv2d` / `nn.Linear` layers (its 1x1 convs are `PointwiseConv`,
an `nn.Conv2d` that runs as a matrix product; for `tt_linear`, a `TTLinear`) whose product is
the decomposed weight, so the result prints like the seeds' listings, counts in
`torch.utils.flop_counter` and fine-tunes with any optimiser.
(tltorch's factorized layers keep a factorized tensor behind functional convs: its CP and
Tucker convs have no Jaderberg, BTD or Tucker-1 form, and its tensor-train linear runs one
einsum over all cores whose contraction path may rebuild the matrix; so the layers here are
built from TensorLy's factors directly.)

| method | conv layers | rank |
| --- | --- | --- |
| `tucker2` | 1x1 S->R1, kxk R1->R2 (stride, padding), 1x1 R2->T (+bias) | (R1, R2) |
| `tucker1` | kxk S->R, 1x1 R->T (+bias) | R |
| `cp` | 1x1 S->R, kx1 depthwise, 1xk depthwise, 1x1 R->T (+bias) | R |
| `tt` | 1x1 S->r1, kx1 r1->r2, 1xk r2->r3, 1x1 r3->T (+bias) | (r1, r2, r3) |
| `jaderberg` | kx1 S->R, 1xk R->T (+bias) | R |
| `btd` | 1x1 S->n R1, grouped kxk (n groups) -> n R2, 1x1 -> T (+bias) | (R1, R2), n blocks |

Linear layers (W: out x in): `tucker1` (in->R->out, W = A G), `tucker2` (in->R_in->R_out->out,
W = A G B^T) and `tt` (a tensor-train matrix, Novikov et al. 2015).
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import tensorly as tl
import torch
from tensorly.decomposition import parafac, partial_tucker, tensor_train, tensor_train_matrix
from torch import nn

from netshrink.compress.vbmf import evbmf_rank

tl.set_backend("pytorch")

CONV_METHODS = ("tucker2", "tucker1", "cp", "tt", "jaderberg", "btd")
LINEAR_METHODS = ("tucker2", "tucker1", "tt")
RANK_RULES = ("vbmf", "an energy fraction in (0, 1)")


# ---------------------------------------------------------------- checks


def _check_rank(name: str, value: Any, upper: int) -> int:
    """An int (numpy integers too) in 1..upper, else a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= upper:
        raise ValueError(f"{name}={value!r} is out of range; allowed: integers 1..{upper}")
    return int(value)


def _pair(rank: int | Sequence[int], name: str = "rank") -> tuple[int, int]:
    if isinstance(rank, numbers.Integral) and not isinstance(rank, bool):
        return int(rank), int(rank)
    if isinstance(rank, Sequence) and len(rank) == 2:
        return rank[0], rank[1]
    raise ValueError(f"{name}={rank!r} must be an integer or a pair (rank_in, rank_out)")


def _check_conv(conv: nn.Module) -> nn.Conv2d:
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"layer is {type(conv).__name__}; allowed: nn.Conv2d")
    if conv.groups != 1:
        raise ValueError(f"conv has groups={conv.groups}; allowed: groups=1")
    if conv.padding_mode != "zeros":
        raise ValueError(f"conv has padding_mode={conv.padding_mode!r}; allowed: 'zeros'")
    return conv


def _check_linear(linear: nn.Module) -> nn.Linear:
    if not isinstance(linear, nn.Linear):
        raise ValueError(f"layer is {type(linear).__name__}; allowed: nn.Linear")
    return linear


def _weight(layer: nn.Module) -> torch.Tensor:
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


def _conv(
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


def _finish(layers: list[nn.Module], source: nn.Module) -> nn.Sequential:
    """Copy `source`'s bias into the last layer; match its device and dtype."""
    if source.bias is not None:
        layers[-1].bias.data.copy_(source.bias.detach())
    w = source.weight
    return nn.Sequential(*layers).to(device=w.device, dtype=w.dtype)


def _set(layer: nn.Module, weight: torch.Tensor) -> None:
    layer.weight.data.copy_(weight.reshape(layer.weight.shape))


# ---------------------------------------------------------------- conv layers


def tucker2_conv(conv: nn.Conv2d, ranks: int | Sequence[int]) -> nn.Sequential:
    """Tucker-2 (Kim et al. 2016): W = G x_1 U_out x_2 U_in, G (R2, R1, kh, kw).
    Layers: 1x1 S->R1, kxk R1->R2 with the conv's stride/padding/dilation, 1x1 R2->T with its bias."""
    conv = _check_conv(conv)
    T, S, kh, kw = conv.weight.shape
    r_in, r_out = _pair(ranks, "ranks")
    _check_rank("ranks[0] (input channels)", r_in, S)
    _check_rank("ranks[1] (output channels)", r_out, T)
    (core, (u_out, u_in)), _ = partial_tucker(_weight(conv), rank=[r_out, r_in], modes=[0, 1], init="svd")
    first = _conv(S, r_in, (1, 1))
    middle = _conv(r_in, r_out, (kh, kw), like=conv)
    last = _conv(r_out, T, (1, 1), bias=conv.bias is not None)
    _set(first, u_in.T)
    _set(middle, core)
    _set(last, u_out)
    return _finish([first, middle, last], conv)


def tucker1_conv(conv: nn.Conv2d, rank: int) -> nn.Sequential:
    """Tucker-1 on the output channels: W = G x_1 U, G (R, S, kh, kw).
    Layers: kxk S->R with the conv's stride/padding/dilation, 1x1 R->T with its bias."""
    conv = _check_conv(conv)
    T, S, kh, kw = conv.weight.shape
    _check_rank("rank", rank, T)
    (core, (u_out,)), _ = partial_tucker(_weight(conv), rank=[rank], modes=[0], init="svd")
    first = _conv(S, rank, (kh, kw), like=conv)
    last = _conv(rank, T, (1, 1), bias=conv.bias is not None)
    _set(first, core)
    _set(last, u_out)
    return _finish([first, last], conv)


def cp_layers(conv: nn.Conv2d, weights: torch.Tensor, factors: Sequence[torch.Tensor]) -> nn.Sequential:
    """The four convs of Lebedev et al. (2015) from CP factors (T,R), (S,R), (kh,R), (kw,R)
    and weights (R,): 1x1 S->R, depthwise kx1, depthwise 1xk, 1x1 R->T with the bias."""
    k_t, k_s, k_y, k_x = factors
    T, S, kh, kw = conv.weight.shape
    rank = k_t.shape[1]
    first = _conv(S, rank, (1, 1))
    vertical = _conv(rank, rank, (kh, 1), like=conv, axis="h", groups=rank)
    horizontal = _conv(rank, rank, (1, kw), like=conv, axis="w", groups=rank)
    last = _conv(rank, T, (1, 1), bias=conv.bias is not None)
    _set(first, k_s.T)
    _set(vertical, k_y.T)
    _set(horizontal, k_x.T)
    _set(last, k_t * weights)
    return _finish([first, vertical, horizontal, last], conv)


def cp_conv(conv: nn.Conv2d, rank: int, n_iter_max: int = 300, seed: int = 0) -> nn.Sequential:
    """CP (Lebedev et al. 2015): W = sum_r K_t(:,r) o K_s(:,r) o K_y(:,r) o K_x(:,r), by
    TensorLy's ALS. CP has no exact finite 'full rank'; `rank` may be at most T*S*kh*kw / max dim."""
    conv = _check_conv(conv)
    T, S, kh, kw = conv.weight.shape
    dims = (T, S, kh, kw)
    _check_rank("rank", rank, math.prod(dims) // max(dims))
    cp = parafac(
        _weight(conv), rank, init="random" if rank > min(dims) else "svd", n_iter_max=n_iter_max,
        tol=1e-10, random_state=seed,
    )  # fmt: skip
    return cp_layers(conv, cp.weights, cp.factors)


def tt_conv(conv: nn.Conv2d, ranks: int | Sequence[int]) -> nn.Sequential:
    """Tensor train of the kernel ordered (S, kh, kw, T): cores (1,S,r1), (r1,kh,r2), (r2,kw,r3),
    (r3,T,1), run as 1x1 S->r1, kx1 r1->r2, 1xk r2->r3, 1x1 r3->T (as tltorch's `tt_conv`)."""
    conv = _check_conv(conv)
    T, S, kh, kw = conv.weight.shape
    r = (ranks,) * 3 if isinstance(ranks, int) and not isinstance(ranks, bool) else tuple(ranks)
    if len(r) != 3:
        raise ValueError(f"ranks={ranks!r} must be an integer or three TT ranks (r1, r2, r3)")
    dims = (S, kh, kw, T)
    for i, value in enumerate(r):
        upper = min(math.prod(dims[: i + 1]), math.prod(dims[i + 1 :]))
        _check_rank(f"ranks[{i}]", value, upper)
    cores = tensor_train(_weight(conv).permute(1, 2, 3, 0), rank=[1, *r, 1]).factors
    first = _conv(S, r[0], (1, 1))
    vertical = _conv(r[0], r[1], (kh, 1), like=conv, axis="h")
    horizontal = _conv(r[1], r[2], (1, kw), like=conv, axis="w")
    last = _conv(r[2], T, (1, 1), bias=conv.bias is not None)
    _set(first, cores[0][0].T)
    _set(vertical, cores[1].permute(2, 0, 1))
    _set(horizontal, cores[2].permute(2, 0, 1))
    _set(last, cores[3][..., 0].T)
    return _finish([first, vertical, horizontal, last], conv)


def jaderberg_conv(conv: nn.Conv2d, rank: int) -> nn.Sequential:
    """Jaderberg et al. (2014), scheme 2: W[t,s,y,x] = sum_r V[r,s,y] H[t,r,x], the closed-form
    optimum from the SVD of W arranged as (S kh) x (T kw). Layers: kx1 S->R, 1xk R->T (+bias)."""
    conv = _check_conv(conv)
    T, S, kh, kw = conv.weight.shape
    _check_rank("rank", rank, min(S * kh, T * kw))
    matrix = _weight(conv).permute(1, 2, 0, 3).reshape(S * kh, T * kw)
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)  # a plain matrix SVD, no TensorLy needed
    root = s[:rank].sqrt()
    vertical_w = (u[:, :rank] * root).reshape(S, kh, rank).permute(2, 0, 1)  # (R, S, kh)
    horizontal_w = (root[:, None] * vh[:rank]).reshape(rank, T, kw).permute(1, 0, 2)  # (T, R, kw)
    vertical = _conv(S, rank, (kh, 1), like=conv, axis="h")
    horizontal = _conv(rank, T, (1, kw), like=conv, axis="w", bias=conv.bias is not None)
    _set(vertical, vertical_w)
    _set(horizontal, horizontal_w)
    return _finish([vertical, horizontal], conv)


def btd_conv(conv: nn.Conv2d, ranks: int | Sequence[int], n_blocks: int, sweeps: int = 10) -> nn.Sequential:
    """Block term decomposition (Wang and Cheng 2016): W = sum of `n_blocks` Tucker-2 terms of
    ranks (R1, R2), fitted by block coordinate descent (each block the Tucker-2 of the residual
    of the others; TensorLy has no BTD). Layers: 1x1 S->n R1, grouped kxk -> n R2, 1x1 -> T."""
    conv = _check_conv(conv)
    T, S, kh, kw = conv.weight.shape
    r_in, r_out = _pair(ranks, "ranks")
    _check_rank("ranks[0] (input channels)", r_in, S)
    _check_rank("ranks[1] (output channels)", r_out, T)
    _check_rank("n_blocks", n_blocks, 64)
    _check_rank("sweeps", sweeps, 1000)
    weight = _weight(conv)
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
    first = _conv(S, n_blocks * r_in, (1, 1))
    middle = _conv(n_blocks * r_in, n_blocks * r_out, (kh, kw), like=conv, groups=n_blocks)
    last = _conv(n_blocks * r_out, T, (1, 1), bias=conv.bias is not None)
    _set(first, torch.cat([u_in.T for _, _, u_in in blocks]))
    _set(middle, torch.cat([core for core, _, _ in blocks]))
    _set(last, torch.cat([u_out for _, u_out, _ in blocks], dim=1))
    return _finish([first, middle, last], conv)


# ---------------------------------------------------------------- linear layers


def tucker1_linear(linear: nn.Linear, rank: int) -> nn.Sequential:
    """W (out, in) = A G with A (out, R), G (R, in): Linear in->R (no bias), Linear R->out."""
    linear = _check_linear(linear)
    out_f, in_f = linear.weight.shape
    _check_rank("rank", rank, min(in_f, out_f))
    (core, (a,)), _ = partial_tucker(_weight(linear), rank=[rank], modes=[0], init="svd")
    first = nn.Linear(in_f, rank, bias=False)
    last = nn.Linear(rank, out_f, bias=linear.bias is not None)
    _set(first, core)
    _set(last, a)
    return _finish([first, last], linear)


def tucker2_linear(linear: nn.Linear, ranks: int | Sequence[int]) -> nn.Sequential:
    """W (out, in) = A G B^T with B (in, R_in), G (R_out, R_in), A (out, R_out):
    Linear in->R_in, R_in->R_out (no biases), R_out->out with the bias."""
    linear = _check_linear(linear)
    out_f, in_f = linear.weight.shape
    r_in, r_out = _pair(ranks, "ranks")
    _check_rank("ranks[0] (input features)", r_in, in_f)
    _check_rank("ranks[1] (output features)", r_out, out_f)
    (core, (a, b)), _ = partial_tucker(_weight(linear), rank=[r_out, r_in], modes=[0, 1], init="svd")
    first = nn.Linear(in_f, r_in, bias=False)
    middle = nn.Linear(r_in, r_out, bias=False)
    last = nn.Linear(r_out, out_f, bias=linear.bias is not None)
    _set(first, b.T)
    _set(middle, core)
    _set(last, a)
    return _finish([first, middle, last], linear)


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
    linear: nn.Linear, in_modes: Sequence[int], out_modes: Sequence[int], ranks: int | Sequence[int]
) -> TTLinear:
    """TT-SVD (TensorLy's `tensor_train_matrix`) of W^T tensorized as (i_1..i_d, o_1..o_d).
    `ranks`: one internal rank for all, or the d-1 internal ranks."""
    linear = _check_linear(linear)
    out_f, in_f = linear.weight.shape
    in_modes, out_modes = [int(m) for m in in_modes], [int(m) for m in out_modes]
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
    r = [ranks] * (d - 1) if isinstance(ranks, int) and not isinstance(ranks, bool) else list(ranks)
    if len(r) != d - 1:
        raise ValueError(f"ranks={ranks!r} must be an integer or {d - 1} internal TT ranks")
    sizes = [i * o for i, o in zip(in_modes, out_modes, strict=True)]
    for k, value in enumerate(r):
        _check_rank(f"ranks[{k}]", value, min(math.prod(sizes[: k + 1]), math.prod(sizes[k + 1 :])))
    tensor = _weight(linear).T.reshape(*in_modes, *out_modes)
    cores = tensor_train_matrix(tensor, rank=[1, *r, 1]).factors
    layer = TTLinear(cores, linear.bias.detach().double() if linear.bias is not None else None)
    return layer.to(device=linear.weight.device, dtype=linear.weight.dtype)


# ---------------------------------------------------------------- sizes and budgets


def layer_parameters(layer: nn.Module, method: str, rank: Any, **options: Any) -> int:
    """Parameters of `layer` decomposed by `method` at explicit `rank`, without decomposing."""
    bias = layer.bias.numel() if layer.bias is not None else 0
    if isinstance(layer, nn.Linear):
        out_f, in_f = layer.weight.shape
        if method == "tucker1":
            return rank * (in_f + out_f) + bias
        if method == "tucker2":
            r_in, r_out = _pair(rank)
            return in_f * r_in + r_in * r_out + r_out * out_f + bias
        if method == "tt":
            modes = list(zip(options["in_modes"], options["out_modes"], strict=True))
            r = [1, *([rank] * (len(modes) - 1) if isinstance(rank, int) else rank), 1]
            return sum(r[k] * i * o * r[k + 1] for k, (i, o) in enumerate(modes)) + bias
    elif isinstance(layer, nn.Conv2d):
        T, S, kh, kw = layer.weight.shape
        if method == "tucker2":
            r_in, r_out = _pair(rank)
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
            r_in, r_out = _pair(rank)
            return options["n_blocks"] * (S * r_in + r_in * r_out * kh * kw + r_out * T) + bias
    raise ValueError(f"method={method!r} does not apply to {type(layer).__name__}")


def rank_for_budget(layer: nn.Conv2d, method: str, budget: int, **options: Any) -> Any:
    """The largest rank of `method` whose decomposition of `layer` has at most `budget`
    parameters; one free size t: R for cp/jaderberg/tucker1, (t, t) for tucker2/btd blocks
    and (t, t, t) for tt, each rank capped by its dimension."""
    conv = _check_conv(layer)
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
        raise ValueError(f"budget={budget} is below the smallest {method} decomposition of the layer")
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


def _resolve(layer: nn.Module, method: str, rank: Any) -> Any:
    """Turn a rule ('vbmf' or an energy fraction) into explicit ranks for a Tucker method."""
    if isinstance(rank, numbers.Integral) and not isinstance(rank, bool):
        return int(rank)
    if isinstance(rank, list | tuple):
        return rank
    if method not in ("tucker1", "tucker2"):
        raise ValueError(f"rank={rank!r} for method {method!r}: rank rules apply to tucker1 and tucker2 only")
    w = _weight(layer)
    if method == "tucker1":
        return select_rank(w, 0, rank)
    return [select_rank(w, 1, rank), select_rank(w, 0, rank)]


def decompose_layer(layer: nn.Module, method: str, rank: Any = None, **options: Any) -> nn.Module:
    """Decompose one Conv2d or Linear by `method` (see the module docstring) at `rank`:
    explicit ranks, 'vbmf', or an energy fraction. `options`: `n_blocks` (btd), `in_modes`
    and `out_modes` (tt linear)."""
    if isinstance(layer, nn.Conv2d):
        if method not in CONV_METHODS:
            raise ValueError(f"method={method!r} for a Conv2d; allowed: {', '.join(CONV_METHODS)}")
    elif isinstance(layer, nn.Linear):
        if method not in LINEAR_METHODS:
            raise ValueError(f"method={method!r} for a Linear; allowed: {', '.join(LINEAR_METHODS)}")
    else:
        raise ValueError(f"layer is {type(layer).__name__}; allowed: nn.Conv2d and nn.Linear")
    if rank is None:
        raise ValueError("rank is missing; allowed: integers, " + ", ".join(RANK_RULES))
    rank = _resolve(layer, method, rank)
    allowed = {"btd": {"n_blocks", "sweeps"}, "tt": {"in_modes", "out_modes"}, "cp": {"n_iter_max", "seed"}}
    extra = set(options) - allowed.get(method, set())
    if extra:
        raise ValueError(f"options {sorted(extra)} do not apply to {method!r}")
    if isinstance(layer, nn.Linear):
        if method == "tt":
            if "in_modes" not in options or "out_modes" not in options:
                raise ValueError("method 'tt' on a Linear needs in_modes and out_modes")
            return tt_linear(layer, options["in_modes"], options["out_modes"], rank)
        return {"tucker1": tucker1_linear, "tucker2": tucker2_linear}[method](layer, rank)
    if method == "btd":
        if "n_blocks" not in options:
            raise ValueError("method 'btd' needs n_blocks")
        return btd_conv(layer, rank, **options)
    functions = {
        "tucker2": tucker2_conv, "tucker1": tucker1_conv, "cp": cp_conv, "tt": tt_conv,
        "jaderberg": jaderberg_conv,
    }  # fmt: skip
    return functions[method](layer, rank, **options)


def decomposable_layers(model: nn.Module) -> list[str]:
    """Names of the Conv2d and Linear layers of `model`."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def normalise_plan(plan: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A plan maps a layer name to `[method, rank]` or `{"method": .., "rank": .., **options}`."""
    out = {}
    for name, spec in plan.items():
        if isinstance(spec, Mapping):
            if "method" not in spec:
                raise ValueError(f"plan[{name!r}]={dict(spec)} has no 'method'")
            out[name] = dict(spec)
        elif isinstance(spec, Sequence) and not isinstance(spec, str) and len(spec) == 2:
            out[name] = {"method": spec[0], "rank": spec[1]}
        else:
            raise ValueError(f"plan[{name!r}]={spec!r} must be [method, rank] or a dict with 'method'")
    return out


def decompose_model(model: nn.Module, plan: Mapping[str, Any]) -> nn.Module:
    """A copy of `model` with each layer named in `plan` replaced by its decomposition;
    `model` itself is left intact."""
    plan = normalise_plan(plan)
    names = dict(model.named_modules())
    for name in plan:
        if name not in names or name == "":
            raise ValueError(
                f"layer {name!r} is not in the model; allowed: {', '.join(decomposable_layers(model))}"
            )
    new = copy.deepcopy(model)
    for name, spec in plan.items():
        spec = dict(spec)
        method, rank = spec.pop("method"), spec.pop("rank", None)
        try:
            replacement = decompose_layer(new.get_submodule(name), method, rank, **spec)
        except ValueError as err:
            raise ValueError(f"layer {name!r}: {err}") from None
        parent_name, _, child = name.rpartition(".")
        setattr(new.get_submodule(parent_name), child, replacement)
    return new


def resolve_plan(model: nn.Module, plan: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """`plan` normalised, with rank rules like 'vbmf' replaced by the explicit ranks they give
    on `model` (so the plan rebuilds the same model and can key a cache)."""
    out = {}
    for name, spec in normalise_plan(plan).items():
        layer = model.get_submodule(name) if name in dict(model.named_modules()) else None
        if layer is None:
            raise ValueError(
                f"layer {name!r} is not in the model; allowed: {', '.join(decomposable_layers(model))}"
            )
        rank = spec.get("rank")
        out[name] = {**spec, "rank": list(rank) if isinstance(rank, tuple) else rank}
        if isinstance(layer, nn.Conv2d | nn.Linear) and rank is not None:
            resolved = _resolve(layer, spec["method"], rank)
            out[name]["rank"] = list(resolved) if isinstance(resolved, tuple) else resolved
    return out
