#!/usr/bin/env python
"""Seconds per training step of the DistilMOS network (no_token) plain, listener-aware, with uncertainty and
both, on one batch of a data list, in one process, interleaved rounds, median (the learning check's wall-clock
times include validation and whatever else shares the machine).

    python egs/demo/local/listener_step_time.py --data_dir learning_out/data/bvcc [--hidden_dim 64] [--dim 64]

Features are random (``--dim`` wide, the tiny HuBERT's 64; 320 samples a frame), the batch (and its ratings)
the data list's first training batch: the cost of the downstream step alone, as for a frozen upstream. A
fine-tuned upstream runs once per utterance either way (the listener rows repeat its features).
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict

import torch

from distilmos.train.plugin import register

SETTINGS = {"plain": (False, False), "listener": (True, False), "uncertainty": (False, True), "both": (True, True)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="train.csv and train_listeners.csv")
    parser.add_argument("--hidden_dim", type=int, default=64)
    parser.add_argument("--dim", type=int, default=64, help="feature width")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=5, help="steps per round")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    register([os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "downstream")])
    mod = importlib.import_module("s3prl.downstream.distilmos.expert")
    runs = {}
    expdir = tempfile.mkdtemp()
    for name, (listener, uncertainty) in SETTINGS.items():
        torch.manual_seed(0)
        rc = {"hidden_dim": args.hidden_dim, "listener": {"enabled": listener}, "uncertainty": uncertainty}
        datarc = {"data_dir": args.data_dir, "train_batch_size": args.batch_size}
        config = {"datarc": datarc, "modelrc": rc}
        expert = mod.DownstreamExpert(args.dim, config, expdir, downstream_variant="no_token")
        runs[name] = (expert.train(), torch.optim.AdamW(expert.parameters(), 1e-4))
    wavs, batch = next(iter(runs["both"][0].get_dataloader("train")))
    generator = torch.Generator().manual_seed(0)
    features = [torch.randn(max(1, len(w) // 320), args.dim, generator=generator) for w in wavs]
    plain_batch = type(batch)(**{**batch.__dict__, "ratings": None})
    times = defaultdict(list)
    for _ in range(args.rounds):
        for name, (expert, optimizer) in runs.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                optimizer.zero_grad()
                expert("train", features, batch if SETTINGS[name][0] else plain_batch, defaultdict(list)).backward()
                optimizer.step()
            times[name].append((time.perf_counter() - start) / args.steps)
    ratings = sum(len(r) for r in batch.ratings)
    print(f"{len(features)} utterances, {ratings} ratings, frames {[len(f) for f in features]}")
    base = statistics.median(times["plain"])
    for name in SETTINGS:
        median = statistics.median(times[name])
        print(f"{name}: {1000 * median:.1f} ms/step (x{median / base:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
