"""Calibration of a predicted standard deviation: does an utterance predicted with std s miss its score by
about s? The utterances are sorted by predicted std and cut into equal-count bins; per bin, the mean
predicted std against the observed RMSE of the predictions. A calibrated model lies on the diagonal.

    bins = calibration_bins(true, pred, std)            # [(mean std, RMSE, count), ...] by rising std
    plot_calibration(bins, "exp/x/calibration_test.png", title="test")
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from distilmos.fileio import atomic_write

#: bins of a calibration plot (fewer when there are fewer utterances)
N_BINS = 10


def calibration_bins(
    true: Sequence[float], pred: Sequence[float], std: Sequence[float], n_bins: int = N_BINS
) -> list[tuple[float, float, int]]:
    """``(mean predicted std, observed RMSE, count)`` per equal-count bin of rising predicted std (a stable
    sort, so ties keep their order; the first ``n % n_bins`` bins get one utterance more)."""
    true_arr, pred_arr, std_arr = (np.asarray(x, dtype=np.float64) for x in (true, pred, std))
    if not len(true_arr) == len(pred_arr) == len(std_arr):
        raise ValueError("true, pred and std differ in length")
    order = np.argsort(std_arr, kind="stable")
    bins = []
    for part in np.array_split(order, min(n_bins, len(order))):
        if len(part):
            err = pred_arr[part] - true_arr[part]
            bins.append((float(std_arr[part].mean()), float(np.sqrt(np.mean(err**2))), int(len(part))))
    return bins


def plot_calibration(bins: Sequence[tuple[float, float, int]], path: str, title: str = "") -> str:
    """Save the calibration plot of ``bins`` (:func:`calibration_bins`) as an image at ``path`` (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stds, rmses, _ = zip(*bins) if bins else ((), (), ())
    top = max([*stds, *rmses, 1e-3]) * 1.1
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, top], [0, top], color="0.6", linestyle="--", label="calibrated")
    ax.plot(stds, rmses, marker="o", label="equal-count bins")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="predicted std", ylabel="observed RMSE", title=title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fmt = path.rsplit(".", 1)[-1] if "." in path else "png"
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format=fmt, dpi=100)
    plt.close(fig)
    return path
