"""1.5-entmax (Peters, Niculae and Martins, ACL 2019): a sparse alternative to softmax.

``entmax15(z)_i = max(z_i / 2 - tau, 0) ** 2``, with the threshold ``tau`` that makes the outputs sum to 1.
Entries far enough below the largest get exactly zero weight. Like softmax it is invariant to adding a
constant to ``z``.

The DistilMOS authors' released code weighs the upstream's layers with it (computed there by bisection,
the ``entmax`` package's ``entmax_bisect``); this module finds ``tau`` exactly, by sorting: it is small,
needs no extra package, and agrees with bisection to float rounding.
"""

from __future__ import annotations

import torch


def entmax15(z: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """1.5-entmax of ``z`` along ``dim`` (the exact, sort-based threshold; see the module docstring)."""
    x = z.movedim(dim, -1) / 2
    x = x - x.max(dim=-1, keepdim=True).values  # for float stability; shifts tau, not the output
    ranked = torch.sort(x, dim=-1, descending=True).values
    k = torch.arange(1, x.size(-1) + 1, device=x.device, dtype=x.dtype)
    # With the top k entries in the support, sum (x_i - tau)^2 = 1 is a quadratic in tau; its smaller root:
    mean = ranked.cumsum(-1) / k
    mean_sq = (ranked * ranked).cumsum(-1) / k
    tau = mean - torch.sqrt(((1 - k * (mean_sq - mean * mean)) / k).clamp_min(0))
    # the support is every k whose root stays at or below its k-th largest entry (a prefix of the ranking)
    support = (tau <= ranked).sum(dim=-1, keepdim=True)
    threshold = tau.gather(-1, support - 1)
    return ((x - threshold).clamp_min(0) ** 2).movedim(-1, dim)
