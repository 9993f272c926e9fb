"""The evaluation files every scoring path writes: ``metrics_<split>.json`` and ``predictions_<split>.csv``.

The trainer's ``-m evaluate``, the MOS-Bench recipe and the tables all read these, so one writer keeps
their columns and number formats identical.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable

from distilmos.fileio import atomic_write

PREDICTION_COLUMNS = ("sample_id", "system_id", "score", "pred")


def write_results(
    outdir: str, split: str, metrics: dict[str, float], rows: Iterable[tuple[str, str, float, float]]
) -> tuple[str, str]:
    """Write ``metrics_<split>.json`` and ``predictions_<split>.csv`` (rows ``(sample_id, system_id, score,
    pred)``, sorted) into ``outdir``, each atomically; return both paths."""
    metrics_path = os.path.join(outdir, f"metrics_{split}.json")
    predictions_path = os.path.join(outdir, f"predictions_{split}.csv")
    with atomic_write(metrics_path) as handle:
        # undefined correlations are written as null: NaN is not JSON
        json.dump(
            {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()},
            handle,
            indent=2,
        )
    with atomic_write(predictions_path, newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(PREDICTION_COLUMNS)
        # repr keeps the listener score as read; six decimals are far below any metric's resolution
        writer.writerows([sid, system, repr(float(score)), f"{pred:.6f}"] for sid, system, score, pred in sorted(rows))
    return metrics_path, predictions_path
