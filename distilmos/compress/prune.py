"""Data-driven structured pruning of a predictor file: its fine-tuned upstream (WavLM, HuBERT, wav2vec 2.0)
and its DistilMOS head.

    python -m distilmos.compress.prune --teacher teacher.pt --train data/bvcc/train.csv --val data/bvcc/val.csv \\
        --fractions 0.75,0.5,0.25,0.1 --out_dir exp/pruned [--config egs/compress/conf/prune.yaml]

What is pruned (``groups``): in the upstream (:mod:`distilmos.compress.structure` has the groups, the
importance criterion and the size plan) transformer layers, feed-forward channels, attention heads (HuBERT,
wav2vec 2.0) and front-end convolution channels; in a DistilMOS head (:mod:`distilmos.compress.head`) its
hidden width's channels and its BLSTM's units. Every group is ranked by a first-order Taylor importance of
the MOS loss on labelled data (one set of backward passes for all). A fraction ``f`` is a target for each
part: the upstream keeps about ``f`` of its parameters and the head ``f`` of its own, so the predictor
keeps about ``f`` of its whole (the head is most of a small upstream's predictor: pruning the upstream
alone would leave it above the head's size). Another head is kept whole, with a warning.

The pruned upstream is s3prl's own ``<kind>_local`` checkpoint with a smaller ``encoder_layers``,
``encoder_ffn_embed_dim`` and ``conv_feature_layers`` (and, for removed heads, each layer's head count
beside it; :mod:`distilmos.predictor.heads`), so the pruned upstream really is smaller (fewer weights in
the saved architecture, no masks), is rebuilt with s3prl's own classes and made padding-exact by
:mod:`distilmos.upstream.padding_exact` like any other, and loads with ``torch.load(weights_only=True)``. The
pruned head is a DistilMOS model with narrower weights, rebuilt from its state dict like any other.

Each pruned model is then fine-tuned briefly (upstream, featurizer and expert model together, MSE on the
labelled list; an upstream whose weights are not in the file, which only head pruning allows, stays frozen),
keeping the weights with the best validation utterance SRCC.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import sys
from collections.abc import Sequence

import torch
from tqdm import tqdm

from distilmos.compress.cli import step_parser
from distilmos.compress.config import flag_settings, load_settings
from distilmos.compress.head import (
    HEAD_GROUPS,
    HeadStructure,
    accumulate_head,
    new_head_scores,
    plan_head,
    pruned_head_state,
)
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
from distilmos.errors import ConfigError, ToolkitError, reports_errors
from distilmos.eval.metrics import compute_metrics
from distilmos.fileio import sha256_file

#: every group that can be pruned: the upstream's, then the DistilMOS head's
ALL_GROUPS = GROUPS + HEAD_GROUPS
DEFAULTS = {
    "batch_size": 4,
    "crop_seconds": 3.0,
    "importance_batches": 8,
    "finetune_steps": 50,
    "lr": 5.0e-5,
    "head_lr": None,
    "eval_every": 25,
    "seed": 0,
    "groups": list(ALL_GROUPS),
}


class PruneError(ToolkitError, ValueError):
    """A predictor file whose upstream cannot be pruned; the message says why."""


def load_config(path: str | None, overrides: dict | None = None) -> dict:
    """The pruning config (YAML) over :data:`DEFAULTS`."""
    config = load_settings(path, DEFAULTS, overrides, "pruning")
    config["groups"] = check_groups(config["groups"], path or "config", ALL_GROUPS)
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
    model = getattr(upstream, "model", None)
    if not hasattr(model, "feature_grad_mult"):  # no s3prl front end (a head-only pruning's upstream)
        yield
        return
    previous = model.feature_grad_mult
    model.feature_grad_mult = 1.0
    try:
        yield
    finally:
        model.feature_grad_mult = previous


def importance(
    pipeline,
    structure: Structure | None,
    rows: list,
    audio: list,
    config: dict,
    progress: bool = True,
    head: HeadStructure | None = None,
) -> dict:
    """The Taylor importance of every prunable group of the upstream's ``structure``
    (:func:`structure.accumulate`) and of the ``head`` (:func:`head.accumulate_head`), from the same
    backward passes: ``{group name: scores}``."""
    with front_end_gradients(pipeline.upstream):
        return _importance(pipeline, structure, rows, audio, config, progress, head)


def _importance(
    pipeline,
    structure: Structure | None,
    rows: list,
    audio: list,
    config: dict,
    progress: bool,
    head: HeadStructure | None,
) -> dict:
    scores = dict(new_scores(structure) if structure else {}, **(new_head_scores(head) if head else {}))
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
        if structure is not None:
            accumulate(structure, scores)
        if head is not None:
            accumulate_head(head, scores)
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


def fine_tune(
    pipeline, train: tuple, val: tuple | None, config: dict, progress: bool = True, upstream: bool = True
) -> tuple:
    """Fine-tune the pipeline briefly (MSE), the upstream's front end included (``upstream=False``: the
    upstream frozen); keep the best validation weights. The head learns at ``head_lr`` (``lr`` when None).
    -> (pipeline, history)."""
    with front_end_gradients(pipeline.upstream):
        return _fine_tune(pipeline, train, val, config, progress, upstream)


def _fine_tune(pipeline, train: tuple, val: tuple | None, config: dict, progress: bool, upstream: bool) -> tuple:
    pipeline.requires_grad_(True)
    pipeline.upstream.requires_grad_(upstream)
    lr = float(config["lr"])
    head_lr = lr if config.get("head_lr") is None else float(config["head_lr"])
    trained = [p for p in pipeline.upstream.parameters() if p.requires_grad] + list(pipeline.featurizer.parameters())
    optimizer = torch.optim.AdamW(
        [{"params": trained, "lr": lr}, {"params": list(pipeline.downstream.parameters()), "lr": head_lr}]
    )
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
        pipeline.upstream.train(upstream)
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


def _part_groups(blob: dict, groups: Sequence[str], teacher: str) -> tuple[list, list]:
    """``(upstream groups, head groups)`` of ``groups`` that the predictor dict ``blob`` can have pruned."""
    from distilmos.predictor import upstream_entry as upstream_mod

    upstream_groups = [g for g in groups if g in GROUPS]
    head_groups = [g for g in groups if g in HEAD_GROUPS]
    kind, expert = blob["upstream"].get("kind"), blob["downstream"].get("name")
    if head_groups and expert != "distilmos":
        print(
            f"warning: {teacher}: its head ({expert}) is not a DistilMOS head, whose groups "
            f"({', '.join(head_groups)}) only it has; the head is kept whole",
            file=sys.stderr,
        )
        head_groups = []
    if upstream_groups and kind not in upstream_mod.EMBEDDED:
        fix = f" (prune its DistilMOS head alone: --groups {','.join(HEAD_GROUPS)})" if expert == "distilmos" else ""
        raise PruneError(
            f"{teacher}: its upstream ({kind}) is not an embedded WavLM, HuBERT or wav2vec 2.0; only "
            f"those can have {', '.join(upstream_groups)} pruned{fix}"
        )
    if not upstream_groups and not head_groups:
        raise PruneError(f"{teacher}: nothing to prune with the groups {list(groups)}")
    return upstream_groups, head_groups


def _state(module: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


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
    """Prune the upstream and the DistilMOS head of the predictor file ``teacher`` to each fraction (the
    config's ``groups`` say what may go), fine-tune, and write ``<out_dir>/pruned_<pct>.pt``; return one
    summary dict per file."""
    from distilmos.predictor import downstreams
    from distilmos.predictor import upstream_entry as upstream_mod
    from distilmos.predictor.fileformat import read_predictor, write_predictor
    from distilmos.predictor.predictor import build_pipeline
    from distilmos.predictor.sources import is_peer, resolve

    if is_peer(teacher):
        raise PruneError(f"{teacher}: another package's predictor has no fine-tuned SSL upstream to prune")
    teacher = resolve(teacher)  # an hf:// file: its copy in the hub cache
    config = load_config(None, config)
    torch.manual_seed(int(config["seed"]))
    blob = read_predictor(teacher)
    entry = blob["upstream"]
    upstream_groups, head_groups = _part_groups(blob, config["groups"], teacher)
    train_data, val_data = _store(train), _store(val)
    if not train_data or not train_data[0]:
        raise PruneError(f"{train}: no usable labelled clips to measure importance on")
    pipeline = build_pipeline(blob, source=teacher)
    structure = Structure(pipeline.upstream, entry["kind"]) if upstream_groups else None
    head = HeadStructure(pipeline.downstream) if head_groups else None
    scores = importance(pipeline, structure, *train_data, config, progress, head=head)
    total = sum(p.numel() for p in pipeline.upstream.parameters())
    head_total = sum(p.numel() for p in pipeline.downstream.parameters())
    plans = plan_sizes(structure, scores, fractions, upstream_groups) if structure else [None] * len(fractions)
    head_plans = [plan_head(head, f, head_groups) if head else None for f in fractions]
    embedded = entry.get("kind") in upstream_mod.EMBEDDED
    os.makedirs(out_dir, exist_ok=True)
    summaries = []
    for fraction, plan, head_plan in zip(fractions, plans, head_plans):
        new_blob = copy.deepcopy({k: v for k, v in blob.items() if k not in ("upstream", "featurizer")})
        new_blob["upstream"], new_blob["featurizer"] = entry, blob["featurizer"]
        if plan is not None:
            new_blob["upstream"] = pruned_entry(entry, structure, plan, scores)
            new_blob["featurizer"] = pruned_featurizer(blob["featurizer"], plan["layers"], len(structure.layers))
        if head_plan is not None:
            state = pruned_head_state(head, head_plan, scores)
            prefixed = {f"{downstreams.MODEL_PREFIX}{k}": v for k, v in state.items()}
            new_blob["downstream"], _ = downstreams.make_entry(blob["downstream"]["name"], prefixed)
        pruned = build_pipeline(new_blob, source=teacher)
        params = sum(p.numel() for p in pruned.upstream.parameters())
        head_params = sum(p.numel() for p in pruned.downstream.parameters())
        pruned, history = fine_tune(pruned, train_data, val_data, config, progress, upstream=embedded)
        if embedded:
            new_blob["upstream"] = upstream_mod.make_entry(
                pruned.upstream,
                entry["spec"]["name"],
                entry["spec"].get("ckpt"),
                entry["spec"].get("model_config"),
                {k: v for k, v in new_blob["upstream"]["checkpoint"].items() if k not in ("model", "model_weight")},
            )
        new_blob["featurizer"] = copy.deepcopy(new_blob["featurizer"])
        new_blob["featurizer"]["state_dict"] = _state(pruned.featurizer)
        new_blob["downstream"]["state_dict"] = _state(pruned.downstream)
        summary = {
            "fraction": fraction,
            "groups": config["groups"],
            "parameters": params,
            "parameters_before": total,
            "reached_fraction": params / total,
            "head_parameters": head_params,
            "head_parameters_before": head_total,
            "predictor_parameters": sum(p.numel() for p in pruned.parameters()),
            "criterion": "first-order Taylor (gradient x weight)^2 per group, MSE on labels",
            "finetune_steps": int(config["finetune_steps"]),
            "teacher": os.path.abspath(teacher),
            "teacher_sha256": sha256_file(teacher),
            "validation": history[-1] if history else None,
        }
        if plan is not None:
            summary.update(
                target_parameters=plan["target"],
                kept_layers=plan["layers"],
                ffn_dim=plan["ffn_dim"],
                heads=plan["heads"],
                conv_widths=plan["conv_widths"],
                layers_before=len(structure.layers),
                ffn_dim_before=structure.ffn_dim,
                heads_before=structure.heads,
                conv_widths_before=structure.conv_widths,
            )
        if head_plan is not None:
            summary.update(
                head_target_parameters=head_plan["target"],
                head_hidden_dim=head_plan["hidden_dim"],
                head_blstm_dim=head_plan["blstm_dim"],
                head_hidden_dim_before=head.hidden_dim,
                head_blstm_dim_before=head.blstm_dim,
            )
        card = copy.deepcopy(blob["card"])
        card["upstream"] = dict(card.get("upstream") or {}, parameters=params)
        card["downstream"] = dict(card.get("downstream") or {}, parameters=head_params)
        card["pruning"] = summary
        card["validation"] = summary["validation"]
        new_blob["card"] = card
        out = os.path.join(out_dir, f"pruned_{round(fraction * 100):02d}.pt")
        write_predictor(new_blob, out, check=True)
        summaries.append(dict(summary, path=out))
        said = [f"{out}: {params} upstream parameters ({params / total:.0%} of {total})"]
        if plan is not None:
            said.append(
                f"layers {plan['layers']}, FFN {plan['ffn_dim']}, heads {plan['heads']}, "
                f"convolution widths {plan['conv_widths']}"
            )
        said.append(f"head {head_params} ({head_params / head_total:.0%} of {head_total})")
        if head_plan is not None:
            said.append(f"hidden width {head_plan['hidden_dim']}, BLSTM {head_plan['blstm_dim']}")
        print("; ".join(said), file=sys.stderr)
    return summaries


@reports_errors
def main(argv=None) -> int:
    parser = step_parser("prune", __doc__)
    parser.add_argument("--teacher", required=True, help="predictor file with an embedded WavLM/HuBERT/wav2vec 2.0")
    parser.add_argument("--train", required=True, help="labelled data list: importance and fine-tuning")
    parser.add_argument("--val", help="labelled validation list (best fine-tuned weights by utterance SRCC)")
    parser.add_argument(
        "--fractions",
        default="0.75,0.5,0.25,0.1",
        help="target fractions of the parameters of each pruned part (upstream, head)",
    )
    parser.add_argument("--config", help="pruning YAML (egs/compress/conf/prune.yaml)")
    parser.add_argument("--finetune_steps", type=int)
    parser.add_argument("--head_lr", type=float, help="learning rate of the head in the fine-tuning (default: lr)")
    parser.add_argument("--importance_batches", type=int)
    parser.add_argument("--eval_every", type=int)
    parser.add_argument("--crop_seconds", type=float)
    parser.add_argument("--groups", help=f"comma-separated groups to prune (default: all of {','.join(ALL_GROUPS)})")
    parser.add_argument("--out_dir", required=True)
    args = parser.parse_args(argv)
    fractions = [float(f) for f in args.fractions.split(",")]
    if not all(0 < f <= 1 for f in fractions):
        raise ConfigError(f"--fractions {args.fractions!r}: each in (0, 1]")
    config = load_config(args.config, flag_settings(args, DEFAULTS))
    prune(args.teacher, args.train, args.out_dir, fractions, val=args.val, config=config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
