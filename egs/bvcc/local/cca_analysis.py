#!/usr/bin/env python
"""The representation analysis of the paper's Fig. 3: how much of each pretrained layer a trained MOS
model still carries.

    python local/cca_analysis.py --expdirs exp/ssl_mos_wavlm_base_seed0 exp/no_token_wavlm_base_seed0 \\
        exp/mse_distill_wavlm_base_seed0 exp/distilmos_wavlm_base_k200_seed0 \\
        --csv data/bvcc/test.csv --out exp/cca_wavlm_base [--device cuda]

For every utterance of ``--csv`` (the paper: BVCC test) and every model, one vector: the Feature
Processor output averaged over the utterance's frames (for a model without one, such as ``ssl_mos``,
its fine-tuned upstream's last layer). For the *pretrained* upstream the experiments were fine-tuned from,
one vector per transformer layer, averaged likewise. Each model is then compared with each pretrained
layer by held-out PWCCA (:mod:`distilmos.eval.cca`). A randomly initialised DistilMOS model on the pretrained
upstream (``--no_random_init`` to leave it out) shows what the architecture alone gives.

Writes ``<out>.csv`` (``model,variant,expdir,layer,pwcca``) and ``<out>.png`` (one curve per model over
the layers). Utterances go through the networks one at a time, so no score depends on padding.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile

import numpy as np
import torch
from tqdm import tqdm

from distilmos import registry
from distilmos.data.audio import SAMPLE_RATE, load_audio
from distilmos.data.datalist import read_datalist
from distilmos.eval.cca import pwcca_score
from distilmos.predictor import export, load
from distilmos.predictor import upstream_entry as upstream_store
from distilmos.predictor.export import read_experiment
from distilmos.predictor.pipeline import FeatureSelector, PredictorPipeline

RANDOM_INIT = "random init"


class AnalysisError(ValueError):
    """Experiments that cannot be compared; the message says which and why."""


def upstream_spec(checkpoint: str) -> tuple:
    args = read_experiment(checkpoint)["Args"]
    return args.upstream, args.upstream_ckpt, args.upstream_model_config


def pretrained_pipeline(spec: tuple, seed: int) -> PredictorPipeline:
    """The pretrained upstream under a freshly initialised DistilMOS model (featurizer weights uniform,
    as s3prl initialises them); its upstream also gives the pretrained layers."""
    model, _ = upstream_store.build_for_export(*spec)
    model.eval()
    with torch.no_grad():
        probe = model([torch.zeros(SAMPLE_RATE)])["hidden_states"]
    selector = FeatureSelector(
        downsample_rate=model.get_downsample_rates("hidden_states"), n_layers=len(probe), output_dim=probe[-1].size(-1)
    )
    torch.manual_seed(seed)
    head = registry.model_class("distilmos")(upstream_dim=probe[-1].size(-1)).eval()
    return PredictorPipeline(model, selector, head).requires_grad_(False)


def pooled(out: dict[str, torch.Tensor]) -> np.ndarray:
    """One utterance's vector: the mean over its valid frames of the Feature Processor output, or of the
    upstream's last layer for a model whose outputs hold no ``processed`` frames."""
    n = int(out["lengths"][0])
    # read from the model's outputs, not its name: any expert without a Feature Processor is handled alike
    frames = out["processed"][0, :n] if "processed" in out else out["hidden_states"][-1][0, :n]
    return frames.mean(0).double().cpu().numpy()


def represent(
    trained: dict[str, PredictorPipeline],
    pretrained: PredictorPipeline,
    wav_paths: list[str],
    device: str,
    progress: bool = True,
):
    """Pooled vectors over the utterances: ``({name: [n, dim]} of the trained models, [n, dim] of the
    randomly initialised model, [layer 1..N: [n, dim]] of the pretrained upstream)``."""
    models: dict[str, list] = {name: [] for name in trained}
    random_init: list = []
    layers: list[list] = []
    with torch.no_grad():
        for path in tqdm(wav_paths, desc="representations", disable=not progress):
            wav = load_audio(path).to(device)
            out = pretrained.analyze([wav])
            n = int(out["lengths"][0])
            hidden = out["hidden_states"][1:]  # the transformer layers (0 is their input)
            layers = layers or [[] for _ in hidden]
            for store, h in zip(layers, hidden):
                store.append(h[0, :n].mean(0).double().cpu().numpy())
            random_init.append(pooled(out))
            for name, pipeline in trained.items():
                models[name].append(pooled(pipeline.analyze([wav])))
    return {k: np.stack(v) for k, v in models.items()}, np.stack(random_init), [np.stack(v) for v in layers]


def plot(rows: list[dict], out_png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        style = "--" if mine[0]["variant"] == "random_init" else "-"
        ax.plot([r["layer"] for r in mine], [r["pwcca"] for r in mine], style, marker="o", label=model)
    ax.set_xticks(sorted({r["layer"] for r in rows}))
    ax.set_xlabel("pretrained layer")
    ax.set_ylabel("PWCCA")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("CCA: model representation vs pretrained layers")
    fig.tight_layout()
    fig.savefig(out_png, dpi=150)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expdirs", nargs="+", required=True, help="experiment folders of one upstream")
    parser.add_argument("--csv", required=True, help="data list of the analysed utterances (the paper: BVCC test)")
    parser.add_argument("--out", required=True, help="output prefix: <out>.csv and <out>.png")
    parser.add_argument("--checkpoint", default="best-states-val.ckpt", help="checkpoint name in each folder")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no_random_init", action="store_true", help="leave out the randomly initialised model")
    parser.add_argument("--trials", type=int, default=3, help="random 80/10/10 splits per PWCCA score")
    parser.add_argument("--seed", type=int, default=0, help="seeds the random model and the CCA splits")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    checkpoints = [os.path.join(d, args.checkpoint) for d in args.expdirs]
    missing = [c for c in checkpoints if not os.path.isfile(c)]
    if missing:
        sys.exit("error: no checkpoint " + ", ".join(missing))
    specs = {c: upstream_spec(c) for c in checkpoints}
    if len(set(specs.values())) != 1:
        sys.exit(
            "error: the experiments were fine-tuned from different upstreams: "
            + "; ".join(f"{c}: {s[0]} {s[1] or ''}" for c, s in specs.items())
        )
    utterances = read_datalist(args.csv)
    if len(utterances) < 20:
        sys.exit(f"error: {args.csv}: {len(utterances)} utterances; held-out CCA needs at least 20")

    trained: dict[str, tuple] = {}  # label -> (pipeline, variant, expdir)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (checkpoint, expdir) in enumerate(zip(checkpoints, args.expdirs)):
            predictor_file = os.path.join(tmp, f"{i}.pt")
            variant = export(checkpoint, predictor_file)["downstream"]["variant"]
            name = registry.label(variant)
            if name in trained:
                name = f"{name} ({os.path.basename(os.path.normpath(expdir))})"
            trained[name] = (load(predictor_file, device=args.device).pipeline.eval(), variant, expdir)
    pretrained = pretrained_pipeline(specs[checkpoints[0]], args.seed).to(args.device)
    reps, random_init, layers = represent(
        {k: v[0] for k, v in trained.items()},
        pretrained,
        [u.wav_path for u in utterances],
        args.device,
        progress=not args.quiet,
    )
    models = [(name, variant, expdir, reps[name]) for name, (_, variant, expdir) in trained.items()]
    if not args.no_random_init:
        models.append((RANDOM_INIT, "random_init", "", random_init))

    rows = []
    for name, variant, expdir, rep in models:
        for layer, pre in enumerate(layers, start=1):
            rows.append(
                {
                    "model": name,
                    "variant": variant,
                    "expdir": expdir,
                    "layer": layer,
                    "pwcca": pwcca_score(rep, pre, trials=args.trials, seed=args.seed),
                }
            )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".csv", "w", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["model", "variant", "expdir", "layer", "pwcca"], lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(dict(r, pwcca=f"{r['pwcca']:.4f}") for r in rows)
    plot(rows, args.out + ".png")
    width = max(len(m[0]) for m in models)
    print(f"{'model':<{width}}  " + " ".join(f"L{n:<5d}" for n in range(1, len(layers) + 1)))
    for name, *_ in models:
        print(f"{name:<{width}}  " + " ".join(f"{r['pwcca']:.3f} " for r in rows if r["model"] == name))
    print(f"wrote {args.out}.csv and {args.out}.png ({len(utterances)} utterances)")


if __name__ == "__main__":
    main()
