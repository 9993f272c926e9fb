"""Long inputs in overlapping windows.

A waveform longer than ``max_len`` samples is cut into the fewest windows of at most ``max_len`` samples
such that neighbouring windows overlap by at least ``overlap`` samples; the windows all have the same
length and are spread evenly from the first sample to the last. Its score is the mean of the window
scores weighted by window length. Shorter waveforms are one window, themselves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def chunk_windows(n_samples: int, max_len: int, overlap: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` covering ``[0, n_samples)``; see the module docstring.

    ``max_len <= 0`` means no limit (one window).
    """
    if max_len <= 0 or n_samples <= max_len:
        return [(0, n_samples)]
    if not 0 <= overlap < max_len:
        raise ValueError(f"chunk overlap ({overlap} samples) must be at least 0 and below the window ({max_len})")
    count = math.ceil((n_samples - overlap) / (max_len - overlap))
    length = math.ceil((n_samples + (count - 1) * overlap) / count)
    starts = [round(i * (n_samples - length) / (count - 1)) for i in range(count)]
    return [(start, start + length) for start in starts]


def weighted_mean(scores: Sequence[float], lengths: Sequence[int]) -> float:
    """Mean of window scores weighted by window length."""
    total = float(sum(lengths))
    return float(sum(s * n for s, n in zip(scores, lengths)) / total)
