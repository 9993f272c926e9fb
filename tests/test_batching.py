"""The one length-batching rule (distilmos.data.batching), and the places that must use it."""

import numpy as np
import pytest

from distilmos.data.batching import PlannedBatchSampler, plan_batches
from distilmos.data.datalist import Utterance
from distilmos.data.dataset import MOSDataset, eval_loader
from distilmos.errors import ConfigError


def test_plan_batches_bounds_and_determinism():
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(8000, 64000, 200)] + [16000] * 5
    plan = plan_batches(lengths, max_batch_seconds=10, max_batch_items=8, max_pad=0.1)
    assert sorted(i for b in plan for i in b) == list(range(len(lengths)))
    assert plan == plan_batches(lengths, max_batch_seconds=10, max_batch_items=8, max_pad=0.1)
    for batch in plan:
        longest = lengths[batch[0]]
        assert longest == max(lengths[i] for i in batch)
        assert len(batch) <= 8 and (len(batch) == 1 or longest * len(batch) <= 10 * 16000)
        assert all(longest - lengths[i] <= 0.1 * longest for i in batch)
    exact = plan_batches(lengths, max_batch_seconds=100, max_batch_items=64, max_pad=0)
    assert all(len({lengths[i] for i in b}) == 1 for b in exact)
    assert [len(b) for b in exact if lengths[b[0]] == 16000] == [5]


def test_no_cap_fills_batches_by_count_and_seconds():
    lengths = [16000 * (1 + i % 7) for i in range(40)]
    plan = plan_batches(lengths, max_batch_seconds=30, max_batch_items=6, max_pad=None)
    assert sorted(i for b in plan for i in b) == list(range(40))
    assert all(len(b) <= 6 and lengths[b[0]] * len(b) <= 30 * 16000 for b in plan)
    # without a cap, a batch mixes lengths that the tightest cap would separate
    assert any(len({lengths[i] for i in b}) > 1 for b in plan)
    with pytest.raises(ConfigError, match="padding cap"):
        plan_batches(lengths, max_pad=-0.1)


def test_evaluation_loader_batches_by_the_rule():
    lengths = [16000 + 3200 * (i % 5) for i in range(23)]
    utts = [Utterance(f"u{i}", "s", f"/nowhere/u{i}.wav", 3.0, num_samples=n) for i, n in enumerate(lengths)]
    loader = eval_loader(MOSDataset(utts), batch_size=4, max_seconds=20.0, num_workers=0, max_pad=0.05)
    assert list(loader.batch_sampler) == plan_batches(lengths, 20.0, 4, 0.05)
    assert len(PlannedBatchSampler(lengths, 20.0, 4)) == len(plan_batches(lengths, 20.0, 4))
