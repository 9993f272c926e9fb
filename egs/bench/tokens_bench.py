#!/usr/bin/env python
"""Benchmark of upstream_tokens with a base-size upstream (WavLM Base architecture, random weights).

    python egs/bench/tokens_bench.py [--n_utts 16] [--min_seconds 2] [--max_seconds 4] [--scales 1,2,4]
        [--n_clusters 200] [--layerwise_layers all] [--max_batch_seconds 100] [--max_pad 0.02]
        [--repeats 3] [--scale_repeats 1] [--size base] [--threads N] [--mmap_threshold 131072]
        [--device cpu] [--workdir DIR] [--json PATH] [--quick]

Prints a Markdown table of every case, then the result rows (ratios with their targets; ``--json PATH``
writes them, see benchlib):

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

Timings exclude process start-up and model loading (reported apart). Beside the wall time, each case
reports its process's CPU time, which waiting for a core on a machine shared with other jobs does not
inflate (with one thread it is the quiet-machine wall time); the ratios are given for both. Each case first
makes one untimed forward pass over its data (warm-up: allocator, kernels, page cache), then runs ``--repeats`` times
(``--scale_repeats`` for the 2x and 4x memory cases); its times are medians. Speech-like content does
not change the cost, so the utterances are seeded tones with noise.

Targets: fit + dump at most 2.3x one bare forward pass; at least 8x faster than layer at a time for a
12-layer upstream; peak memory (the work's peak RSS) at the largest scale within 15 % of 1x.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import benchlib  # beside this script

TARGET_FORWARD_RATIO = 2.3
TARGET_LAYERWISE_SPEEDUP = 8.0
TARGET_MEMORY_GROWTH = 0.15


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

    from distilmos.data.audio import SAMPLE_RATE
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
    result.update(
        n_utts=len(utterances),
        audio_s=sum(lengths) / SAMPLE_RATE,
        n_batches=len(plan),
        max_batch_s=max(lengths[b[0]] * len(b) for b in plan) / SAMPLE_RATE,
    )  # padded audio of the largest

    def forward_pass():
        for _ in extractor.iter_batches(utterances, plan, range(len(plan)), progress=False):
            pass

    forward_pass()  # warm-up, untimed
    import gc

    gc.collect()
    rss_before = _proc_status_kib("VmRSS")
    can_reset = _reset_peak_rss()

    cpus = []
    if args.case == "forward":
        walls = []
        for _ in range(args.repeats):
            started, started_cpu = time.perf_counter(), time.process_time()
            forward_pass()
            walls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - started_cpu)
        result.update(wall_s=benchlib.median(walls), walls=walls)
    elif args.case in ("fitdump", "layerwise"):
        layers = extractor.layers if args.case == "fitdump" else [int(n) for n in args.layers.split(",")]
        groups = [layers] if args.case == "fitdump" else [[n] for n in layers]
        fits, dumps = [], []
        # fit and dump run alike: one loaded upstream, the same batching
        run = dict(device=args.device, batching=batching, progress=False, overwrite=True, extractor=extractor)
        for _ in range(args.repeats):
            fit_s = dump_s = 0.0
            started_cpu = time.process_time()
            for group in groups:
                extractor.layers = group  # the same loaded model; only the layers it hands out change
                store = os.path.join(args.workdir, f"store-{args.case}-{args.backend}-{len(utterances)}-{group[0]}")
                started = time.perf_counter()
                fit_store(
                    args.csv,
                    "wavlm_local",
                    args.ckpt,
                    store,
                    layers=group,
                    n_clusters=args.n_clusters,
                    backend=args.backend,
                    seed=args.seed,
                    **run,
                )
                fit_s += time.perf_counter() - started
                started = time.perf_counter()
                dump_split(args.csv, store, "train", **run)
                dump_s += time.perf_counter() - started
            fits.append(fit_s)
            dumps.append(dump_s)
            cpus.append(time.process_time() - started_cpu)
        walls = [f + d for f, d in zip(fits, dumps)]
        result.update(
            fit_s=benchlib.median(fits),
            dump_s=benchlib.median(dumps),
            wall_s=benchlib.median(walls),
            walls=walls,
            layers_run=len(groups),
        )
    # This process's CPU time: unlike the wall time, not inflated by waiting for a core on a shared machine.
    result.update(cpu_s=benchlib.median(cpus), cpus=cpus, repeats=args.repeats)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    # Peak of the work alone (after the model was loaded), and what it added to the loaded process.
    work_peak = _proc_status_kib("VmHWM") if can_reset else None
    result["work_peak_rss_mib"] = work_peak / 1024 if work_peak else float("nan")
    result["work_growth_mib"] = (work_peak - rss_before) / 1024 if work_peak and rss_before else float("nan")
    return result


def child(case: str, csv: str, opts, backend: str = "sklearn", layers: str = "", repeats: int = None) -> dict:
    """Run one case in a fresh process (its own peak memory); return what it measured.

    With ``--in_process`` the case runs in this process instead (no interpreter start-up; the work's
    peak is still per case, but the process peak then spans every case so far)."""
    if opts.in_process:
        return run_case(
            argparse.Namespace(
                case=case,
                csv=csv,
                ckpt=opts.ckpt,
                backend=backend,
                layers=layers or "0",
                workdir=opts.workdir,
                n_clusters=opts.n_clusters,
                device=opts.device,
                seed=opts.seed,
                max_batch_seconds=opts.max_batch_seconds,
                max_pad=opts.max_pad,
                repeats=repeats or opts.repeats,
            )
        )
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--_case",
        case,
        "--_csv",
        csv,
        "--_ckpt",
        opts.ckpt,
        "--_backend",
        backend,
        "--_layers",
        layers or "0",
        "--workdir",
        opts.workdir,
        "--repeats",
        str(repeats or opts.repeats),
        "--n_clusters",
        str(opts.n_clusters),
        "--device",
        opts.device,
        "--seed",
        str(opts.seed),
        "--max_batch_seconds",
        str(opts.max_batch_seconds),
        "--max_pad",
        str(opts.max_pad),
    ]
    env = dict(os.environ)
    if opts.mmap_threshold:
        # glibc's default threshold grows after each large free, so freed batch tensors stay in the heap
        # and RSS creeps up with the number of differently sized batches; a fixed threshold returns them
        # to the system, and RSS then tracks the memory really in use.
        env["MALLOC_MMAP_THRESHOLD_"] = str(opts.mmap_threshold)
    if opts.threads:
        env.update(OMP_NUM_THREADS=str(opts.threads), MKL_NUM_THREADS=str(opts.threads))
    proc = subprocess.run(cmd, cwd=benchlib.REPO, env=env, capture_output=True, text=True)
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
    parser.add_argument(
        "--layerwise_layers",
        default="all",
        help="layers the layer-at-a-time baseline really runs (all, or e.g. 1,6,12, scaled up)",
    )
    parser.add_argument("--max_batch_seconds", type=float, default=100.0, help="forward batching, as the tool's option")
    parser.add_argument("--max_pad", type=float, default=0.02, help="forward batching, as the tool's option")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each 1x case; medians (default 3)")
    parser.add_argument(
        "--scale_repeats", type=int, default=1, help="timed runs of the larger-scale (memory) cases (default 1)"
    )
    parser.add_argument("--size", choices=("base", "tiny"), default="base", help="upstream size (default base)")
    parser.add_argument(
        "--mmap_threshold",
        type=int,
        default=131072,
        help="glibc MALLOC_MMAP_THRESHOLD_ for the measured processes (default 131072; 0 = glibc's "
        "dynamic default, whose heap fragmentation adds RSS with every distinct batch shape)",
    )
    parser.add_argument(
        "--in_process",
        action="store_true",
        help="run the cases in this process, not one fresh process each (faster; see child())",
    )
    # --threads is that of the measured processes
    benchlib.common_options(
        parser, "smoke test: tiny upstream, 4 utterances of 1-1.5 s at 1x and 2x, k=8, one run each, in process"
    )
    # internal: one measured case in a child process
    parser.add_argument("--_case", help=argparse.SUPPRESS)
    parser.add_argument("--_csv", help=argparse.SUPPRESS)
    parser.add_argument("--_ckpt", help=argparse.SUPPRESS)
    parser.add_argument("--_backend", default="sklearn", help=argparse.SUPPRESS)
    parser.add_argument("--_layers", default="0", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.n_utts, args.min_seconds, args.max_seconds = "tiny", 4, 1.0, 1.5
        args.scales, args.n_clusters, args.repeats, args.scale_repeats = "1,2", 8, 1, 1
        args.in_process = True
    if args.repeats < 1 or args.scale_repeats < 1:
        parser.error("--repeats and --scale_repeats must be at least 1")

    if args._case:
        ns = argparse.Namespace(
            case=args._case,
            csv=args._csv,
            ckpt=args._ckpt,
            backend=args._backend,
            layers=args._layers,
            workdir=args.workdir,
            n_clusters=args.n_clusters,
            device=args.device,
            seed=args.seed,
            max_batch_seconds=args.max_batch_seconds,
            max_pad=args.max_pad,
            repeats=args.repeats,
        )
        print(json.dumps(run_case(ns)))
        return

    info = benchlib.machine(args.device, args.threads)  # each measured process sets its threads itself
    with benchlib.scratch(args.workdir) as folder:
        args.workdir = folder
        table, rows = measure(args)
    benchlib.report(info, rows, args.json, note=table)


def measure(args):
    """Run every case; return the per-case Markdown table and the result rows."""
    from distilmos.upstream.tiny import write_checkpoint

    args.ckpt = write_checkpoint(
        os.path.join(args.workdir, f"wavlm_{args.size}.pt"), "wavlm", size=args.size, seed=args.seed
    )
    scales = [int(s) for s in args.scales.split(",")]
    items = benchlib.make_wavs(
        os.path.join(args.workdir, "wav"), args.n_utts * max(scales), args.min_seconds, args.max_seconds, args.seed
    )
    csvs = {s: benchlib.write_list(os.path.join(args.workdir, f"x{s}.csv"), items[: args.n_utts * s]) for s in scales}
    base = csvs[scales[0]]

    cases = []
    forward = child("forward", base, args)
    cases.append(("bare forward, 1 pass", forward))
    fitdump = {}
    for backend in ("sklearn", "torch"):
        fitdump[backend] = child("fitdump", base, args, backend)
        cases.append((f"fit + dump, {backend}", fitdump[backend]))
    n_layers = forward["n_layers"]
    wanted = (
        list(range(1, n_layers + 1))
        if args.layerwise_layers == "all"
        else [int(n) for n in args.layerwise_layers.split(",")]
    )
    layerwise = child("layerwise", base, args, "sklearn", ",".join(map(str, wanted)))
    scale_up = n_layers / len(wanted)
    for key in ("fit_s", "dump_s", "wall_s", "cpu_s"):
        layerwise[key] *= scale_up
    for key in ("walls", "cpus"):
        layerwise[key] = [t * scale_up for t in layerwise[key]]
    scaled_note = "" if scale_up == 1 else f" (ran {len(wanted)} of {n_layers} layers, scaled)"
    cases.append(("layer at a time, sklearn" + scaled_note, layerwise))
    at_scale = {scales[0]: fitdump["sklearn"]}
    for s in scales[1:]:
        at_scale[s] = child("fitdump", csvs[s], args, "sklearn", repeats=args.scale_repeats)
        cases.append((f"fit + dump, sklearn, {s}x utterances", at_scale[s]))
    forward_at = {scales[0]: forward}
    for s in scales[1:]:
        forward_at[s] = child("forward", csvs[s], args, repeats=args.scale_repeats)

    load = os.getloadavg()
    lines = [
        f"upstream: WavLM {args.size} architecture (random weights), {n_layers} layers; k={args.n_clusters}, "
        f"k-means batch 64; batching: {args.max_batch_seconds:g} s, max_pad {args.max_pad:g}; device "
        f"{args.device}, threads {args.threads or 'default'}; "
        + (
            "cases in one process; "
            if args.in_process
            else f"MALLOC_MMAP_THRESHOLD_ {args.mmap_threshold or 'default'}; "
        )
        + f"load average {load[0]:.1f} at the end; model load "
        f"{forward['load_s']:.1f} s (not counted); times are medians of {args.repeats} runs at 1x, "
        f"{args.scale_repeats} at larger scales",
        "",
        "| case | utts | audio (s) | batches | largest batch (s) | fit (s) | dump (s) | wall (s) | CPU (s) "
        "| x bare forward | peak RSS, process (MiB) | peak RSS, work (MiB) | work - loaded (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in cases + [(f"bare forward, {s}x utterances", forward_at[s]) for s in scales[1:]]:
        unit = forward_at.get(r["n_utts"] // args.n_utts, forward)["wall_s"]
        phases = f"{r['fit_s']:.1f} | {r['dump_s']:.1f}" if "fit_s" in r else " | "
        lines.append(
            f"| {label} | {r['n_utts']} | {r['audio_s']:.1f} | {r['n_batches']} | {r['max_batch_s']:.1f} | "
            f"{phases} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['wall_s'] / unit:.2f} | {r['peak_rss_mib']:.0f} | "
            f"{r['work_peak_rss_mib']:.0f} | {r['work_growth_mib']:.0f} |"
        )
    return "\n".join(lines), result_rows(
        args, scales, forward, fitdump, layerwise, scaled_note, at_scale, forward_at, n_layers
    )


def result_rows(args, scales, forward, fitdump, layerwise, scaled_note, at_scale, forward_at, n_layers) -> list:
    """The figures the targets are about, as result rows (see benchlib)."""
    group, reps = "tokens", args.repeats
    n = forward["n_utts"]
    rows = [
        benchlib.row(
            group, f"bare forward, {n} utts ({forward['audio_s']:.0f} s of audio)", forward["wall_s"], "s", runs=reps
        )
    ]
    for backend in ("sklearn", "torch"):
        r = fitdump[backend]
        rows.append(benchlib.row(group, f"fit + dump, {backend} backend", r["wall_s"], "s", runs=reps))
    for clock, key in (("wall", "wall_s"), ("CPU", "cpu_s")):
        for backend in ("sklearn", "torch"):
            ratio = fitdump[backend][key] / forward[key]
            rows.append(
                benchlib.row(
                    group,
                    f"fit + dump ({backend}) / bare forward, {clock} time",
                    ratio,
                    "×",
                    f"≤ {TARGET_FORWARD_RATIO:g}× bare forward",
                    ratio <= TARGET_FORWARD_RATIO,
                    reps,
                )
            )
    # The fit has a fixed cost (k-means++ seeding of every layer), so the ratio falls as the corpus grows.
    for s in scales[1:]:
        for clock, key in (("wall", "wall_s"), ("CPU", "cpu_s")):
            rows.append(
                benchlib.row(
                    group,
                    f"fit + dump (sklearn) / bare forward at {s}x utterances, {clock} time",
                    at_scale[s][key] / forward_at[s][key],
                    "×",
                    runs=args.scale_repeats,
                )
            )
    rows.append(
        benchlib.row(
            group,
            "torch / sklearn backend, fit + dump",
            fitdump["torch"]["wall_s"] / fitdump["sklearn"]["wall_s"],
            "×",
            runs=reps,
        )
    )
    rows.append(benchlib.row(group, "layer at a time, sklearn" + scaled_note, layerwise["wall_s"], "s", runs=reps))
    twelve = n_layers == 12
    for clock, key in (("wall", "wall_s"), ("CPU", "cpu_s")):
        speedup = layerwise[key] / fitdump["sklearn"][key]
        rows.append(
            benchlib.row(
                group,
                f"layer at a time / fit + dump (sklearn), {n_layers} layers, {clock} time",
                speedup,
                "×",
                f"≥ {TARGET_LAYERWISE_SPEEDUP:g}× (12-layer upstream)",
                speedup >= TARGET_LAYERWISE_SPEEDUP if twelve else None,
                reps,
            )
        )

    def peak(r):  # the work's peak RSS where the kernel's mark could be reset, else the process's
        value = r["work_peak_rss_mib"]
        return value if value == value else r["peak_rss_mib"]

    for s in scales:
        r = at_scale[s]
        rows.append(
            benchlib.row(
                group,
                f"peak RSS, fit + dump at {s}x ({r['n_utts']} utts, largest batch {r['max_batch_s']:.0f} s)",
                peak(r),
                "MiB",
                runs=reps if s == scales[0] else args.scale_repeats,
            )
        )
    for s in scales[1:]:
        growth = peak(at_scale[s]) / peak(at_scale[scales[0]])
        last = s == scales[-1]
        rows.append(
            benchlib.row(
                group,
                f"peak RSS {s}x / {scales[0]}x utterances",
                growth,
                "×",
                f"≤ {1 + TARGET_MEMORY_GROWTH:g}× (within {TARGET_MEMORY_GROWTH:.0%})" if last else None,
                growth <= 1 + TARGET_MEMORY_GROWTH if last else None,
                args.scale_repeats,
            )
        )
    return rows


if __name__ == "__main__":
    main()
