"""Projection-weighted canonical correlation (PWCCA) between two views of the same utterances.

The paper's representation analysis (its Fig. 3) follows Pasad et al. (ICASSP 2023): regularised CCA is
fitted on one part of the data, its regularisation chosen on a second part, and the projection-weighted
mean of the canonical correlations (Morcos et al., NeurIPS 2018) reported on a third, held-out part, over
a few random splits. Held-out scoring matters: with a few hundred utterances and hundreds of dimensions,
CCA fitted and scored on the same rows finds near-perfect correlations between any two views.

    score = pwcca_score(x, y, seed=0)      # x: [n, d1], y: [n, d2], rows are the same utterances
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_EPSILONS = (1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


@dataclass
class CCAFit:
    """Centred, regularised CCA directions: column k of ``proj_x`` / ``proj_y`` is the k-th pair."""

    mean_x: np.ndarray
    mean_y: np.ndarray
    proj_x: np.ndarray
    proj_y: np.ndarray


def _inverse_sqrt(cov: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(cov)
    return (vectors / np.sqrt(np.maximum(values, 1e-12))) @ vectors.T


def fit_cca(x: np.ndarray, y: np.ndarray, eps_x: float, eps_y: float) -> CCAFit:
    """Fit CCA with ridge ``eps * mean variance`` added to each view's covariance (scale-free)."""
    mean_x, mean_y = x.mean(0), y.mean(0)
    xc, yc = x - mean_x, y - mean_y
    n = len(x) - 1
    cxx, cyy, cxy = xc.T @ xc / n, yc.T @ yc / n, xc.T @ yc / n
    cxx += eps_x * np.trace(cxx) / len(cxx) * np.eye(len(cxx))
    cyy += eps_y * np.trace(cyy) / len(cyy) * np.eye(len(cyy))
    wx, wy = _inverse_sqrt(cxx), _inverse_sqrt(cyy)
    u, _, vt = np.linalg.svd(wx @ cxy @ wy, full_matrices=False)
    return CCAFit(mean_x, mean_y, wx @ u, wy @ vt.T)


def _correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(0)
    b = b - b.mean(0)
    denom = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    return np.divide((a * b).sum(0), denom, out=np.zeros(a.shape[1]), where=denom > 0)


def pwcca_from_fit(fit: CCAFit, x: np.ndarray, y: np.ndarray) -> float:
    """PWCCA of ``fit`` on rows ``x``, ``y``: canonical correlations weighted by how much of the
    original dimensions of the smaller view each canonical variate accounts for."""
    hx = (x - fit.mean_x) @ fit.proj_x
    hy = (y - fit.mean_y) @ fit.proj_y
    rho = np.abs(_correlations(hx, hy))
    view, variates = (x - x.mean(0), hx) if x.shape[1] <= y.shape[1] else (y - y.mean(0), hy)
    # |<variate_k, dimension_j>| summed over the view's dimensions, with both sides unit-normalised.
    variates = variates / np.maximum(np.linalg.norm(variates, axis=0), 1e-12)
    view = view / np.maximum(np.linalg.norm(view, axis=0), 1e-12)
    weights = np.abs(variates.T @ view).sum(1)
    if weights.sum() == 0:
        return 0.0
    return float((weights / weights.sum()) @ rho)


def pwcca_score(
    x: np.ndarray, y: np.ndarray, *, trials: int = 3, epsilons: Sequence[float] = DEFAULT_EPSILONS, seed: int = 0
) -> float:
    """Held-out PWCCA between views ``x`` [n, d1] and ``y`` [n, d2] (rows paired), averaged over
    ``trials`` random 80/10/10 splits; the regularisation is chosen on the 10% dev part."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"need two [n, dim] views with the same n, got {x.shape} and {y.shape}")
    if len(x) < 20:
        raise ValueError(f"CCA needs at least 20 paired rows (held-out scoring), got {len(x)}")
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(trials):
        order = rng.permutation(len(x))
        n_dev = n_test = max(2, len(x) // 10)
        test, dev, train = order[:n_test], order[n_test : n_test + n_dev], order[n_test + n_dev :]
        best = max(
            (
                (pwcca_from_fit(fit, x[dev], y[dev]), fit)
                for fit in (fit_cca(x[train], y[train], eps, eps) for eps in epsilons)
            ),
            key=lambda item: item[0],
        )[1]
        scores.append(pwcca_from_fit(best, x[test], y[test]))
    return float(np.mean(scores))
