"""PWCCA: the score the representation analysis (the paper's Fig. 3) plots per layer."""

import numpy as np
import pytest

from distilmos.eval.cca import fit_cca, pwcca_from_fit, pwcca_score


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_views_that_are_linear_maps_of_each_other_score_one(rng):
    x = rng.normal(size=(500, 16))
    assert pwcca_score(x, x) == pytest.approx(1.0, abs=1e-6)
    assert pwcca_score(x, x @ rng.normal(size=(16, 40))) == pytest.approx(1.0, abs=1e-4)


def test_independent_views_score_low_and_shared_structure_in_between(rng):
    n = 600
    x = rng.normal(size=(n, 24))
    independent = pwcca_score(x, rng.normal(size=(n, 48)))
    shared = rng.normal(size=(n, 12))
    half = pwcca_score(
        np.hstack([shared, rng.normal(size=(n, 12))]),
        np.hstack([shared @ rng.normal(size=(12, 12)), rng.normal(size=(n, 36))]),
    )
    noisy = pwcca_score(x, x @ rng.normal(size=(24, 48)) + 2 * rng.normal(size=(n, 48)))
    assert independent < 0.2 < half < noisy < 0.99


def test_held_out_scoring_does_not_reward_overfitting(rng):
    # 120 rows, 100 dimensions each: CCA fitted and scored on the same rows finds near-perfect correlations.
    x, y = rng.normal(size=(120, 100)), rng.normal(size=(120, 100))
    in_sample = pwcca_from_fit(fit_cca(x, y, 1e-6, 1e-6), x, y)
    assert in_sample > 0.8
    assert pwcca_score(x, y) < 0.4


def test_seeded_and_scale_free(rng):
    x, y = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    y[:, :4] += x[:, :4]
    assert pwcca_score(x, y, seed=3) == pwcca_score(x, y, seed=3)
    assert pwcca_score(1000 * x, 0.001 * y, seed=3) == pytest.approx(pwcca_score(x, y, seed=3), abs=1e-9)


def test_bad_views_are_refused(rng):
    with pytest.raises(ValueError, match="same n"):
        pwcca_score(rng.normal(size=(50, 4)), rng.normal(size=(40, 4)))
    with pytest.raises(ValueError, match="at least 20"):
        pwcca_score(rng.normal(size=(10, 4)), rng.normal(size=(10, 4)))
