"""Features of images from a CP or Tucker decomposition of the training images (draft 001, week 5).

The training images X (N, H, W) are decomposed with TensorLy; the sample-mode factor A (N, R)
holds each image's loadings and X_(1) ~ A M, with M (R, H*W) built from the other factors.
New images are projected onto M by least squares, never decomposed themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorly as tl
import torch
from tensorly.decomposition import parafac, partial_tucker

from netshrink.checks import check_int

__all__ = [
    "METHODS",
    "ImageBasis",
    "decompose_images",
    "project",
    "standardise",
]

tl.set_backend("pytorch")

METHODS = ("cp", "tucker")


@dataclass
class ImageBasis:
    """`basis` (R, H*W): training images ~ `loadings` (N, R) @ basis; `relative_error` of that fit."""

    method: str
    rank: int
    basis: torch.Tensor
    loadings: torch.Tensor
    relative_error: float


def _flat_images(images: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3:
        raise ValueError(f"images have shape {tuple(images.shape)}; allowed: (N, H, W) or (N, 1, H, W)")
    return images.to(dtype)


def decompose_images(
    images: torch.Tensor, method: str, rank: int, n_iter_max: int = 100, seed: int = 0
) -> ImageBasis:
    """CP of rank `rank`, or Tucker with rank `rank` in the sample mode and full rank in the two
    spatial modes (draft 002), of the images (N, H, W) or (N, 1, H, W)."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not known; allowed values: {', '.join(METHODS)}")
    # float32: the same fit as float64 to 4 digits (CP rank 15 of 4,000 MNIST images: relative
    # error 0.52109 against 0.52116), 6x faster for CP and 2x for Tucker on this CPU; CP runs all
    # n_iter_max sweeps (tol=0): in float32 the error's change per sweep drops to rounding noise,
    # and a tolerance would stop it before it converges
    x = _flat_images(images, torch.float32)
    n, h, w = x.shape
    upper = min(n, h * w)
    check_int("rank", rank, 1, upper)
    if method == "cp":
        cp = parafac(x, rank, init="svd", n_iter_max=n_iter_max, tol=0.0, random_state=seed)
        a, b, c = cp.factors
        loadings = a * cp.weights
        basis = torch.einsum("hr,wr->rhw", b, c).reshape(rank, h * w)
    else:
        # Tucker with full spatial ranks has orthogonal spatial factors: only the sample mode is cut
        (core, (a,)), _ = partial_tucker(x, rank=[rank], modes=[0], init="svd", n_iter_max=n_iter_max)
        loadings, basis = a, core.reshape(rank, h * w)
    flat = x.reshape(n, h * w)
    error = float((flat - loadings @ basis).norm() / flat.norm())
    return ImageBasis(method, rank, basis.float(), loadings.float(), error)


def project(images: torch.Tensor, basis: ImageBasis) -> torch.Tensor:
    """Loadings (N, R) of new images on a basis learnt from training images (least squares)."""
    x = _flat_images(images, torch.float64)
    flat = x.reshape(len(x), -1)
    if flat.shape[1] != basis.basis.shape[1]:
        raise ValueError(f"images have {flat.shape[1]} pixels; the basis has {basis.basis.shape[1]}")
    solution = torch.linalg.lstsq(basis.basis.double().T, flat.T).solution  # (R, N)
    return solution.T.float()


def standardise(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Centre and scale each feature by the training set's mean and standard deviation
    (loadings of orthonormal factors are tiny, ~1/sqrt(N), which an MLP trains badly on)."""
    mean, std = train.mean(0), train.std(0).clamp_min(1e-12)
    return [(t - mean) / std for t in (train, *others)]
