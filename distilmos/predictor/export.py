"""An s3prl experiment checkpoint -> a self-contained predictor file.

    distilmos-predict export -e exp/my_exp/best-states-val.ckpt -o my_model.pt

Kept: the (fine-tuned) upstream (see :mod:`distilmos.predictor.upstream_entry` for what is embedded), the
featurizer's layer selection and weights, and the expert's inference model (``self.model``). Dropped:
the optimizer and scheduler state, the expert's training-only heads (token predictors, distillation
heads) and buffers. Added: a model card (upstream, checkpoint, variant, training data, validation
metrics), printed by ``distilmos-predict info``.

Before writing, the export rebuilds the network from what it is about to write and checks that it
predicts what the runner's own modules (the upstream, s3prl's ``Featurizer`` and the expert's model)
predict on probe waveforms.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import platform

import torch
from torch.nn.utils.rnn import pad_sequence

import distilmos
from distilmos import registry
from distilmos.data.audio import SAMPLE_RATE
from distilmos.data.datalist import open_list
from distilmos.errors import ToolkitError
from distilmos.fileio import sha256_file
from distilmos.upstream import padding_exact

from . import downstreams, upstream_entry
from .fileformat import write_predictor
from .pipeline import FeatureSelector
from .predictor import build_pipeline

EXPERIMENT_KEYS = ("Args", "Config", "Featurizer", "Downstream")
CHECK_TOLERANCE = 1e-5


class ExportError(ToolkitError, ValueError):
    """An experiment checkpoint that cannot be exported; the message names it and says why."""


def read_experiment(path: str) -> dict:
    """An s3prl experiment checkpoint (``states-N.ckpt``, ``best-states-<split>.ckpt``), refused with a
    clear error when it is not one."""
    from distilmos.fileio import allow_s3prl_checkpoints

    if not os.path.isfile(path):
        raise ExportError(f"{path}: no such experiment checkpoint")
    allow_s3prl_checkpoints()
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ExportError(f"{path}: cannot be read as an s3prl experiment checkpoint ({exc})") from exc
    missing = [k for k in EXPERIMENT_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        hint = " (it is already a predictor file)" if isinstance(ckpt, dict) and "format" in ckpt else ""
        raise ExportError(f"{path}: not an s3prl experiment checkpoint{hint}: no {', '.join(missing)}")
    return ckpt


def export(checkpoint: str, out: str, *, check: bool = True) -> dict:
    """Write the predictor file ``out`` from the experiment checkpoint ``checkpoint``; return its model card.

    Builds the upstream the way the runner did (``-u``/``-k``/``-g`` from the checkpoint), so a hub
    upstream is fetched from s3prl's cache (or downloaded) and a ``*_local`` one must be at its path.
    """
    ckpt = read_experiment(checkpoint)
    args = ckpt["Args"]
    name = args.downstream
    if name not in registry.EXPERTS:
        raise ExportError(f"{checkpoint}: expert {name!r} cannot be exported; known: {', '.join(registry.EXPERTS)}")

    model, configs = upstream_entry.build_for_export(args.upstream, args.upstream_ckpt, args.upstream_model_config)
    if ckpt.get("Upstream"):  # fine-tuned (-f); otherwise the runner kept the pretrained weights
        model.load_state_dict(ckpt["Upstream"])
    model.eval()
    featurizer = _s3prl_featurizer(model, args, ckpt["Featurizer"])
    blob, dropped = assemble(
        model,
        (args.upstream, args.upstream_ckpt, args.upstream_model_config),
        configs,
        FeatureSelector.from_s3prl(featurizer),
        name,
        ckpt["Downstream"],
    )
    down_model = downstreams.build(blob["downstream"])
    blob["card"] = model_card(checkpoint, ckpt, blob, dropped, _count(model), _count(down_model))
    if check:
        _check_rebuild(blob, model, featurizer, down_model, checkpoint)
    write_predictor(blob, out, check=True)
    return blob["card"]


def assemble(
    model, spec: tuple, configs: dict, selector: FeatureSelector, expert: str, expert_state: dict[str, torch.Tensor]
) -> tuple:
    """``(predictor dict without its card, dropped expert keys)`` from built parts: the upstream ``model``
    built from ``spec`` = (name, ckpt, model_config) with ``configs`` from
    :func:`distilmos.predictor.upstream_entry.build_for_export`, the featurizer, and the expert's state dict."""
    down_entry, dropped = downstreams.make_entry(expert, expert_state)
    blob = {
        "upstream": upstream_entry.make_entry(model, *spec, configs),
        "featurizer": {
            "config": selector.config(),
            "state_dict": {k: v.detach().clone() for k, v in selector.state_dict().items()},
        },
        "downstream": down_entry,
    }
    return blob, dropped


def _s3prl_featurizer(model, args, state: dict[str, torch.Tensor]):
    """s3prl's Featurizer exactly as the runner built it, with the trained weights."""
    from s3prl.upstream.interfaces import Featurizer

    with torch.random.fork_rng(devices=[]):  # its probe forward draws random numbers
        featurizer = Featurizer(
            upstream=model,
            feature_selection=args.upstream_feature_selection,
            upstream_device="cpu",
            layer_selection=args.upstream_layer_selection,
            normalize=args.upstream_feature_normalize,
        )
    featurizer.load_state_dict(state)
    padding_exact.cut_featurizer(featurizer, model)  # as the plugin runner's featurizer
    return featurizer.eval()


def _check_rebuild(blob: dict, model, featurizer, down_model, checkpoint: str) -> None:
    """The rebuilt network must predict what the runner's modules predict (one by one and batched)."""
    # trusted: the upstream was just built from this same spec, by the experiment's own -u/-k/-g
    rebuilt = build_pipeline(blob, source=checkpoint, trust_remote_code=True)
    generator = torch.Generator().manual_seed(0)
    probes = [0.1 * torch.randn(n, generator=generator) for n in (SAMPLE_RATE, 24731)]

    def runner_way(wavs: list[torch.Tensor]) -> torch.Tensor:
        feats = featurizer(wavs, model(wavs))
        lengths = torch.tensor([len(f) for f in feats])
        return down_model(pad_sequence(feats, batch_first=True), lengths)["pred"]

    with torch.no_grad():
        for wavs in ([probes[0]], [probes[1]], probes):
            expected, got = runner_way(wavs), rebuilt(wavs)
            gap = (expected - got).abs().max().item()
            if not gap <= CHECK_TOLERANCE:
                raise ExportError(
                    f"{checkpoint}: the exported network predicts differently from the runner's modules "
                    f"(largest difference {gap:.3g} on probe waveforms); the export was not written"
                )


def _count(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def _list_facts(path: str | None) -> dict:
    """Where a data list is, and (if it is still there) how many rows it has and its sha256."""
    facts = {"path": path}
    if path and os.path.isfile(path):
        facts["utterances"] = sum(1 for _ in csv.DictReader(open_list(path)))
        facts["sha256"] = sha256_file(path)
    return facts


def validation_metrics(expdir: str, split: str, step: int | None) -> dict | None:
    """The metrics on ``split`` logged at ``step`` (``log.jsonl``, else ``metrics_<split>_best.json``)."""
    log = os.path.join(expdir, "log.jsonl")
    found = None
    if os.path.isfile(log):
        with open(log, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                if record.get("split") == split and record.get("step") == step and "utt_SRCC" in record:
                    found = record
    best = os.path.join(expdir, f"metrics_{split}_best.json")
    if found is None and os.path.isfile(best):
        with open(best, encoding="utf-8") as handle:
            record = json.load(handle)
        if record.get("step") == step:
            found = dict(record, split=split)
    return found


def model_card(
    checkpoint: str, ckpt: dict, blob: dict, dropped: list[str], upstream_parameters: int, downstream_parameters: int
) -> dict:
    """What a user needs to know about an exported model; plain values only."""
    import s3prl

    args, config = ckpt["Args"], ckpt["Config"]
    expert = config.get("downstream_expert", {}) or {}
    datarc = expert.get("datarc", {}) or {}
    name = args.downstream
    variant = registry.variant_of(name, args, config)
    data_dir = datarc.get("data_dir")
    best_split = datarc.get("best_split", registry.DATARC_DEFAULTS["best_split"])
    step = ckpt.get("Step")
    weights = blob["featurizer"]["state_dict"].get("weights")
    down_state = ckpt["Downstream"]
    upstream_entry = blob["upstream"]
    upstream_ckpt = args.upstream_ckpt
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "sample_rate": SAMPLE_RATE,
        "experiment": {
            "checkpoint": os.path.abspath(checkpoint),
            "sha256": sha256_file(checkpoint),
            "step": step,
            "expdir": getattr(args, "expdir", None),
            "seed": getattr(args, "seed", None),
            "total_steps": (config.get("runner") or {}).get("total_steps"),
        },
        "upstream": {
            "name": args.upstream,
            "checkpoint": upstream_ckpt,
            "checkpoint_sha256": sha256_file(upstream_ckpt)
            if upstream_ckpt and os.path.isfile(upstream_ckpt)
            else None,
            "model_config": args.upstream_model_config,
            "kind": upstream_entry["kind"],
            "embedded": upstream_entry["kind"] != "spec",
            "fine_tuned": bool(args.upstream_trainable and ckpt.get("Upstream")),
            "parameters": upstream_parameters,
        },
        "featurizer": {
            "feature_selection": blob["featurizer"]["config"]["feature_selection"],
            "layer_selection": blob["featurizer"]["config"]["layer_selection"],
            "normalize": blob["featurizer"]["config"]["normalize"],
            "layer_weights": None if weights is None else [round(float(w), 6) for w in torch.softmax(weights, -1)],
        },
        "downstream": {
            "expert": name,
            "variant": variant,
            "model": blob["downstream"]["class_name"],
            "parameters": downstream_parameters,
            # the training systems a classification head (MoE-MOS) tells apart, in posterior order
            "system_classes": list(blob["downstream"]["kwargs"].get("class_names", [])) or None,
            "dropped": {
                "keys": len(dropped),
                "numel": int(sum(down_state[k].numel() for k in dropped)),
                "modules": sorted({k.split(".")[0] for k in dropped}),
            },
        },
        "training_data": {
            "data_dir": data_dir,
            "train": _list_facts(os.path.join(data_dir, "train.csv") if data_dir else None),
            best_split: _list_facts(_split_path(datarc, best_split)),
            "token_store": datarc.get("token_store") if registry.uses_tokens(variant) else None,
        },
        "validation": validation_metrics(os.path.dirname(os.path.abspath(checkpoint)), best_split, step),
        "toolkit": {
            "distilmos": distilmos.__version__,
            "torch": str(torch.__version__),
            "s3prl": str(getattr(s3prl, "__version__", None)),
            "python": platform.python_version(),
        },
    }


def _split_path(datarc: dict, split: str) -> str | None:
    extra = datarc.get("extra_eval") or {}
    if split in extra:
        return extra[split]
    return os.path.join(datarc["data_dir"], f"{split}.csv") if datarc.get("data_dir") else None
