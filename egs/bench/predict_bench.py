#!/usr/bin/env python
"""Inference speed of an exported predictor: batched vs one-by-one scoring, and what the MOS heads and
the audio I/O add to a bare upstream forward.

    python egs/bench/predict_bench.py [--size base] [--n_utts 24] [--seconds 1-8] [--batch_size 16]
        [--max_pad 0.02] [--warmup 1] [--repeats 3] [--device cpu] [--threads N] [--json PATH] [--quick]

The predictor is a real predictor file (written with the export code's own assembly, loaded with
``distilmos.predictor.load``) of a randomly initialised DistilMOS on a WavLM Base-size upstream
(``distilmos-tiny-upstream --arch wavlm --size base``; ``--size tiny`` for a smoke run): no
training is needed, speed does not depend on the weights. ``--n_utts`` generated 16 kHz wavs of uniform
random length in ``--seconds`` are scored in four ways, taking turns in every round so that a change of
machine load touches all of them alike (``--warmup`` untimed rounds, then ``--repeats`` timed rounds;
each figure is the median):

- ``bare upstream``: the upstream alone, one waveform at a time, audio already in memory;
- ``network``: upstream + featurizer + DistilMOS inference model, one at a time, audio in memory;
- ``one by one``: ``predictor.predict(paths=...)`` with ``batch_size=1`` (reading, resampling, scoring);
- ``batched``: the same with ``--batch_size`` and ``--max_pad`` (the command's defaults unless given: for
  the Base size, whose front end normalises over time, ``max_pad`` 0.02).

Targets: batched scoring at least 1.5x the throughput of one-by-one scoring; heads and I/O (one by one,
from files) at most 10 % over the bare upstream forward. On a CPU a batched forward does the same
arithmetic per sample as single ones and a single utterance already fills the cores' matrix units, so
batching gains little there; its gains come from an accelerator's parallelism (run with --device cuda).
On a CPU the process's CPU time is reported beside the wall time: on a shared machine the wall time
includes waiting for a core.
"""

from __future__ import annotations

import argparse
import functools
import os

import benchlib  # beside this script

BATCH_TARGET = 1.5
OVERHEAD_TARGET = 10.0
#: the batched run's options, named as the Predictor's arguments they are passed to
BATCHED = {
    "batch_size": dict(type=int, default=16, help="windows per batch (default 16)"),
    "max_pad": dict(
        type=float,
        default=None,
        help="most padding per window, fraction of its batch's longest (default: the predictor's, by the "
        "upstream's front end)",
    ),
    "max_batch_seconds": dict(type=float, default=160.0, help="padded audio per batch"),
}


def write_random_predictor(upstream_ckpt: str, out: str, seed: int = 0) -> str:
    """A predictor file of a randomly initialised DistilMOS on the ``wavlm_local`` upstream ``upstream_ckpt``."""
    import torch

    from distilmos import registry
    from distilmos.data.audio import SAMPLE_RATE
    from distilmos.predictor import upstream_entry as upstream_parts
    from distilmos.predictor.export import assemble
    from distilmos.predictor.fileformat import write_predictor
    from distilmos.predictor.pipeline import FeatureSelector

    torch.manual_seed(seed)
    model, configs = upstream_parts.build_for_export("wavlm_local", upstream_ckpt, None)
    with torch.inference_mode():
        hidden = model([torch.zeros(SAMPLE_RATE)])["hidden_states"]
    dim = hidden[-1].shape[-1]
    selector = FeatureSelector(
        "hidden_states", None, False, model.get_downsample_rates("hidden_states"), dim, n_layers=len(hidden)
    )
    expert_state = {f"model.{k}": v for k, v in registry.model_class("distilmos")(dim).state_dict().items()}
    blob, _ = assemble(model, ("wavlm_local", upstream_ckpt, None), configs, selector, "distilmos", expert_state)
    blob["card"] = {"note": "random weights, for speed measurements only", "upstream": {"name": "wavlm_local"}}
    write_predictor(blob, out)
    return out


def measure(args, workdir: str) -> list:
    import torch

    from distilmos.data.audio import SAMPLE_RATE, load_audio
    from distilmos.predictor import Predictor, load
    from distilmos.upstream.tiny import write_checkpoint

    torch.set_flush_denormal(True)  # as the command does: subnormal GELU tails slow CPU matmuls
    low, high = benchlib.parse_seconds(args.seconds)
    items = benchlib.make_wavs(os.path.join(workdir, "wavs"), args.n_utts, low, high, args.seed)
    paths = [path for _, path in items]
    ckpt = write_checkpoint(os.path.join(workdir, f"wavlm_{args.size}.pt"), "wavlm", args.size, seed=args.seed)
    model_file = write_random_predictor(ckpt, os.path.join(workdir, "predictor.pt"), args.seed)

    one = load(model_file, device=args.device, batch_size=1)
    batched = Predictor(one.pipeline, one.card, device=args.device, **{name: getattr(args, name) for name in BATCHED})
    wavs = [load_audio(p).to(one.device) for p in paths]
    audio_seconds = sum(len(w) for w in wavs) / SAMPLE_RATE
    pipeline, upstream = one.pipeline, one.pipeline.upstream
    results = {}

    def bare():
        with torch.inference_mode():
            for w in wavs:
                upstream([w])

    def network():
        with torch.inference_mode():
            for w in wavs:
                pipeline([w])

    def one_by_one():
        results["one"] = one.predict(paths=paths)

    def in_batches():
        results["batched"] = batched.predict(paths=paths)

    cases = {"bare upstream": bare, "network": network, "one by one": one_by_one, "batched": in_batches}
    times = benchlib.time_rounds(cases, args.warmup, args.repeats, args.device)
    med = {name: benchlib.median(times.get((name, "wall"), [])) for name in cases}
    med_cpu = {name: benchlib.median(times.get((name, "CPU"), [])) for name in cases}

    group = f"inference ({args.size} WavLM, {args.n_utts} utts of {args.seconds} s, {args.device})"
    timed = functools.partial(benchlib.row, group, runs=args.repeats)  # a median of the timed rounds
    rows = []
    for name in cases:
        rows.append(timed(f"{name}: throughput", args.n_utts / med[name], "utts/s"))
        rows.append(timed(f"{name}: real-time factor", med[name] / audio_seconds, "x"))
    speedup = med["one by one"] / med["batched"]
    cap = "none, padding-exact" if batched.max_pad is None else f"{batched.max_pad:g}"
    batching = f"batched (batch_size {args.batch_size}, max_pad {cap}) vs one by one"
    rows.append(timed(batching, speedup, "x", target=f"≥ {BATCH_TARGET:g}×", met=speedup >= BATCH_TARGET))
    overhead = 100 * (med["one by one"] / med["bare upstream"] - 1)
    rows.append(
        timed(
            "heads + I/O over a bare upstream forward (one by one)",
            overhead,
            "%",
            target=f"≤ {OVERHEAD_TARGET:g}%",
            met=overhead <= OVERHEAD_TARGET,
        )
    )
    heads = 100 * (med["network"] / med["bare upstream"] - 1)
    rows.append(timed("of which heads (featurizer + DistilMOS model)", heads, "%"))
    if not str(args.device).startswith("cuda"):
        cpu_overhead = 100 * (med_cpu["one by one"] / med_cpu["bare upstream"] - 1)
        rows.append(timed("batched vs one by one, CPU time", med_cpu["one by one"] / med_cpu["batched"], "x"))
        rows.append(timed("heads + I/O over a bare upstream forward, CPU time", cpu_overhead, "%"))
    _, batches = batched.plan([len(w) for w in wavs])
    rows.append(benchlib.row(group, "windows per batch (batched)", len(wavs) / len(batches), "utts"))
    gap = max(abs(a - b) for a, b in zip(results["one"], results["batched"]))
    rows.append(benchlib.row(group, "largest score change, batched vs one by one (random weights)", gap, "MOS"))
    rows.append(benchlib.row(group, "upstream parameters", sum(p.numel() for p in upstream.parameters()), "params"))
    rows.append(
        benchlib.row(
            group,
            "head parameters (featurizer + DistilMOS model)",
            sum(p.numel() for p in pipeline.featurizer.parameters())
            + sum(p.numel() for p in pipeline.downstream.parameters()),
            "params",
        )
    )
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.corpus_options(parser, n_utts=24, seconds="1-8")
    group = parser.add_argument_group("batched run")
    for name, options in BATCHED.items():
        group.add_argument(f"--{name}", **options)
    benchlib.common_options(parser, "smoke run: tiny upstream, 6 short utterances, 1 round", rounds=(1, 3))
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.n_utts, args.seconds, args.warmup, args.repeats = "tiny", 6, "1-2", 0, 1
    note = f"Each figure: median of {args.repeats} timed round(s) after {args.warmup} warm-up round(s)."
    benchlib.run(args, measure, note)


if __name__ == "__main__":
    main()
