#!/usr/bin/env python
"""Compact predictors against their teacher: CPU inference speed of the smallest student, of a 50 %
pruned upstream and of the unpruned one, as ratios measured in one run.

    python egs/bench/compress_bench.py [--size base] [--n_utts 8] [--seconds 2-4] [--warmup 1] [--repeats 3]
        [--threads 1] [--json PATH] [--quick]

The teacher is a DistilMOS predictor (``no_token`` inference path) on a WavLM Base-size upstream with random
weights (speed does not depend on weight values); the pruned one is built by :mod:`distilmos.compress.prune`'s
own planning and slicing at a 50 % parameter target (which channels are kept does not change the cost, so
the importance scores are random here); the student is the smallest of :mod:`distilmos.models.student`.
All are predictor files scored through :func:`distilmos.predictor.load` on the same utterances; the
``distillmos`` package's released student is timed beside them when it is installed. ``--quick``: tiny
upstream, two 1 s utterances, one timed run (figures mean nothing; the plumbing is checked).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

import benchlib

GROUP = "compress: CPU inference"


def teacher_blob(size: str, seed: int, workdir: str) -> dict:
    """A DistilMOS predictor dict on a random WavLM of ``size`` (base or tiny)."""
    import torch

    from distilmos.models.distilmos import DistilMOSModel
    from distilmos.predictor import upstream as upstream_mod
    from distilmos.predictor.export import assemble
    from distilmos.predictor.pipeline import FeatureSelector
    from distilmos.tiny_upstream import write_checkpoint

    ckpt = write_checkpoint(os.path.join(workdir, f"wavlm_{size}.pt"), "wavlm", size=size, seed=seed)
    model, configs = upstream_mod.build_for_export("wavlm_local", ckpt, None)
    dim = model.model.cfg.encoder_embed_dim
    selector = FeatureSelector("hidden_states", None, False, 320, dim, n_layers=len(model.model.encoder.layers) + 1)
    torch.manual_seed(seed)
    state = {f"model.{k}": v for k, v in DistilMOSModel(dim).state_dict().items()}
    blob, _ = assemble(model, ("wavlm_local", ckpt, None), configs, selector, "distilmos", state)
    blob["card"] = {"upstream": {"name": f"wavlm {size} (random)"}, "downstream": {"expert": "distilmos"}}
    return blob


def pruned_blob(blob: dict, fraction: float, seed: int) -> tuple:
    """``(blob, plan)``: ``blob`` with its upstream pruned to ``fraction`` by the recipe's own code."""
    import copy

    import torch

    from distilmos.compress import prune
    from distilmos.predictor.predictor import build_pipeline

    upstream = build_pipeline(blob).upstream
    layers = prune._layers(upstream)
    generator = torch.Generator().manual_seed(seed)
    layer_scores = torch.rand(len(layers), generator=generator, dtype=torch.float64)
    channel_scores = torch.rand(len(layers), layers[0].fc1.out_features, generator=generator, dtype=torch.float64)
    plan = prune.plan_sizes(upstream, layer_scores, [fraction], keep_first=True)[0]
    new = {k: copy.deepcopy(v) for k, v in blob.items() if k not in ("upstream", "featurizer")}
    new["upstream"] = prune.pruned_entry(blob["upstream"], upstream, plan, channel_scores)
    new["featurizer"] = prune.pruned_featurizer(blob["featurizer"], plan["layers"], len(layers))
    return new, plan


def student_file(path: str, seed: int) -> str:
    import torch

    from distilmos.compress.train_student import export_student, load_config
    from distilmos.models import student

    torch.manual_seed(seed)
    smallest = min(student.PARAMETERS, key=student.PARAMETERS.get)
    export_student(student.build(smallest).eval(), path, size=smallest, config=load_config(None, {"size": smallest}),
                   facts={}, history=[])
    return path


def measure(args, workdir: str) -> list:
    import torch

    from distilmos.audio import load_audio
    from distilmos.predictor import load
    from distilmos.predictor.fileformat import write_predictor

    low, high = benchlib.parse_seconds(args.seconds)
    items = benchlib.make_wavs(os.path.join(workdir, "wavs"), args.n_utts, low, high, args.seed)
    wavs = [load_audio(path) for _, path in items]
    blob = teacher_blob(args.size, args.seed, workdir)
    pruned, plan = pruned_blob(blob, 0.5, args.seed)
    files = {"teacher": os.path.join(workdir, "teacher.pt"), "pruned 50 %": os.path.join(workdir, "pruned.pt")}
    write_predictor(blob, files["teacher"])
    write_predictor(pruned, files["pruned 50 %"])
    files["smallest student"] = student_file(os.path.join(workdir, "student.pt"), args.seed)
    systems = {}
    for name, path in files.items():
        predictor = load(path, device="cpu", batch_size=args.batch_size)
        systems[name] = ((lambda p=predictor: p.predict(wav=wavs, sr=16000)),
                         sum(p.numel() for p in predictor.pipeline.parameters()),
                         sum(p.numel() for p in predictor.pipeline.upstream.parameters()))
    try:
        import distillmos

        model = distillmos.ConvTransformerSQAModel().eval()

        def peer():
            with torch.no_grad():
                return [float(model(w[None])) for w in wavs]

        systems["distillmos package"] = (peer, sum(p.numel() for p in model.parameters()), 0)
    except ImportError:
        pass
    rows, speed = [], {}
    with torch.inference_mode():
        for name, (fn, params, up_params) in systems.items():
            times = benchlib.time_runs(fn, args.warmup, args.repeats)
            speed[name] = len(wavs) / benchlib.median(times)
            rows.append(benchlib.row(GROUP, f"{name}: utterances/s", round(speed[name], 2), "utts/s", runs=args.repeats))
            rows.append(benchlib.row(GROUP, f"{name}: parameters (upstream {up_params})", params, "params"))
    student_vs_teacher = speed["smallest student"] / speed["teacher"]
    rows.append(benchlib.row(GROUP, f"smallest student / teacher ({args.size} WavLM) speed", round(student_vs_teacher, 2),
                             "×", target="≥ 20×", met=student_vs_teacher >= 20))
    pruned_gain = speed["pruned 50 %"] / speed["teacher"]
    rows.append(benchlib.row(GROUP, f"pruned 50 % ({len(plan['layers'])} layers, FFN {plan['ffn_dim']}) / unpruned speed",
                             round(pruned_gain, 2), "×", target="≥ 1.6×", met=pruned_gain >= 1.6))
    if "distillmos package" in speed:
        peer_ratio = speed["smallest student"] / speed["distillmos package"]
        rows.append(benchlib.row(GROUP, "smallest student / distillmos package speed", round(peer_ratio, 2), "×",
                                 target="≥ 1×", met=peer_ratio >= 1))
    else:
        rows.append(benchlib.row(GROUP, "distillmos package", "not installed (pip install distillmos)", ""))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("base", "tiny"), default="base", help="teacher upstream size (default base)")
    parser.add_argument("--n_utts", type=int, default=8)
    parser.add_argument("--seconds", default="2-4", help="utterance lengths, S or MIN-MAX seconds (default 2-4)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu only: the targets are CPU targets")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the result rows here (JSON list)")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny upstream, 2 utterances of 1 s, 1 run")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.n_utts, args.seconds, args.warmup, args.repeats = "tiny", 2, "1", 0, 1
    threads = benchlib.set_threads(args.threads)
    info = benchlib.machine("cpu", threads)
    with tempfile.TemporaryDirectory(prefix="compress_bench_") as workdir:
        rows = measure(args, workdir)
    benchlib.report(info, rows, args.json)


if __name__ == "__main__":
    main()
