"""Rank of a matrix by analytic empirical variational Bayesian matrix factorisation (EVBMF).

Nakajima et al. (2013) give the global VB solution in closed form: a singular value
survives when it exceeds a threshold set by the noise variance, which is itself found
by minimising the free energy over one scalar. Kim et al. (2016) pick Tucker ranks this
way on the unfolded kernels. No maintained package provides it, hence these few lines.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize_scalar

__all__ = [
    "TAU_BAR",
    "evbmf_rank",
]

TAU_BAR = 2.5129  # the threshold constant of Nakajima et al. (2013), Theorem 2, times sqrt(alpha)


def _tau(x: np.ndarray, alpha: float) -> np.ndarray:
    return 0.5 * (x - (1 + alpha) + np.sqrt((x - (1 + alpha)) ** 2 - 4 * alpha))


def _free_energy(sigma2: float, L: int, M: int, s: np.ndarray, residual: float, x_bar: float) -> float:
    """The EVB free energy (up to constants) as a function of the noise variance."""
    H, alpha = len(s), L / M
    x = s**2 / (M * sigma2)
    above, below = x[x > x_bar], x[x <= x_bar]
    tau = _tau(above, alpha)
    return float(
        np.sum(below - np.log(below))
        + np.sum(above - tau)
        + np.sum(np.log((tau + 1) / above))
        + alpha * np.sum(np.log(tau / alpha + 1))
        + residual / (M * sigma2)
        + (L - H) * np.log(sigma2)
    )


def evbmf_rank(matrix: torch.Tensor | np.ndarray, sigma2: float | None = None) -> int:
    """Number of components EVBMF keeps in `matrix` (L x M, any orientation).

    The noise variance `sigma2` is estimated from the matrix when not given.
    """
    Y = np.asarray(matrix.detach().cpu() if isinstance(matrix, torch.Tensor) else matrix, dtype=np.float64)
    if Y.ndim != 2 or min(Y.shape) < 1:
        raise ValueError(f"matrix has shape {Y.shape}; allowed: a non-empty 2-D matrix")
    if Y.shape[0] > Y.shape[1]:
        Y = Y.T
    L, M = Y.shape
    alpha = L / M
    tau_bar = TAU_BAR * np.sqrt(alpha)
    s = np.linalg.svd(Y, compute_uv=False)
    if s[0] <= 0:
        return 0
    if sigma2 is None:
        x_bar = (1 + tau_bar) * (1 + alpha / tau_bar)
        upper_index = int(min(np.ceil(L / (1 + alpha)) - 1, L)) - 1
        upper = np.sum(s**2) / (L * M)
        lower = max(
            s[min(upper_index + 1, L - 1)] ** 2 / (M * x_bar), np.mean(s[upper_index + 1 :] ** 2) / M
        ) if upper_index + 1 < L else s[-1] ** 2 / (M * x_bar)  # fmt: skip
        lower = min(max(lower, 1e-12 * upper), upper)
        sigma2 = minimize_scalar(
            _free_energy, args=(L, M, s, 0.0, x_bar), bounds=(lower, upper), method="bounded"
        ).x
    threshold = np.sqrt(M * sigma2 * (1 + tau_bar) * (1 + alpha / tau_bar))
    return int(np.sum(s > threshold))
