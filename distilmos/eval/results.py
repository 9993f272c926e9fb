"""The evaluation files every scoring path writes: ``metrics_<split>.json`` and ``predictions_<split>.csv``.

The trainer's ``-m evaluate``, the MOS-Bench recipe and the tables all read these, so one writer keeps
their columns and number formats identical.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence

from distilmos.fileio import atomic_write

PREDICTION_COLUMNS = ("sample_id", "system_id", "score", "pred")
#: the column a model with an uncertainty head adds to the predictions
STD_COLUMN = "pred_std"


def write_results(
    outdir: str,
    split: str,
    metrics: dict[str, float],
    rows: Iterable[tuple[str, str, float, float]],
    stds: Sequence[float] | None = None,
) -> tuple[str, str]:
    """Write ``metrics_<split>.json`` and ``predictions_<split>.csv`` (rows ``(sample_id, system_id, score,
    pred)``, sorted) into ``outdir``, each atomically; return both paths.

    ``stds`` (a model with an uncertainty head; one per row, in the rows' order): the predictions gain a
    ``pred_std`` column and the calibration plot ``calibration_<split>.png`` is written beside them."""
    metrics_path = os.path.join(outdir, f"metrics_{split}.json")
    predictions_path = os.path.join(outdir, f"predictions_{split}.csv")
    with atomic_write(metrics_path) as handle:
        # undefined correlations are written as null: NaN is not JSON
        json.dump(
            {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()},
            handle,
            indent=2,
        )
    rows = list(rows)
    if stds is not None:
        if len(stds) != len(rows):
            raise ValueError(f"{len(stds)} standard deviations for {len(rows)} predictions")
        rows = [(*row, std) for row, std in zip(rows, stds)]
    with atomic_write(predictions_path, newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(PREDICTION_COLUMNS + ((STD_COLUMN,) if stds is not None else ()))
        # repr keeps the listener score as read; six decimals are far below any metric's resolution
        writer.writerows(
            [sid, system, repr(float(score)), f"{pred:.6f}", *(f"{v:.6f}" for v in rest)]
            for sid, system, score, pred, *rest in sorted(rows)
        )
    if stds is not None:
        from .calibration import calibration_bins, plot_calibration

        true, pred = [r[2] for r in rows], [r[3] for r in rows]
        plot_calibration(calibration_bins(true, pred, stds), os.path.join(outdir, f"calibration_{split}.png"), split)
    return metrics_path, predictions_path
