"""Data-driven structured pruning of a predictor file's fine-tuned upstream (WavLM, HuBERT, wav2vec 2.0).

    python -m distilmos.compress.prune --teacher teacher.pt --train data/bvcc/train.csv --val data/bvcc/val.csv \\
        --fractions 0.75,0.5,0.25,0.1 --out_dir exp/pruned [--config egs/compress/conf/prune.yaml]

What is pruned: whole transformer layers and feed-forward channels. The result is written in s3prl's own
``<kind>_local`` checkpoint format with a smaller ``encoder_layers`` and ``encoder_ffn_embed_dim``, so the
pruned upstream really is smaller (fewer layers, narrower FFNs in the saved architecture, no masks), is
rebuilt by s3prl's own loader and made padding-exact by :mod:`distilmos.padding_exact` like any other,
and loads with ``torch.load(weights_only=True)``. Attention heads are not pruned: s3prl's attention derives
the head width from ``embed_dim / heads``, so its format cannot hold fewer heads of the same width (that
would need an attention module of our own in the file).

Importance criterion: first-order Taylor expansion of the MOS loss (Molchanov et al., 2019), measured on
labelled data: for a group of weights (one FFN channel: its row of ``fc1``, its bias and its column of
``fc2``; one layer: all its weights), ``(sum over the group of gradient x weight)^2``, summed over
batches. Why: it estimates how much the *task* loss changes when the group is removed, at the cost of one
backward pass per batch, where magnitude criteria ignore what the fine-tuned model uses for MOS. The
same number of channels is kept in every kept layer (the format has one FFN width), each layer keeping
its own most important ones. WavLM's first layer holds the relative position bias every layer uses, so
it is always kept.

Sizes: for a target fraction of the upstream's parameters, the (layers, FFN width) pair with the most
parameters not above the target is chosen (ties: more layers); a target below the smallest reachable
size (one layer, one channel: the front end and attention stay) gets that smallest size, and the file
says what was reached. Each pruned model is then fine-tuned briefly (upstream, featurizer and expert
model together, MSE on the labelled list), keeping the weights with the best validation utterance SRCC.
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import sys
from collections.abc import Sequence

import torch
from tqdm import tqdm

from distilmos.audio import SAMPLE_RATE
from distilmos.compress.config import load_settings
from distilmos.errors import ConfigError, ToolkitError
from distilmos.fileio import sha256_file
from distilmos.metrics import compute_metrics

DEFAULTS = {"batch_size": 4, "crop_seconds": 3.0, "importance_batches": 8, "finetune_steps": 50, "lr": 5.0e-5,
            "eval_every": 25, "seed": 0}


class PruneError(ToolkitError, ValueError):
    """A predictor file whose upstream cannot be pruned; the message says why."""


def load_config(path: str | None, overrides: dict | None = None) -> dict:
    """The pruning config (YAML) over :data:`DEFAULTS`."""
    return load_settings(path, DEFAULTS, overrides, "pruning")


def _layers(upstream) -> torch.nn.ModuleList:
    return upstream.model.encoder.layers


def _model_cfg(entry: dict) -> dict:
    """The architecture dict of an embedded upstream entry (WavLM: ``cfg``; others: ``model_cfg``)."""
    return entry["checkpoint"]["cfg" if entry["kind"] == "wavlm" else "model_cfg"]


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
                wav = wav[start:start + crop]
            wavs.append(wav)
        yield wavs, torch.tensor([rows[i]["score"] for i in picks], dtype=torch.float32)


def importance(pipeline, rows: list, audio: list, config: dict, progress: bool = True) -> tuple:
    """``(layer scores [L], FFN channel scores [L, F])``: group Taylor scores (module docstring)."""
    layers = _layers(pipeline.upstream)
    layer_scores = torch.zeros(len(layers), dtype=torch.float64)
    channel_scores = torch.zeros(len(layers), layers[0].fc1.out_features, dtype=torch.float64)
    pipeline.eval()  # no dropout: the gradient of the model that will be pruned
    pipeline.requires_grad_(True)
    generator = torch.Generator().manual_seed(int(config["seed"]))
    count = int(config["importance_batches"])
    for wavs, scores in tqdm(batches(rows, audio, config, generator, count), total=count, desc="importance",
                             file=sys.stderr, disable=not progress, dynamic_ncols=True):
        pipeline.zero_grad()
        loss = torch.nn.functional.mse_loss(pipeline(wavs), scores)
        loss.backward()
        with torch.no_grad():
            for i, layer in enumerate(layers):
                total = sum((p.grad * p).sum() for p in layer.parameters() if p.grad is not None)
                layer_scores[i] += float(total) ** 2
                per_channel = ((layer.fc1.weight.grad * layer.fc1.weight).sum(1) + layer.fc1.bias.grad * layer.fc1.bias
                               + (layer.fc2.weight.grad * layer.fc2.weight).sum(0))
                channel_scores[i] += per_channel.double() ** 2
    pipeline.zero_grad()
    pipeline.requires_grad_(False)
    return layer_scores, channel_scores


def plan_sizes(upstream, layer_scores: torch.Tensor, fractions: Sequence[float], keep_first: bool) -> list:
    """For each target fraction: ``{"fraction", "target", "layers" (kept indices), "ffn_dim", "parameters"}``."""
    layers = _layers(upstream)
    total = sum(p.numel() for p in upstream.parameters())
    per_layer = [sum(p.numel() for p in layer.parameters()) for layer in layers]
    ffn = layers[0].fc1.out_features
    per_channel = 2 * layers[0].fc1.in_features + 1  # fc1 row + its bias + fc2 column
    order = sorted(range(len(layers)), key=lambda i: (-float(layer_scores[i]), i))
    if keep_first:
        order = [0] + [i for i in order if i != 0]
    outside = total - sum(per_layer)
    plans = []
    for fraction in fractions:
        target = fraction * total
        candidates = []
        for n_layers in range(len(layers), 0, -1):  # more layers first: ties keep depth
            kept = sorted(order[:n_layers])
            full = outside + sum(per_layer[i] for i in kept)
            # the widest FFN that fits: full - n_layers * (ffn - width) * per_channel <= target
            width = max(ffn - math.ceil(max(full - target, 0) / (n_layers * per_channel)), 1)
            candidates.append({"fraction": fraction, "target": int(target), "layers": kept, "ffn_dim": width,
                               "parameters": int(full - n_layers * (ffn - width) * per_channel)})
        fitting = [c for c in candidates if c["parameters"] <= target]
        best = (max(fitting, key=lambda c: c["parameters"]) if fitting
                else min(candidates, key=lambda c: c["parameters"]))
        plans.append(best)
    return plans


def pruned_entry(entry: dict, upstream, plan: dict, channel_scores: torch.Tensor) -> dict:
    """The upstream entry (s3prl ``<kind>_local`` checkpoint) holding only the kept layers and channels."""
    state = {k[len("model."):]: v for k, v in upstream.state_dict().items() if k.startswith("model.")}
    new_state = {}
    renumber = {old: new for new, old in enumerate(plan["layers"])}
    for key, value in state.items():
        if not key.startswith("encoder.layers."):
            new_state[key] = value.clone()
            continue
        _, _, index, rest = key.split(".", 3)
        if int(index) not in renumber:
            continue
        channels = torch.sort(torch.topk(channel_scores[int(index)], plan["ffn_dim"]).indices).values
        if rest.startswith("fc1."):
            value = value[channels]
        elif rest == "fc2.weight":
            value = value[:, channels]
        new_state[f"encoder.layers.{renumber[int(index)]}.{rest}"] = value.clone().contiguous()
    new = copy.deepcopy({k: v for k, v in entry.items() if k != "checkpoint"})
    checkpoint = {k: copy.deepcopy(v) for k, v in entry["checkpoint"].items() if k not in ("model", "model_weight")}
    checkpoint["model" if entry["kind"] == "wavlm" else "model_weight"] = new_state
    cfg = checkpoint["cfg" if entry["kind"] == "wavlm" else "model_cfg"]
    cfg["encoder_layers"] = len(plan["layers"])
    cfg["encoder_ffn_embed_dim"] = int(plan["ffn_dim"])
    new["checkpoint"] = checkpoint
    return new


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
            preds += pipeline(audio[start:start + batch_size]).tolist()
    return compute_metrics([r["score"] for r in rows], preds, [r["system_id"] for r in rows])


def fine_tune(pipeline, train: tuple, val: tuple | None, config: dict, progress: bool = True) -> tuple:
    """Fine-tune the whole pipeline briefly (MSE); keep the best validation weights. -> (pipeline, history)."""
    pipeline.requires_grad_(True)
    optimizer = torch.optim.AdamW([p for p in pipeline.parameters() if p.requires_grad], lr=float(config["lr"]))
    generator = torch.Generator().manual_seed(int(config["seed"]) + 1)
    steps = int(config["finetune_steps"])
    history, best, best_state = [], -math.inf, copy.deepcopy(pipeline.state_dict())
    if val is not None:
        first = _evaluate(pipeline, *val)
        history.append({"step": 0, **first})
        best = first["utt_SRCC"] if math.isfinite(first["utt_SRCC"]) else -math.inf
    bar = tqdm(batches(*train, config, generator, steps), total=steps, desc="fine-tune", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
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


def prune(teacher: str, train: str, out_dir: str, fractions: Sequence[float], *, val: str | None = None,
          config: dict | None = None, progress: bool = True) -> list:
    """Prune the upstream of the predictor file ``teacher`` to each fraction, fine-tune, and write
    ``<out_dir>/pruned_<pct>.pt``; return one summary dict per file."""
    from distilmos.predictor import upstream as upstream_mod
    from distilmos.predictor.fileformat import read_predictor, write_predictor
    from distilmos.predictor.predictor import build_pipeline

    config = load_config(None, config)
    torch.manual_seed(int(config["seed"]))
    blob = read_predictor(teacher)
    entry = blob["upstream"]
    if entry.get("kind") not in upstream_mod.EMBEDDED:
        raise PruneError(f"{teacher}: its upstream ({entry.get('kind')}) is not an embedded WavLM, HuBERT or wav2vec 2.0; "
                         "only those can be pruned")
    train_data, val_data = _store(train), _store(val)
    if not train_data or not train_data[0]:
        raise PruneError(f"{train}: no usable labelled clips to measure importance on")
    pipeline = build_pipeline(blob, source=teacher)
    layer_scores, channel_scores = importance(pipeline, *train_data, config, progress)
    total = sum(p.numel() for p in pipeline.upstream.parameters())
    plans = plan_sizes(pipeline.upstream, layer_scores, fractions, keep_first=entry["kind"] == "wavlm")
    n_layers = len(_layers(pipeline.upstream))
    os.makedirs(out_dir, exist_ok=True)
    summaries = []
    for plan in plans:
        new_blob = {k: copy.deepcopy(v) for k, v in blob.items() if k not in ("upstream", "featurizer")}
        new_blob["upstream"] = pruned_entry(entry, pipeline.upstream, plan, channel_scores)
        new_blob["featurizer"] = pruned_featurizer(blob["featurizer"], plan["layers"], n_layers)
        pruned = build_pipeline(new_blob, source=teacher)
        params = sum(p.numel() for p in pruned.upstream.parameters())
        pruned, history = fine_tune(pruned, train_data, val_data, config, progress)
        new_blob["upstream"] = upstream_mod.make_entry(pruned.upstream, entry["spec"]["name"], entry["spec"].get("ckpt"),
                                                       entry["spec"].get("model_config"),
                                                       {k: v for k, v in new_blob["upstream"]["checkpoint"].items()
                                                        if k not in ("model", "model_weight")})
        new_blob["featurizer"]["state_dict"] = {k: v.detach().clone() for k, v in pruned.featurizer.state_dict().items()}
        new_blob["downstream"]["state_dict"] = {k: v.detach().clone() for k, v in pruned.downstream.state_dict().items()}
        summary = {"fraction": plan["fraction"], "target_parameters": plan["target"], "parameters": params,
                   "reached_fraction": params / total, "kept_layers": plan["layers"], "ffn_dim": plan["ffn_dim"],
                   "layers_before": n_layers, "ffn_dim_before": int(channel_scores.shape[1]),
                   "parameters_before": total, "criterion": "first-order Taylor (gradient x weight)^2 per group, MSE on labels",
                   "finetune_steps": int(config["finetune_steps"]), "teacher": os.path.abspath(teacher),
                   "teacher_sha256": sha256_file(teacher), "validation": history[-1] if history else None}
        card = copy.deepcopy(blob["card"])
        card["upstream"] = dict(card.get("upstream") or {}, parameters=params)
        card["pruning"] = summary
        card["validation"] = summary["validation"]
        new_blob["card"] = card
        out = os.path.join(out_dir, f"pruned_{round(plan['fraction'] * 100):02d}.pt")
        write_predictor(new_blob, out)
        read_predictor(out)  # loads with weights_only=True
        summaries.append(dict(summary, path=out))
        print(f"{out}: {params} upstream parameters ({params / total:.0%} of {total}), layers {plan['layers']}, "
              f"FFN {plan['ffn_dim']}", file=sys.stderr)
    return summaries


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distilmos.compress.prune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="predictor file with an embedded WavLM/HuBERT/wav2vec 2.0")
    parser.add_argument("--train", required=True, help="labelled data list: importance and fine-tuning")
    parser.add_argument("--val", help="labelled validation list (best fine-tuned weights by utterance SRCC)")
    parser.add_argument("--fractions", default="0.75,0.5,0.25,0.1", help="target fractions of upstream parameters")
    parser.add_argument("--config", help="pruning YAML (egs/compress/conf/prune.yaml)")
    parser.add_argument("--finetune_steps", type=int)
    parser.add_argument("--importance_batches", type=int)
    parser.add_argument("--eval_every", type=int)
    parser.add_argument("--crop_seconds", type=float)
    parser.add_argument("--out_dir", required=True)
    args = parser.parse_args(argv)
    try:
        fractions = [float(f) for f in args.fractions.split(",")]
        if not all(0 < f <= 1 for f in fractions):
            raise ConfigError(f"--fractions {args.fractions!r}: each in (0, 1]")
        config = load_config(args.config, {"finetune_steps": args.finetune_steps, "eval_every": args.eval_every,
                                                "importance_batches": args.importance_batches,
                                                "crop_seconds": args.crop_seconds})
        prune(args.teacher, args.train, args.out_dir, fractions, val=args.val, config=config)
    except ToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
