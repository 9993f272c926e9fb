"""Data-driven structured pruning of a predictor file's fine-tuned upstream (WavLM, HuBERT, wav2vec 2.0).

    python -m distilmos.compress.prune --teacher teacher.pt --train data/bvcc/train.csv --val data/bvcc/val.csv \\
        --fractions 0.75,0.5,0.25,0.1 --out_dir exp/pruned [--config egs/compress/conf/prune.yaml]

What is pruned (:mod:`distilmos.compress.structure` has the groups, the importance criterion and the size
plan): transformer layers, feed-forward channels, attention heads (HuBERT, wav2vec 2.0) and front-end
convolution channels, each ranked by a first-order Taylor importance of the MOS loss on labelled data. The
result is s3prl's own ``<kind>_local`` checkpoint with a smaller ``encoder_layers``,
``encoder_ffn_embed_dim`` and ``conv_feature_layers`` (and, for removed heads, each layer's head count
beside it; :mod:`distilmos.predictor.heads`), so the pruned upstream really is smaller (fewer weights in
the saved architecture, no masks), is rebuilt with s3prl's own classes and made padding-exact by
:mod:`distilmos.upstream.padding_exact` like any other, and loads with ``torch.load(weights_only=True)``.

Each pruned model is then fine-tuned briefly (upstream, featurizer and expert model together, MSE on the
labelled list), keeping the weights with the best validation utterance SRCC.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import sys
from collections.abc import Sequence

import torch
from tqdm import tqdm

from distilmos.compress.config import load_settings
from distilmos.compress.structure import (
    GROUPS,
    Structure,
    accumulate,
    check_groups,
    new_scores,
    plan_sizes,
    pruned_entry,
)
from distilmos.data.audio import SAMPLE_RATE
from distilmos.errors import ConfigError, ToolkitError
from distilmos.eval.metrics import compute_metrics
from distilmos.fileio import sha256_file

DEFAULTS = {
    "batch_size": 4,
    "crop_seconds": 3.0,
    "importance_batches": 8,
    "finetune_steps": 50,
    "lr": 5.0e-5,
    "eval_every": 25,
    "seed": 0,
    "groups": list(GROUPS),
}


class PruneError(ToolkitError, ValueError):
    """A predictor file whose upstream cannot be pruned; the message says why."""


def load_config(path: str | None, overrides: dict | None = None) -> dict:
    """The pruning config (YAML) over :data:`DEFAULTS`."""
    config = load_settings(path, DEFAULTS, overrides, "pruning")
    config["groups"] = check_groups(config["groups"], path or "config")
    return config


def batches(rows: list, audio: list, config: dict, generator: torch.Generator, count: int):
    """``count`` random batches ``(wavs, scores)`` of cropped clips."""
    crop = int(float(config["crop_seconds"]) * SAMPLE_RATE)
    for _ in range(count):
        picks = torch.randint(len(rows), (int(config["batch_size"]),), generator=generator).tolist()
        wavs = []
        for i in picks:
            wav = audio[i]
            if len(wav) > crop:
                start = int(torch.randint(len(wav) - crop + 1, (1,), generator=generator))
                wav = wav[start : start + crop]
            wavs.append(wav)
        yield wavs, torch.tensor([rows[i]["score"] for i in picks], dtype=torch.float32)


@contextlib.contextmanager
def front_end_gradients(upstream):
    """Let gradients reach the convolutional front end. s3prl's experts run it under ``no_grad``
    (``feature_grad_mult = 0``), which would leave every convolution channel's importance at zero (so
    its pruning blind) and the pruned front end unable to adapt in the fine-tuning."""
    model = upstream.model
    previous = model.feature_grad_mult
    model.feature_grad_mult = 1.0
    try:
        yield
    finally:
        model.feature_grad_mult = previous


def importance(pipeline, structure: Structure, rows: list, audio: list, config: dict, progress: bool = True) -> dict:
    """The Taylor importance of every prunable group of ``structure`` (:func:`structure.accumulate`)."""
    with front_end_gradients(pipeline.upstream):
        return _importance(pipeline, structure, rows, audio, config, progress)


def _importance(pipeline, structure: Structure, rows: list, audio: list, config: dict, progress: bool) -> dict:
    scores = new_scores(structure)
    pipeline.eval()  # no dropout: the gradient of the model that will be pruned
    pipeline.requires_grad_(True)
    generator = torch.Generator().manual_seed(int(config["seed"]))
    count = int(config["importance_batches"])
    for wavs, targets in tqdm(
        batches(rows, audio, config, generator, count),
        total=count,
        desc="importance",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    ):
        pipeline.zero_grad()
        torch.nn.functional.mse_loss(pipeline(wavs), targets).backward()
        accumulate(structure, scores)
    pipeline.zero_grad()
    pipeline.requires_grad_(False)
    return scores


def pruned_featurizer(featurizer: dict, kept: Sequence[int], n_layers: int) -> dict:
    """The featurizer entry for the kept layers: the weights of the input and of each kept layer's output."""
    featurizer = copy.deepcopy(featurizer)
    weights = featurizer["state_dict"].get("weights")
    if weights is not None and len(weights) == n_layers + 1:
        index = torch.tensor([0] + [i + 1 for i in kept])
        featurizer["state_dict"]["weights"] = weights[index].clone()
        featurizer["config"]["n_layers"] = len(index)
    elif isinstance(featurizer["config"].get("layer_selection"), int):
        selected = featurizer["config"]["layer_selection"]
        featurizer["config"]["layer_selection"] = len([i for i in kept if i + 1 <= selected])
    return featurizer


def _evaluate(pipeline, rows, audio, batch_size: int = 8) -> dict:
    pipeline.eval()
    preds = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            preds += pipeline(audio[start : start + batch_size]).tolist()
    return compute_metrics([r["score"] for r in rows], preds, [r["system_id"] for r in rows])


def fine_tune(pipeline, train: tuple, val: tuple | None, config: dict, progress: bool = True) -> tuple:
    """Fine-tune the whole pipeline briefly (MSE), front end included; keep the best validation weights.
    -> (pipeline, history)."""
    with front_end_gradients(pipeline.upstream):
        return _fine_tune(pipeline, train, val, config, progress)


def _fine_tune(pipeline, train: tuple, val: tuple | None, config: dict, progress: bool) -> tuple:
    pipeline.requires_grad_(True)
    optimizer = torch.optim.AdamW([p for p in pipeline.parameters() if p.requires_grad], lr=float(config["lr"]))
    generator = torch.Generator().manual_seed(int(config["seed"]) + 1)
    steps = int(config["finetune_steps"])
    history, best, best_state = [], -math.inf, copy.deepcopy(pipeline.state_dict())
    if val is not None:
        first = _evaluate(pipeline, *val)
        history.append({"step": 0, **first})
        best = first["utt_SRCC"] if math.isfinite(first["utt_SRCC"]) else -math.inf
    bar = tqdm(
        batches(*train, config, generator, steps),
        total=steps,
        desc="fine-tune",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    for step, (wavs, scores) in enumerate(bar, start=1):
        pipeline.train()
        loss = torch.nn.functional.mse_loss(pipeline(wavs), scores)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(pipeline.parameters(), 10.0)
        optimizer.step()
        if val is not None and (step % int(config["eval_every"]) == 0 or step == steps):
            metrics = _evaluate(pipeline, *val)
            history.append({"step": step, "loss": loss.item(), **metrics})
            if math.isfinite(metrics["utt_SRCC"]) and metrics["utt_SRCC"] > best:
                best, best_state = metrics["utt_SRCC"], copy.deepcopy(pipeline.state_dict())
    if val is not None:
        pipeline.load_state_dict(best_state)
    pipeline.requires_grad_(False)
    return pipeline.eval(), history


def _store(path: str | None) -> tuple | None:
    from distilmos.compress.train_student import ClipStore, read_list

    if not path:
        return None
    store = ClipStore(read_list(path), os.path.basename(path))
    return store.rows, store.audio


def prune(
    teacher: str,
    train: str,
    out_dir: str,
    fractions: Sequence[float],
    *,
    val: str | None = None,
    config: dict | None = None,
    progress: bool = True,
) -> list:
    """Prune the upstream of the predictor file ``teacher`` to each fraction, fine-tune, and write
    ``<out_dir>/pruned_<pct>.pt``; return one summary dict per file."""
    from distilmos.predictor import upstream_entry as upstream_mod
    from distilmos.predictor.fileformat import read_predictor, write_predictor
    from distilmos.predictor.predictor import build_pipeline

    config = load_config(None, config)
    torch.manual_seed(int(config["seed"]))
    blob = read_predictor(teacher)
    entry = blob["upstream"]
    if entry.get("kind") not in upstream_mod.EMBEDDED:
        raise PruneError(
            f"{teacher}: its upstream ({entry.get('kind')}) is not an embedded WavLM, HuBERT or wav2vec 2.0; "
            "only those can be pruned"
        )
    train_data, val_data = _store(train), _store(val)
    if not train_data or not train_data[0]:
        raise PruneError(f"{train}: no usable labelled clips to measure importance on")
    pipeline = build_pipeline(blob, source=teacher)
    structure = Structure(pipeline.upstream, entry["kind"])
    scores = importance(pipeline, structure, *train_data, config, progress)
    total, n_layers = structure.total, len(structure.layers)
    plans = plan_sizes(structure, scores, fractions, config["groups"])
    os.makedirs(out_dir, exist_ok=True)
    summaries = []
    for plan in plans:
        new_blob = {k: copy.deepcopy(v) for k, v in blob.items() if k not in ("upstream", "featurizer")}
        new_blob["upstream"] = pruned_entry(entry, structure, plan, scores)
        new_blob["featurizer"] = pruned_featurizer(blob["featurizer"], plan["layers"], n_layers)
        pruned = build_pipeline(new_blob, source=teacher)
        params = sum(p.numel() for p in pruned.upstream.parameters())
        pruned, history = fine_tune(pruned, train_data, val_data, config, progress)
        new_blob["upstream"] = upstream_mod.make_entry(
            pruned.upstream,
            entry["spec"]["name"],
            entry["spec"].get("ckpt"),
            entry["spec"].get("model_config"),
            {k: v for k, v in new_blob["upstream"]["checkpoint"].items() if k not in ("model", "model_weight")},
        )
        new_blob["featurizer"]["state_dict"] = {
            k: v.detach().clone() for k, v in pruned.featurizer.state_dict().items()
        }
        new_blob["downstream"]["state_dict"] = {
            k: v.detach().clone() for k, v in pruned.downstream.state_dict().items()
        }
        summary = {
            "fraction": plan["fraction"],
            "target_parameters": plan["target"],
            "parameters": params,
            "reached_fraction": params / total,
            "groups": config["groups"],
            "kept_layers": plan["layers"],
            "ffn_dim": plan["ffn_dim"],
            "heads": plan["heads"],
            "conv_widths": plan["conv_widths"],
            "layers_before": n_layers,
            "ffn_dim_before": structure.ffn_dim,
            "heads_before": structure.heads,
            "conv_widths_before": structure.conv_widths,
            "parameters_before": total,
            "criterion": "first-order Taylor (gradient x weight)^2 per group, MSE on labels",
            "finetune_steps": int(config["finetune_steps"]),
            "teacher": os.path.abspath(teacher),
            "teacher_sha256": sha256_file(teacher),
            "validation": history[-1] if history else None,
        }
        card = copy.deepcopy(blob["card"])
        card["upstream"] = dict(card.get("upstream") or {}, parameters=params)
        card["pruning"] = summary
        card["validation"] = summary["validation"]
        new_blob["card"] = card
        out = os.path.join(out_dir, f"pruned_{round(plan['fraction'] * 100):02d}.pt")
        write_predictor(new_blob, out)
        read_predictor(out)  # loads with weights_only=True
        summaries.append(dict(summary, path=out))
        print(
            f"{out}: {params} upstream parameters ({params / total:.0%} of {total}), layers {plan['layers']}, "
            f"FFN {plan['ffn_dim']}, heads {plan['heads']}, convolution widths {plan['conv_widths']}",
            file=sys.stderr,
        )
    return summaries


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m distilmos.compress.prune",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--teacher", required=True, help="predictor file with an embedded WavLM/HuBERT/wav2vec 2.0")
    parser.add_argument("--train", required=True, help="labelled data list: importance and fine-tuning")
    parser.add_argument("--val", help="labelled validation list (best fine-tuned weights by utterance SRCC)")
    parser.add_argument("--fractions", default="0.75,0.5,0.25,0.1", help="target fractions of upstream parameters")
    parser.add_argument("--config", help="pruning YAML (egs/compress/conf/prune.yaml)")
    parser.add_argument("--finetune_steps", type=int)
    parser.add_argument("--importance_batches", type=int)
    parser.add_argument("--eval_every", type=int)
    parser.add_argument("--crop_seconds", type=float)
    parser.add_argument("--groups", help=f"comma-separated groups to prune (default: all of {','.join(GROUPS)})")
    parser.add_argument("--out_dir", required=True)
    args = parser.parse_args(argv)
    try:
        fractions = [float(f) for f in args.fractions.split(",")]
        if not all(0 < f <= 1 for f in fractions):
            raise ConfigError(f"--fractions {args.fractions!r}: each in (0, 1]")
        config = load_config(
            args.config,
            {
                "finetune_steps": args.finetune_steps,
                "eval_every": args.eval_every,
                "importance_batches": args.importance_batches,
                "crop_seconds": args.crop_seconds,
                "groups": args.groups,
            },
        )
        prune(args.teacher, args.train, args.out_dir, fractions, val=args.val, config=config)
    except ToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
