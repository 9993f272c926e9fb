"""MOS prediction metrics: utterance- and system-level MSE, LCC, SRCC and KTAU (Kendall's tau-b).

System level follows the VoiceMOS convention: per system, the mean prediction against the mean true
score over the evaluated utterances of that system.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from scipy import stats

METRIC_KEYS = ("utt_MSE", "utt_LCC", "utt_SRCC", "utt_KTAU", "sys_MSE", "sys_LCC", "sys_SRCC", "sys_KTAU")


def _correlations(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    out = {"MSE": float(np.mean((true - pred) ** 2))}
    if len(true) < 2 or np.ptp(true) == 0 or np.ptp(pred) == 0:
        # undefined for fewer than two points or a constant side (scipy would warn and give NaN)
        out.update(LCC=math.nan, SRCC=math.nan, KTAU=math.nan)
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["LCC"] = float(stats.pearsonr(true, pred)[0])
        out["SRCC"] = float(stats.spearmanr(true, pred)[0])
        out["KTAU"] = float(stats.kendalltau(true, pred)[0])  # tau-b, scipy's default
    return out


def system_means(systems: Sequence[str], values: Sequence[float]) -> dict[str, float]:
    """Mean of ``values`` per system, systems in sorted order."""
    sums: dict[str, list] = {}
    for system, value in zip(systems, values):
        sums.setdefault(system, []).append(float(value))
    return OrderedDict((s, float(np.mean(sums[s]))) for s in sorted(sums))


def compute_metrics(true: Sequence[float], pred: Sequence[float], systems: Sequence[str]) -> dict[str, float]:
    """All eight metrics plus ``n_utt`` and ``n_sys``; correlations are NaN where undefined."""
    true_arr = np.asarray(true, dtype=np.float64)
    pred_arr = np.asarray(pred, dtype=np.float64)
    if not (len(true_arr) == len(pred_arr) == len(systems)):
        raise ValueError(f"lengths differ: {len(true_arr)} true, {len(pred_arr)} pred, {len(systems)} systems")
    if len(true_arr) == 0:
        raise ValueError("no utterances to score")
    sys_true = system_means(systems, true_arr)
    sys_pred = system_means(systems, pred_arr)
    names = list(sys_true)
    utt = _correlations(true_arr, pred_arr)
    sys = _correlations(np.array([sys_true[n] for n in names]), np.array([sys_pred[n] for n in names]))
    result = {f"utt_{k}": utt[k] for k in ("MSE", "LCC", "SRCC", "KTAU")}
    result.update({f"sys_{k}": sys[k] for k in ("MSE", "LCC", "SRCC", "KTAU")})
    result.update(n_utt=int(len(true_arr)), n_sys=len(names))
    return result
