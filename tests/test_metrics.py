import math

import numpy as np
import pytest
from scipy import stats

from distilmos.eval.metrics import METRIC_KEYS, compute_metrics


def test_utterance_metrics_equal_scipy():
    rng = np.random.default_rng(0)
    true = rng.uniform(1, 5, 50)
    pred = true + rng.normal(0, 0.7, 50)
    systems = [f"s{i % 7}" for i in range(50)]
    m = compute_metrics(true, pred, systems)
    assert m["utt_MSE"] == pytest.approx(np.mean((true - pred) ** 2))
    assert m["utt_LCC"] == pytest.approx(stats.pearsonr(true, pred)[0])
    assert m["utt_SRCC"] == pytest.approx(stats.spearmanr(true, pred)[0])
    assert m["utt_KTAU"] == pytest.approx(stats.kendalltau(true, pred, variant="b")[0])
    assert set(METRIC_KEYS) <= set(m) and m["n_utt"] == 50 and m["n_sys"] == 7


def test_system_level_groups_by_system_means():
    # hand-made: system A true 1,3 (mean 2) pred 2,2 (2); B true 4 pred 3; C true 5,5 pred 4.5,5.5 (5)
    true = [1, 3, 4, 5, 5]
    pred = [2, 2, 3, 4.5, 5.5]
    systems = ["A", "A", "B", "C", "C"]
    m = compute_metrics(true, pred, systems)
    sys_true, sys_pred = [2, 4, 5], [2, 3, 5]
    assert m["n_sys"] == 3
    assert m["sys_MSE"] == pytest.approx(np.mean((np.array(sys_true) - sys_pred) ** 2))  # 1/3
    assert m["sys_LCC"] == pytest.approx(stats.pearsonr(sys_true, sys_pred)[0])
    assert m["sys_SRCC"] == pytest.approx(1.0) and m["sys_KTAU"] == pytest.approx(1.0)


def test_ties_use_tau_b():
    true = [1, 1, 2, 3, 3, 4]
    pred = [1, 2, 2, 3, 4, 4]
    m = compute_metrics(true, pred, list("abcdef"))
    assert m["utt_KTAU"] == pytest.approx(stats.kendalltau(true, pred, variant="b")[0])
    assert m["utt_KTAU"] != pytest.approx(stats.kendalltau(true, pred, variant="c")[0])


def test_undefined_correlations_are_nan_not_errors():
    m = compute_metrics([3.0, 3.0, 3.0], [1.0, 2.0, 3.0], ["a", "a", "a"])
    assert math.isnan(m["utt_LCC"]) and math.isnan(m["sys_SRCC"]) and m["utt_MSE"] == pytest.approx(5 / 3)
    with pytest.raises(ValueError, match="lengths differ"):
        compute_metrics([1.0], [1.0, 2.0], ["a"])
