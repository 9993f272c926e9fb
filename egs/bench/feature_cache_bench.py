#!/usr/bin/env python
"""What the feature cache buys a frozen-upstream run: training epochs from the cache against epochs with
the upstream in the loop, and what the one-time dump costs against one bare forward pass.

    python egs/bench/feature_cache_bench.py [--arch wavlm] [--size base] [--n_utts 24] [--seconds 1-6]
        [--batch 4] [--epochs 2] [--dtype float32] [--device cpu] [--threads N] [--json PATH] [--quick]

On one randomly initialised upstream of the real architecture (``--size base``; speed does not depend on
the weights) and a small head (SSL-MOS's: the featurizer's weighted sum of every layer, mean pooling, a
Linear), one epoch is what the runner does per batch: read the audio, the frozen upstream's forward (no
grad), the featurizer, the head's forward, backward and Adam step; from the cache, read the cached hidden
states (:class:`upstream_tokens.feature_cache.FeatureStore`) instead of audio and forward. Targets: an
epoch from the cache ≥ 10× faster; the dump (``distilmos-tokens cache``: forward + writing +
merge) ≤ 1.3× one bare forward pass over the split. ``--quick``: tiny upstream, a few short utterances.
"""

from __future__ import annotations

import argparse
import os
import sys

import benchlib  # beside this script

EPOCH_TARGET, DUMP_TARGET = 10.0, 1.3


def measure(args, workdir: str) -> list:
    low, high = benchlib.parse_seconds(args.seconds)

    import torch

    from distilmos.data.audio import load_audio
    from distilmos.models.ssl_mos import SSLMOSModel
    from distilmos.upstream.build import build_upstream
    from distilmos.upstream.cached import CachedUpstream
    from distilmos.upstream.tiny import write_checkpoint
    from upstream_tokens.extract import Batching, FeatureExtractor, read_list
    from upstream_tokens.feature_cache import FeatureStore, dump_features

    sync = benchlib.synchronizer(args.device)
    rows, group = [], f"feature cache ({args.arch} {args.size}, {args.device})"
    ckpt = write_checkpoint(os.path.join(workdir, "upstream.pt"), args.arch, args.size, seed=args.seed)
    items = benchlib.make_wavs(os.path.join(workdir, "wav"), args.n_utts, low, high, seed=args.seed)
    csv = benchlib.write_list(os.path.join(workdir, "list.csv"), items)
    utterances, lengths = read_list(csv)
    upstream = build_upstream(f"{args.arch}_local", ckpt).to(args.device).eval()
    batching = Batching().resolved(True)
    plan = batching.plan(lengths)

    # the one-time costs: a bare forward pass over the split, and the dump
    extractor = FeatureExtractor(upstream, layers="hidden_states", device=args.device)

    def bare():
        for indices in plan:
            extractor([load_audio(utterances[i].wav_path) for i in indices])

    bare_s = benchlib.median(benchlib.time_runs(bare, 1, 1, sync))  # timed warm, as the dump that follows
    store_dir = os.path.join(workdir, "cache")
    dump_s = benchlib.median(
        benchlib.time_runs(
            lambda: dump_features(
                csv,
                store_dir,
                "train",
                f"{args.arch}_local",
                ckpt,
                dtype=args.dtype,
                device=args.device,
                extractor=extractor,
                progress=False,
            ),
            0,
            1,
            sync,
        )
    )
    store = FeatureStore(store_dir)
    rows += [
        benchlib.row(group, "bare forward pass over the split", bare_s, "s", runs=1),
        benchlib.row(group, f"dump ({args.dtype}, all {len(store.layers)} hidden states)", dump_s, "s", runs=1),
        benchlib.row(
            group,
            "dump / bare forward pass",
            dump_s / bare_s,
            "×",
            f"≤ {DUMP_TARGET:g}×",
            dump_s / bare_s <= DUMP_TARGET,
            1,
        ),
    ]

    # epochs: the same head, batches and optimizer, with the upstream or from the cache
    cached = CachedUpstream(store.layers, store.n_layers_upstream, store.downsample_rate)
    order = [list(range(i, min(i + args.batch, len(utterances)))) for i in range(0, len(utterances), args.batch)]
    dim = int(store.meta["feature_dim"])

    def epoch(from_cache: bool):
        torch.manual_seed(0)
        weights = torch.nn.Parameter(torch.zeros(len(store.layers), device=args.device))
        head = SSLMOSModel(dim).to(args.device)
        optimizer = torch.optim.Adam([weights, *head.parameters()], lr=1e-4)
        for indices in order:
            if from_cache:
                inputs = [store.features(utterances[i].sample_id).to(args.device) for i in indices]
                hidden = cached(inputs)["hidden_states"]
                counts = [x.shape[1] for x in inputs]
            else:
                wavs = [load_audio(utterances[i].wav_path).to(args.device) for i in indices]
                with torch.no_grad():
                    hidden = upstream(wavs)["hidden_states"]
                counts = [store.expected_frames(len(w)) for w in wavs]
            mixed = (torch.softmax(weights, 0)[:, None, None, None] * torch.stack(hidden)).sum(0)
            lengths = torch.tensor(counts, device=args.device)
            pred = head(mixed[:, : max(counts)], lengths)["pred"]
            loss = (pred - 3.0).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    live_s = benchlib.median(benchlib.time_runs(lambda: epoch(False), 0, args.epochs, sync))
    cache_s = benchlib.median(benchlib.time_runs(lambda: epoch(True), 1, args.epochs, sync))
    rows += [
        benchlib.row(
            group,
            f"epoch with the upstream in the loop ({len(order)} batches of {args.batch})",
            live_s,
            "s",
            runs=args.epochs,
        ),
        benchlib.row(group, "epoch from the cache", cache_s, "s", runs=args.epochs),
        benchlib.row(
            group,
            "epoch speed-up from the cache",
            live_s / cache_s,
            "×",
            f"≥ {EPOCH_TARGET:g}×",
            live_s / cache_s >= EPOCH_TARGET,
            args.epochs,
        ),
    ]
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.corpus_options(parser, n_utts=24, seconds="1-6", arch=True)
    parser.add_argument("--batch", type=int, default=4, help="training batch (default 4)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs of each kind (default 2)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16"))
    benchlib.common_options(parser, "tiny upstream, few short utterances, one epoch")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.n_utts, args.seconds, args.epochs = "tiny", 8, "0.5-1.5", 1
    benchlib.run(args, measure, note=f"{args.n_utts} utterances of {args.seconds} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
