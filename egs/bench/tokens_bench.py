#!/usr/bin/env python
"""Benchmark of upstream_tokens with a base-size upstream (WavLM Base architecture, random weights).

    python egs/bench/tokens_bench.py [--n_utts 16] [--min_seconds 2] [--max_seconds 4] [--scales 1,2,4]
        [--n_clusters 200] [--layerwise_layers all] [--max_batch_seconds 100] [--max_pad 0.02]
        [--threads N] [--mmap_threshold 131072] [--device cpu] [--workdir DIR]

Prints a Markdown table (figures, not assertions):

- bare forward: one pass of the length-aware batches through the frozen upstream (audio reading,
  forward, unpadding), the unit of the "x forward" column;
- fit + dump (one forward per batch feeds every layer), with the sklearn and the torch k-means backend;
- layer at a time: the naive alternative, one fit + dump per layer (one forward per layer); with
  ``--layerwise_layers 1,6,12`` only those layers run and the total is scaled to all layers (marked);
- peak memory of fit + dump at 1x, 2x and 4x the utterances: each case runs in its own process, which
  reports its own peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, dominated by
  loading the model) and, on Linux, the peak of the work alone (the kernel's peak mark is reset after
  loading, then ``VmHWM`` is read) and how far it rose above the loaded process. The work's memory is
  set by the largest forward batch (shown), which ``--max_batch_seconds`` bounds; a small corpus may not
  fill that bound, so to compare scales at equal batch size use e.g. ``--max_batch_seconds 12 --max_pad 1``.

Timings exclude process start-up and model loading (reported apart). Speech-like content does not change
the cost, so the utterances are seeded tones with noise.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def make_corpus(folder: str, n_utts: int, min_seconds: float, max_seconds: float, seed: int) -> list:
    """Write ``n_utts`` wavs; return their (sample_id, path) in order (prefixes give the smaller scales)."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    items = []
    for i in range(n_utts):
        n = int(rng.uniform(min_seconds, max_seconds) * 16000)
        t = np.arange(n) / 16000
        wav = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.05 * rng.standard_normal(n)
        path = os.path.join(folder, f"bench{i:04d}.wav")
        sf.write(path, wav.astype(np.float32), 16000, subtype="PCM_16")
        items.append((f"bench{i:04d}", path))
    return items


def write_list(path: str, items: list) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("sample_id,system_id,wav_path,score\n")
        for sample_id, wav in items:
            handle.write(f"{sample_id},bench,{wav},3.0\n")
    return path


# ------------------------------------------------------------------------------------ child cases

def _proc_status_kib(field: str):
    """A ``/proc/self/status`` field in KiB (Linux), else None."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0), so that the peak of the work
    alone can be read, apart from the model loading before it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def run_case(args) -> dict:
    """One measurement in this process; returns timings and this process's peak RSS."""
    import torch

    from upstream_tokens.dump import dump_split
    from upstream_tokens.extract import Batching, FeatureExtractor, read_list
    from upstream_tokens.fit import fit_store

    torch.manual_seed(args.seed)
    batching = Batching(max_batch_seconds=args.max_batch_seconds, max_pad=args.max_pad)
    started = time.perf_counter()
    extractor = FeatureExtractor.from_spec("wavlm_local", args.ckpt, layers="all", device=args.device)
    result = {"load_s": time.perf_counter() - started, "n_layers": extractor.n_layers_upstream}
    utterances, lengths = read_list(args.csv)
    plan = batching.plan(lengths)
    result.update(n_utts=len(utterances), audio_s=sum(lengths) / 16000, n_batches=len(plan),
                  max_batch_s=max(lengths[b[0]] * len(b) for b in plan) / 16000)  # padded audio of the largest
    import gc

    gc.collect()
    rss_before = _proc_status_kib("VmRSS")
    can_reset = _reset_peak_rss()

    if args.case == "forward":
        started = time.perf_counter()
        for _ in extractor.iter_batches(utterances, plan, range(len(plan)), progress=False):
            pass
        result["wall_s"] = time.perf_counter() - started
    elif args.case in ("fitdump", "layerwise"):
        layers = extractor.layers if args.case == "fitdump" else [int(n) for n in args.layers.split(",")]
        groups = [layers] if args.case == "fitdump" else [[n] for n in layers]
        fit_s = dump_s = 0.0
        for group in groups:
            extractor.layers = group  # the same loaded model; only the layers it hands out change
            store = os.path.join(args.workdir, f"store-{args.case}-{args.backend}-{len(utterances)}-{group[0]}")
            started = time.perf_counter()
            fit_store(args.csv, "wavlm_local", args.ckpt, store, layers=group, n_clusters=args.n_clusters,
                      backend=args.backend, seed=args.seed, device=args.device, batching=batching,
                      progress=False, overwrite=True, extractor=extractor)
            fit_s += time.perf_counter() - started
            started = time.perf_counter()
            dump_split(args.csv, store, "train", device=args.device, batching=batching, progress=False,
                       overwrite=True, extractor=extractor)
            dump_s += time.perf_counter() - started
        result.update(fit_s=fit_s, dump_s=dump_s, wall_s=fit_s + dump_s, layers_run=len(groups))
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    # Peak of the work alone (after the model was loaded), and what it added to the loaded process.
    work_peak = _proc_status_kib("VmHWM") if can_reset else None
    result["work_peak_rss_mib"] = work_peak / 1024 if work_peak else float("nan")
    result["work_growth_mib"] = (work_peak - rss_before) / 1024 if work_peak and rss_before else float("nan")
    return result


def child(case: str, csv: str, opts, backend: str = "sklearn", layers: str = "") -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_case", case, "--_csv", csv, "--_ckpt", opts.ckpt,
           "--_backend", backend, "--_layers", layers or "0", "--workdir", opts.workdir,
           "--n_clusters", str(opts.n_clusters), "--device", opts.device, "--seed", str(opts.seed),
           "--max_batch_seconds", str(opts.max_batch_seconds), "--max_pad", str(opts.max_pad)]
    env = dict(os.environ)
    if opts.mmap_threshold:
        # glibc's default threshold grows after each large free, so freed batch tensors stay in the heap
        # and RSS creeps up with the number of differently sized batches; a fixed threshold returns them
        # to the system, and RSS then tracks the memory really in use.
        env["MALLOC_MMAP_THRESHOLD_"] = str(opts.mmap_threshold)
    if opts.threads:
        env.update(OMP_NUM_THREADS=str(opts.threads), MKL_NUM_THREADS=str(opts.threads))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"benchmark case {case} failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------- main

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n_utts", type=int, default=16, help="utterances at scale 1x (default 16)")
    parser.add_argument("--min_seconds", type=float, default=2.0)
    parser.add_argument("--max_seconds", type=float, default=4.0)
    parser.add_argument("--scales", default="1,2,4", help="multiples of --n_utts for the memory rows")
    parser.add_argument("--n_clusters", type=int, default=200)
    parser.add_argument("--layerwise_layers", default="all",
                        help="layers the layer-at-a-time baseline really runs (all, or e.g. 1,6,12, scaled up)")
    parser.add_argument("--max_batch_seconds", type=float, default=100.0, help="forward batching, as the tool's option")
    parser.add_argument("--max_pad", type=float, default=0.02, help="forward batching, as the tool's option")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch/OpenMP threads of the measured processes (default: the libraries' own)")
    parser.add_argument("--mmap_threshold", type=int, default=131072,
                        help="glibc MALLOC_MMAP_THRESHOLD_ for the measured processes (default 131072; 0 = glibc's "
                             "dynamic default, whose heap fragmentation adds RSS with every distinct batch shape)")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one)")
    # internal: one measured case in a child process
    parser.add_argument("--_case", help=argparse.SUPPRESS)
    parser.add_argument("--_csv", help=argparse.SUPPRESS)
    parser.add_argument("--_ckpt", help=argparse.SUPPRESS)
    parser.add_argument("--_backend", default="sklearn", help=argparse.SUPPRESS)
    parser.add_argument("--_layers", default="0", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._case:
        ns = argparse.Namespace(case=args._case, csv=args._csv, ckpt=args._ckpt, backend=args._backend,
                                layers=args._layers, workdir=args.workdir, n_clusters=args.n_clusters,
                                device=args.device, seed=args.seed, max_batch_seconds=args.max_batch_seconds,
                                max_pad=args.max_pad)
        print(json.dumps(run_case(ns)))
        return

    with tempfile.TemporaryDirectory(prefix="tokens_bench_") as scratch:
        args.workdir = args.workdir or scratch
        os.makedirs(args.workdir, exist_ok=True)
        from distilmos.tiny_upstream import write_checkpoint

        args.ckpt = write_checkpoint(os.path.join(args.workdir, "wavlm_base.pt"), "wavlm", size="base", seed=args.seed)
        scales = [int(s) for s in args.scales.split(",")]
        items = make_corpus(os.path.join(args.workdir, "wav"), args.n_utts * max(scales), args.min_seconds,
                            args.max_seconds, args.seed)
        csvs = {s: write_list(os.path.join(args.workdir, f"x{s}.csv"), items[: args.n_utts * s]) for s in scales}
        base = csvs[scales[0]]

        rows = []
        forward = child("forward", base, args)
        rows.append(("bare forward, 1 pass", forward))
        for backend in ("sklearn", "torch"):
            rows.append((f"fit + dump, {backend}", child("fitdump", base, args, backend)))
        n_layers = forward["n_layers"]
        wanted = list(range(1, n_layers + 1)) if args.layerwise_layers == "all" else [
            int(n) for n in args.layerwise_layers.split(",")]
        layerwise = child("layerwise", base, args, "sklearn", ",".join(map(str, wanted)))
        scale_up = n_layers / len(wanted)
        for key in ("fit_s", "dump_s", "wall_s"):
            layerwise[key] *= scale_up
        label = "layer at a time, sklearn" + ("" if scale_up == 1 else f" (ran {len(wanted)} of {n_layers} layers, scaled)")
        rows.append((label, layerwise))
        for s in scales[1:]:
            rows.append((f"fit + dump, sklearn, {s}x utterances", child("fitdump", csvs[s], args, "sklearn")))
        forward_rows = {scales[0]: forward}
        for s in scales[1:]:
            forward_rows[s] = child("forward", csvs[s], args)

        load = os.getloadavg()
        print(f"\nupstream: WavLM Base architecture (random weights), {n_layers} layers; k={args.n_clusters}, "
              f"k-means batch 64; batching: {args.max_batch_seconds:g} s, max_pad {args.max_pad:g}; device "
              f"{args.device}, {os.cpu_count()} CPU cores, threads {args.threads or 'default'}; MALLOC_MMAP_THRESHOLD_ "
              f"{args.mmap_threshold or 'default'}; load average "
              f"{load[0]:.1f}; model load {forward['load_s']:.1f} s (not counted)\n")
        print("| case | utts | audio (s) | batches | largest batch (s) | fit (s) | dump (s) | wall (s) | x bare forward "
              "| peak RSS, process (MiB) | peak RSS, work (MiB) | work - loaded (MiB) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        table = rows + [(f"bare forward, {s}x utterances", forward_rows[s]) for s in scales[1:]]
        for label, r in table:
            unit = forward_rows.get(r["n_utts"] // args.n_utts, forward)["wall_s"]
            phases = (f"{r['fit_s']:.1f} | {r['dump_s']:.1f}" if "fit_s" in r else " | ")
            print(f"| {label} | {r['n_utts']} | {r['audio_s']:.1f} | {r['n_batches']} | {r['max_batch_s']:.1f} | "
                  f"{phases} | {r['wall_s']:.1f} | "
                  f"{r['wall_s'] / unit:.2f} | {r['peak_rss_mib']:.0f} | {r['work_peak_rss_mib']:.0f} | "
                  f"{r['work_growth_mib']:.0f} |")


if __name__ == "__main__":
    main()
