#!/usr/bin/env python
"""Compact predictors against their teacher: CPU inference speed of the smallest student, of 50 % pruned
upstreams and of the unpruned ones, as ratios measured in one run.

    python egs/bench/compress_bench.py [--size base] [--n_utts 8] [--seconds 2-4] [--warmup 1] [--repeats 5]
        [--threads 1] [--json PATH] [--quick]

The teachers are DistilMOS predictors (``no_token`` inference path) on a WavLM and a HuBERT upstream of
``--size`` with random weights (speed does not depend on weight values). Each is pruned to 50 % of its
upstream's parameters by :mod:`distilmos.compress.structure`'s own planning and slicing (which groups are
kept does not change the cost, so the importance scores are random here): layers, FFN channels and front-end
channels for both, attention heads too for HuBERT (WavLM's attention cannot drop heads). The student is the
smallest of :mod:`distilmos.models.student`. All are predictor files scored through
:func:`distilmos.predictor.load` on the same utterances, round by round (every model once per round), and
speeds are taken from the process's CPU time (one torch thread), which other jobs on the machine disturb
least; wall-time ratios are printed beside them. The ``distillmos`` package's released student is timed
beside them when it is installed. ``--quick``: tiny upstreams, two 1 s utterances, one round (figures mean
nothing; the plumbing is checked).
"""

from __future__ import annotations

import argparse
import os

import benchlib  # beside this script

GROUP = "compress: CPU inference"


def teacher_blob(kind: str, size: str, seed: int, workdir: str) -> dict:
    """A DistilMOS predictor dict on a random ``kind`` (wavlm, hubert) upstream of ``size`` (base, tiny)."""
    import torch

    from distilmos.models.distilmos_model import DistilMOSModel
    from distilmos.predictor import upstream_entry as upstream_mod
    from distilmos.predictor.export import assemble
    from distilmos.predictor.pipeline import FeatureSelector
    from distilmos.upstream.tiny import write_checkpoint

    ckpt = write_checkpoint(os.path.join(workdir, f"{kind}_{size}.pt"), kind, size=size, seed=seed)
    model, configs = upstream_mod.build_for_export(f"{kind}_local", ckpt, None)
    dim = model.model.encoder.layers[0].fc1.in_features
    selector = FeatureSelector("hidden_states", None, False, 320, dim, n_layers=len(model.model.encoder.layers) + 1)
    torch.manual_seed(seed)
    state = {f"model.{k}": v for k, v in DistilMOSModel(dim).state_dict().items()}
    blob, _ = assemble(model, (f"{kind}_local", ckpt, None), configs, selector, "distilmos", state)
    blob["card"] = {"upstream": {"name": f"{kind} {size} (random)"}, "downstream": {"expert": "distilmos"}}
    return blob


def pruned_blob(blob: dict, fraction: float, seed: int) -> tuple:
    """``(blob, plan)``: ``blob`` with its upstream pruned to ``fraction`` by the recipe's own code."""
    import copy

    from distilmos.compress import prune, structure
    from distilmos.predictor.predictor import build_pipeline

    upstream = build_pipeline(blob).upstream
    shape = structure.Structure(upstream, blob["upstream"]["kind"])
    scores = structure.random_scores(shape, seed)
    plan = structure.plan_sizes(shape, scores, [fraction])[0]
    new = {k: copy.deepcopy(v) for k, v in blob.items() if k not in ("upstream", "featurizer")}
    new["upstream"] = structure.pruned_entry(blob["upstream"], shape, plan, scores)
    new["featurizer"] = prune.pruned_featurizer(blob["featurizer"], plan["layers"], len(shape.layers))
    return new, plan


def describe(plan: dict) -> str:
    heads = sorted(set(plan["heads"]))
    return (
        f"{len(plan['layers'])} layers, FFN {plan['ffn_dim']}, heads {'/'.join(map(str, heads))}, "
        f"convolutions {plan['conv_widths'][0]}-wide"
    )


def student_file(path: str, seed: int) -> str:
    import torch

    from distilmos.compress.train_student import export_student, load_config
    from distilmos.models import student

    torch.manual_seed(seed)
    smallest = min(student.PARAMETERS, key=student.PARAMETERS.get)
    export_student(
        student.build(smallest).eval(),
        path,
        size=smallest,
        config=load_config(None, {"size": smallest}),
        facts={},
        history=[],
    )
    return path


def measure(args, workdir: str) -> list:
    import torch

    from distilmos.data.audio import SAMPLE_RATE, load_audio
    from distilmos.predictor import load
    from distilmos.predictor.fileformat import write_predictor

    low, high = benchlib.parse_seconds(args.seconds)
    items = benchlib.make_wavs(os.path.join(workdir, "wavs"), args.n_utts, low, high, args.seed)
    wavs = [load_audio(path) for _, path in items]
    files, plans = {}, {}
    for kind in ("wavlm", "hubert"):
        blob = teacher_blob(kind, args.size, args.seed, workdir)
        pruned, plans[kind] = pruned_blob(blob, 0.5, args.seed)
        files[f"{kind} teacher"] = os.path.join(workdir, f"{kind}_teacher.pt")
        files[f"{kind} pruned 50 %"] = os.path.join(workdir, f"{kind}_pruned.pt")
        write_predictor(blob, files[f"{kind} teacher"])
        write_predictor(pruned, files[f"{kind} pruned 50 %"])
    files["smallest student"] = student_file(os.path.join(workdir, "student.pt"), args.seed)
    fns, params = {}, {}
    for name, path in files.items():
        predictor = load(path, device="cpu", batch_size=args.batch_size)
        fns[name] = lambda p=predictor: p.predict(wav=wavs, sr=SAMPLE_RATE)
        params[name] = (
            sum(p.numel() for p in predictor.pipeline.parameters()),
            sum(p.numel() for p in predictor.pipeline.upstream.parameters()),
        )
    try:
        import distillmos

        model = distillmos.ConvTransformerSQAModel().eval()

        def peer():
            with torch.no_grad():
                return [float(model(w[None])) for w in wavs]

        fns["distillmos package"] = peer
        params["distillmos package"] = (sum(p.numel() for p in model.parameters()), 0)
    except ImportError:
        pass
    with torch.inference_mode():
        times = benchlib.time_rounds(fns, args.warmup, args.repeats)
    rows, speed, wall = [], {}, {}
    for name in fns:
        speed[name] = len(wavs) / benchlib.median(times[name, "CPU"])
        wall[name] = len(wavs) / benchlib.median(times[name, "wall"])
        rows.append(
            benchlib.row(
                GROUP,
                f"{name}: utterances per CPU second (wall: {wall[name]:.2f}/s)",
                round(speed[name], 2),
                "utts/s",
                runs=args.repeats,
            )
        )
        rows.append(benchlib.row(GROUP, f"{name}: parameters (upstream {params[name][1]})", params[name][0], "params"))
    # the speed targets: (measure, faster model, slower model, least speed ratio)
    targets = [(f"smallest student / teacher ({args.size} WavLM) speed", "smallest student", "wavlm teacher", 20)]
    for kind in ("wavlm", "hubert"):
        wall_gain = wall[f"{kind} pruned 50 %"] / wall[f"{kind} teacher"]
        measure = f"{kind} pruned 50 % ({describe(plans[kind])}) / unpruned speed (wall: {wall_gain:.2f}×)"
        targets.append((measure, f"{kind} pruned 50 %", f"{kind} teacher", 1.6))
    if "distillmos package" in speed:
        targets.append(("smallest student / distillmos package speed", "smallest student", "distillmos package", 1))
    for measure, faster, slower, least in targets:
        ratio = speed[faster] / speed[slower]
        rows.append(benchlib.row(GROUP, measure, round(ratio, 2), "×", target=f"≥ {least:g}×", met=ratio >= least))
    if "distillmos package" not in speed:
        rows.append(benchlib.row(GROUP, "distillmos package", "not installed (pip install distillmos)", ""))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("base", "tiny"), default="base", help="teacher upstream size (default base)")
    parser.add_argument("--n_utts", type=int, default=8)
    parser.add_argument("--seconds", default="2-4", help="utterance lengths, S or MIN-MAX seconds (default 2-4)")
    parser.add_argument("--batch_size", type=int, default=8)
    benchlib.common_options(
        parser,
        "smoke test: tiny upstream, 2 utterances of 1 s, 1 run",
        rounds=(1, 5),
        threads=1,
        device="cpu only: the targets are CPU targets",
        workdir=False,
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.n_utts, args.seconds, args.warmup, args.repeats = "tiny", 2, "1", 0, 1
    benchlib.run(args, measure)


if __name__ == "__main__":
    main()
