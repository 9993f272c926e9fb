#!/usr/bin/env python
"""What the padding-exact upstream forward costs, and what lifting the padding cap gains.

    python egs/bench/padding_exact_bench.py [--arch wavlm] [--size base] [--n_utts 48] [--seconds 1-8]
        [--batch 8] [--max_batch_seconds 64] [--warmup 1] [--repeats 3] [--device cpu] [--threads N]
        [--json PATH] [--quick]

Three measurements on one randomly initialised upstream of the real architecture (``--size base``:
WavLM / HuBERT / wav2vec 2.0 Base, GroupNorm front end; speed does not depend on the weights):

1. **forward**: the same padded batch (``--batch`` utterances of ``--seconds``) through s3prl's own
   forward and through the padding-exact one; target ≤ 1.05×.
2. **token extraction**: every selected frame of ``--n_utts`` utterances (the forward of
   ``distilmos-tokens``), batches planned with the old default cap (``max_pad 0.02``) and with
   none (the new default for these upstreams), at the same ``--max_batch_seconds``; utterances/s.
3. **predictor**: scoring the same files with a predictor on that upstream (an SSL-MOS head), capped
   vs not; utterances/s.

Rows are medians of ``--repeats`` timed runs after ``--warmup``; the ratios are what carry across machines.
``--quick`` runs the tiny upstream on a few short utterances once (plumbing only).
"""

from __future__ import annotations

import argparse
import os
import sys

import benchlib  # beside this script

FORWARD_TARGET = 1.05


def measure(args, workdir: str) -> list:
    low, high = benchlib.parse_seconds(args.seconds)

    import torch

    from distilmos.data.audio import load_audio
    from distilmos.data.batching import STRICT_MAX_PAD, plan_batches
    from distilmos.models.ssl_mos import SSLMOSModel
    from distilmos.predictor.pipeline import FeatureSelector, PredictorPipeline
    from distilmos.predictor.predictor import Predictor
    from distilmos.upstream import padding_exact
    from distilmos.upstream.build import build_upstream
    from distilmos.upstream.tiny import write_checkpoint
    from upstream_tokens.extract import FeatureExtractor

    sync = benchlib.synchronizer(args.device)
    rows = []
    ckpt = write_checkpoint(
        os.path.join(workdir, "upstream.pt"), args.arch, args.size, seed=args.seed, frontend="group_norm"
    )
    items = benchlib.make_wavs(os.path.join(workdir, "wav"), args.n_utts, low, high, seed=args.seed)
    wavs = [load_audio(path) for _, path in items]
    lengths = [len(w) for w in wavs]
    plain = build_upstream(f"{args.arch}_local", ckpt, exact=False).to(args.device).eval()
    exact = build_upstream(f"{args.arch}_local", ckpt).to(args.device).eval()
    group = f"padding-exact forward ({args.arch} {args.size}, {args.device})"

    # 1. the same batch through both forwards, round by round so that drift hits both alike; CPU time
    # on a CPU (one torch thread: steadier than wall time on a shared machine), wall time on a GPU
    batch = [w.to(args.device) for w in wavs[: args.batch]]
    clock = "wall" if str(args.device).startswith("cuda") else "CPU"
    with torch.inference_mode():
        times = benchlib.time_rounds(
            {"plain": lambda: plain(batch), "exact": lambda: exact(batch)}, args.warmup, args.repeats, args.device
        )
    plain_s, exact_s = benchlib.median(times["plain", clock]), benchlib.median(times["exact", clock])
    padding = 1 - sum(len(w) for w in batch) / (len(batch) * max(len(w) for w in batch))
    rows += [
        benchlib.row(
            group,
            f"plain forward, batch {len(batch)} ({padding:.0%} padding), {clock} time",
            plain_s,
            "s",
            runs=args.repeats,
        ),
        benchlib.row(group, f"padding-exact forward, same batch, {clock} time", exact_s, "s", runs=args.repeats),
        benchlib.row(
            group,
            "padding-exact / plain forward",
            exact_s / plain_s,
            "×",
            f"≤ {FORWARD_TARGET:.2f}×",
            exact_s / plain_s <= FORWARD_TARGET,
            args.repeats,
        ),
    ]

    # 2. token extraction's forward over the list: capped plan vs uncapped plan
    extractor = FeatureExtractor(exact, layers="all", device=args.device)
    speeds = {}
    for label, cap in (("max_pad 0.02 (old default)", STRICT_MAX_PAD), ("no cap (new default)", None)):
        plan = plan_batches(lengths, args.max_batch_seconds, 64, cap)

        def extract(plan=plan):
            for indices in plan:
                extractor([wavs[i] for i in indices])

        seconds = benchlib.median(benchlib.time_runs(extract, args.warmup, args.repeats, sync))
        speeds[cap] = len(wavs) / seconds
        rows.append(
            benchlib.row(
                "token extraction forward", f"{label}: {len(plan)} batches", speeds[cap], "utt/s", runs=args.repeats
            )
        )
    rows.append(
        benchlib.row(
            "token extraction forward",
            "no cap / max_pad 0.02 throughput",
            speeds[None] / speeds[STRICT_MAX_PAD],
            "×",
        )
    )

    # 3. the predictor on the same files
    torch.manual_seed(0)
    dim = int(extractor.feature_dim)
    selector = FeatureSelector(n_layers=extractor.n_layers_upstream + 1, output_dim=dim)
    pipeline = PredictorPipeline(exact, selector, SSLMOSModel(upstream_dim=dim)).eval()
    paths = [path for _, path in items]
    speeds = {}
    for label, cap in (("max_pad 0.02 (old default)", STRICT_MAX_PAD), ("no cap (new default)", None)):
        predictor = Predictor(
            pipeline, {}, device=args.device, batch_size=64, max_batch_seconds=args.max_batch_seconds, max_pad=cap
        )
        seconds = benchlib.median(
            benchlib.time_runs(lambda p=predictor: p.predict(paths=paths), args.warmup, args.repeats, sync)
        )
        speeds[cap] = len(paths) / seconds
        rows.append(benchlib.row("predictor scoring", label, speeds[cap], "utt/s", runs=args.repeats))
    rows.append(
        benchlib.row(
            "predictor scoring", "no cap / max_pad 0.02 throughput", speeds[None] / speeds[STRICT_MAX_PAD], "×"
        )
    )
    assert padding_exact.is_padding_exact(exact)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.corpus_options(parser, n_utts=48, seconds="1-8", arch=True)
    parser.add_argument("--batch", type=int, default=8, help="utterances in the forward-cost batch (default 8)")
    parser.add_argument(
        "--max_batch_seconds",
        type=float,
        default=64.0,
        help="padded audio per batch for extraction and scoring (default 64)",
    )
    benchlib.common_options(parser, "tiny upstream, few short utterances, one run", rounds=(1, 3))
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.n_utts, args.seconds, args.batch, args.warmup, args.repeats = "tiny", 6, "0.5-1.5", 4, 0, 1
        args.max_batch_seconds = 4.0
    benchlib.run(args, measure, note=f"{args.n_utts} utterances of {args.seconds} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
