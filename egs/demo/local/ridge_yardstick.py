#!/usr/bin/env python
"""A yardstick for heads on frozen features: ridge regression on each utterance's mean and standard
deviation over time of one layer (or of every layer) of a frozen upstream.

    python local/ridge_yardstick.py --upstream wavlm_local --upstream_ckpt tiny_wavlm.pt --layer last \\
        --datadir data/bvcc --out exp/ridge_wavlm_local [--eval_splits "val test"] [--device cpu]

The features are those a head trained with ``run_downstream.py -s last_hidden_state`` (``--layer last``) or
``-l N`` (``--layer N``, ``hidden_states[N]``, 0 being the input of the first transformer layer) sees, or,
with ``--layer all``, those of every hidden state side by side (what a head on s3prl's weighted sum of all
layers can draw on), computed one utterance at a time, so no feature depends on padding. The regression (scikit-learn's
``RidgeCV``: standardised features, the ridge chosen by leave-one-out over ``--alphas``) is fitted on
``<datadir>/train.csv`` and scored on each evaluation split with the toolkit's metrics. ``--out`` gets, as
an experiment folder does, ``metrics_<split>.json``, ``predictions_<split>.csv`` and ``info.json``
(variant ``ridge``), so ``egs/bvcc/local/make_table.py`` can list it beside trained experts.
"""

import argparse
import csv
import json
import os
import sys
from collections.abc import Sequence

import numpy as np
import torch

from distilmos.data.audio import load_audio
from distilmos.data.datalist import read_datalist
from distilmos.errors import ToolkitError, reports_errors
from distilmos.eval.metrics import METRIC_KEYS, compute_metrics
from distilmos.fileio import atomic_write
from distilmos.upstream.build import build_upstream


class YardstickError(ToolkitError, ValueError):
    """A bad option or data list of the yardstick."""


ALL = "all"


def parse_layer(spec: str):
    """``"last"`` -> None (the upstream's last hidden state); ``"all"`` -> ``"all"``; ``"N"`` -> N."""
    if spec in ("last", ALL):
        return None if spec == "last" else ALL
    try:
        return int(spec)
    except ValueError:
        raise YardstickError(f"--layer must be a hidden-state index, 'last' or 'all', not {spec!r}") from None


def utterance_features(upstream: torch.nn.Module, wav_paths: Sequence[str], layer, device: str) -> np.ndarray:
    """``[utterances, 2 * dim]`` (``[utterances, 2 * dim * layers]`` for ``"all"``): per utterance, the mean
    and the standard deviation over frames of the layer(s)."""
    rows: list[np.ndarray] = []
    with torch.inference_mode():
        for path in wav_paths:
            hidden = upstream([load_audio(path).to(device)])["hidden_states"]
            if isinstance(layer, int) and not -len(hidden) <= layer < len(hidden):
                raise YardstickError(f"--layer {layer}: the upstream has hidden states 0..{len(hidden) - 1}")
            chosen = hidden if layer == ALL else [hidden[-1 if layer is None else layer]]
            stats = [torch.cat([h[0].double().mean(0), h[0].double().std(0, unbiased=False)]) for h in chosen]
            rows.append(torch.cat(stats).cpu().numpy())
    return np.stack(rows)


def write_split(out: str, split: str, utts, preds: np.ndarray) -> dict:
    """``metrics_<split>.json`` and ``predictions_<split>.csv`` in the experts' formats; the metrics."""
    metrics = compute_metrics([u.score for u in utts], preds, [u.system_id for u in utts])
    with atomic_write(os.path.join(out, f"metrics_{split}.json")) as handle:
        json.dump(
            {k: (v if not isinstance(v, float) or np.isfinite(v) else None) for k, v in metrics.items()},
            handle,
            indent=2,
        )
    with atomic_write(os.path.join(out, f"predictions_{split}.csv"), newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["sample_id", "system_id", "score", "pred"])
        rows = sorted(zip((u.sample_id for u in utts), (u.system_id for u in utts), (u.score for u in utts), preds))
        writer.writerows([sid, sys_id, repr(float(score)), f"{pred:.6f}"] for sid, sys_id, score, pred in rows)
    return metrics


def run(
    upstream: str,
    upstream_ckpt: str | None,
    layer: str,
    datadir: str,
    out: str,
    eval_splits: Sequence[str] = ("val", "test"),
    alphas: Sequence[float] = tuple(np.logspace(-3, 4, 15)),
    device: str = "cpu",
) -> dict:
    """Fit on ``<datadir>/train.csv``, score ``eval_splits``; ``{split: metrics}``."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    index = parse_layer(layer)
    splits = {s: os.path.join(datadir, f"{s}.csv") for s in ("train", *eval_splits)}
    missing = [path for path in splits.values() if not os.path.isfile(path)]
    if missing:
        raise YardstickError(f"missing data list(s): {', '.join(missing)}")
    lists = {s: read_datalist(path, require_score=True) for s, path in splits.items()}
    model = build_upstream(upstream, upstream_ckpt).to(device).eval()
    feats = {s: utterance_features(model, [u.wav_path for u in utts], index, device) for s, utts in lists.items()}
    regression = make_pipeline(StandardScaler(), RidgeCV(alphas=list(alphas)))
    regression.fit(feats["train"], [u.score for u in lists["train"]])
    os.makedirs(out, exist_ok=True)
    results = {s: write_split(out, s, lists[s], regression.predict(feats[s])) for s in eval_splits}
    with atomic_write(os.path.join(out, "info.json")) as handle:
        json.dump(
            {
                "upstream": upstream,
                "upstream_ckpt": upstream_ckpt or "",
                "variant": "ridge",
                "layer": layer,
                "alpha": float(regression[-1].alpha_),
                "n_train": len(lists["train"]),
                "features": int(feats["train"].shape[1]),
            },
            handle,
            indent=2,
        )
    return results


@reports_errors
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--upstream", required=True, help="s3prl hub name, NAME_local (with --upstream_ckpt) or package.module:callable"
    )
    parser.add_argument("--upstream_ckpt", default=None, help="checkpoint of a *_local upstream")
    parser.add_argument("--layer", default="last", help="hidden-state index, 'last' (default) or 'all'")
    parser.add_argument("--datadir", required=True, help="folder of train.csv and the evaluation splits' lists")
    parser.add_argument("--out", required=True, help="folder for metrics_<split>.json, predictions_<split>.csv")
    parser.add_argument("--eval_splits", default="val test", help="splits to score (default: 'val test')")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    results = run(
        args.upstream,
        args.upstream_ckpt,
        args.layer,
        args.datadir,
        args.out,
        args.eval_splits.split(),
        device=args.device,
    )
    for split, metrics in results.items():
        print(
            f"[ridge] {split}: "
            + " ".join(f"{k}={metrics[k]:.3f}" for k in METRIC_KEYS)
            + f" -> {args.out}/metrics_{split}.json"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
