"""Train a compact student (:mod:`distilmos.models.student`) and export it as a predictor file.

    python -m distilmos.compress.train_student --config egs/compress/conf/student.yaml --size xs \\
        --pseudo pseudo.csv [--labelled data/bvcc/train.csv] [--labelled_ratio 0.25] \\
        --val data/bvcc/val.csv --out exp/student_xs.pt

Training data: the pseudo-labelled list (the teacher's predictions as scores), the labelled list, or
both; with both, each batch holds ``round(labelled_ratio * batch_size)`` labelled clips and the rest
pseudo-labelled ones (``labelled_ratio`` 1.0 with no pseudo list is the labelled-only baseline). Clips
are cropped at random to ``crop_seconds``; MSE loss; AdamW with a cosine schedule. Validation (whole
clips) every ``eval_every`` steps and at the end; the weights with the best validation utterance SRCC are
exported. Everything random comes from ``seed``.

The predictor file has no SSL upstream: a ``waveform`` upstream entry hands the 16 kHz waveform to the
student, so ``distilmos-predict score`` and :func:`distilmos.predictor.load` score any rate and channel
count as with every other model.
"""

from __future__ import annotations

import copy
import csv
import datetime
import json
import math
import os
import platform
import sys

import numpy as np
import torch
from tqdm import tqdm

import distilmos
from distilmos.compress.cli import step_parser
from distilmos.compress.config import flag_settings, load_settings
from distilmos.data.audio import SAMPLE_RATE, AudioError, load_audio
from distilmos.data.batching import plan_batches
from distilmos.errors import ConfigError, ToolkitError, reports_errors
from distilmos.eval.metrics import compute_metrics
from distilmos.fileio import sha256_file
from distilmos.models.student import SIZES, build, count_parameters

DEFAULTS = {
    "size": "s",
    "steps": 300,
    "batch_size": 16,
    "lr": 1.0e-3,
    "weight_decay": 1.0e-4,
    "crop_seconds": 3.0,
    "labelled_ratio": 0.0,
    "eval_every": 50,
    "eval_batch_size": 16,
    "seed": 0,
    "clip_grad": 5.0,
}


def load_config(path: str | None, overrides: dict | None = None) -> dict:
    """The student config (YAML) over :data:`DEFAULTS`, checked."""
    config = load_settings(path, DEFAULTS, overrides, "student")
    if config["size"] not in SIZES:
        raise ConfigError(f"{path or 'config'}: size {config['size']!r}; choose from {', '.join(SIZES)}")
    if not 0.0 <= float(config["labelled_ratio"]) <= 1.0:
        raise ConfigError(f"{path or 'config'}: labelled_ratio {config['labelled_ratio']!r} must be in [0, 1]")
    return config


def read_list(path: str) -> list[dict]:
    """Rows ``{sample_id, system_id, wav_path (absolute), score}`` of a data list; bad rows named."""
    from distilmos.data.datalist import read_datalist

    # audio is checked as it is read (ClipStore): a bad clip is skipped there, not fatal here
    return [
        {"sample_id": u.sample_id, "system_id": u.system_id, "wav_path": u.wav_path, "score": float(u.score)}
        for u in read_datalist(path, check_audio=False)
    ]


class ClipStore:
    """Audio of a list, read once and kept (16 kHz mono); unreadable clips are reported and left out."""

    def __init__(self, rows: list[dict], name: str):
        self.rows, self.audio = [], []
        for row in rows:
            try:
                wav = load_audio(row["wav_path"])
            except AudioError as exc:
                print(f"skipped ({name}): {exc}", file=sys.stderr)
                continue
            self.rows.append(row)
            self.audio.append(wav)

    def __len__(self) -> int:
        return len(self.rows)


def _crop_batch(stores, picks, crop: int, generator: torch.Generator):
    wavs, scores = [], []
    for store, index in picks:
        wav = store.audio[index]
        if len(wav) > crop:
            start = int(torch.randint(len(wav) - crop + 1, (1,), generator=generator))
            wav = wav[start : start + crop]
        wavs.append(wav)
        scores.append(store.rows[index]["score"])
    lengths = torch.tensor([len(w) for w in wavs])
    return torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True), lengths, torch.tensor(scores)


@torch.no_grad()
def predict_store(model, store: ClipStore, batch_size: int = 16, max_batch_seconds: float = 160.0) -> list[float]:
    """Whole-clip predictions of every clip of ``store``, in the toolkit's length batches (no padding cap:
    a student masks every frame beyond a clip's own length, so a batch scores as one by one)."""
    model.eval()
    preds: dict[int, float] = {}
    for part in plan_batches([len(w) for w in store.audio], max_batch_seconds, batch_size, max_pad=None):
        wavs = [store.audio[i] for i in part]
        out = model(torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True), torch.tensor([len(w) for w in wavs]))
        preds.update({i: float(p) for i, p in zip(part, out["pred"])})
    return [preds[i] for i in range(len(store))]


def evaluate_store(model, store: ClipStore, batch_size: int = 16) -> dict:
    preds = predict_store(model, store, batch_size)
    return compute_metrics([r["score"] for r in store.rows], preds, [r["system_id"] for r in store.rows])


def train_student(
    config: dict,
    *,
    pseudo: str | None = None,
    labelled: str | None = None,
    val: str | None = None,
    progress: bool = True,
) -> tuple:
    """Train one student; return ``(model with the best weights, history, facts)``."""
    seed = int(config["seed"])
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    ratio = float(config["labelled_ratio"]) if labelled else 0.0
    if pseudo is None:
        ratio = 1.0
    if pseudo is None and labelled is None:
        raise ConfigError("a student needs --pseudo, --labelled or both")
    stores = {
        "pseudo": ClipStore(read_list(pseudo), "pseudo") if pseudo and ratio < 1 else None,
        "labelled": ClipStore(read_list(labelled), "labelled") if labelled and ratio > 0 else None,
    }
    for name, store in stores.items():
        if store is not None and len(store) == 0:
            raise ToolkitError(f"{pseudo if name == 'pseudo' else labelled}: no usable clips")
    val_store = ClipStore(read_list(val), "val") if val else None
    model = build(config["size"])
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=float(config["lr"]), weight_decay=float(config["weight_decay"])
    )
    steps = int(config["steps"])
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=float(config["lr"]), total_steps=steps, pct_start=0.1
    )
    batch = int(config["batch_size"])
    n_labelled = round(ratio * batch)
    crop = int(float(config["crop_seconds"]) * SAMPLE_RATE)
    history, best, best_state = [], -math.inf, copy.deepcopy(model.state_dict())
    bar = tqdm(
        range(1, steps + 1),
        desc=f"student {config['size']}",
        unit="step",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    for step in bar:
        model.train()
        picks = []
        for name, count in (("labelled", n_labelled), ("pseudo", batch - n_labelled)):
            store = stores[name]
            if count and store is not None:
                picks += [(store, int(i)) for i in torch.randint(len(store), (count,), generator=generator)]
        wavs, lengths, scores = _crop_batch(stores, picks, crop, generator)
        loss = torch.nn.functional.mse_loss(model(wavs, lengths)["pred"], scores)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(config["clip_grad"]))
        optimizer.step()
        scheduler.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if val_store is not None and (step % int(config["eval_every"]) == 0 or step == steps):
            metrics = evaluate_store(model, val_store, int(config["eval_batch_size"]))
            history.append({"step": step, "loss": loss.item(), **metrics})
            score = metrics["utt_SRCC"] if math.isfinite(metrics["utt_SRCC"]) else -math.inf
            if score > best:
                best, best_state = score, copy.deepcopy(model.state_dict())
    if val_store is None:
        best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    facts = {
        "pseudo": _facts(pseudo, stores["pseudo"]),
        "labelled": _facts(labelled, stores["labelled"]),
        "val": _facts(val, val_store),
        "labelled_ratio": ratio,
        "best_val_utt_SRCC": best,
    }
    return model.eval(), history, facts


def _facts(path: str | None, store: ClipStore | None) -> dict | None:
    if not path or store is None:
        return None
    facts = {"path": os.path.abspath(path), "utterances": len(store), "sha256": sha256_file(path)}
    teacher = path + ".teacher.json"
    if os.path.isfile(teacher):
        with open(teacher, encoding="utf-8") as handle:
            sidecar = json.load(handle)
        facts["teacher"] = {"path": sidecar["teacher"], "sha256": sidecar["teacher_sha256"]}
    return facts


def export_student(model, out: str, *, size: str, config: dict, facts: dict, history: list) -> dict:
    """Write ``model`` as a predictor file (waveform upstream, no SSL inside); return its card."""
    from distilmos.predictor import downstreams
    from distilmos.predictor.fileformat import write_predictor
    from distilmos.predictor.pipeline import FeatureSelector
    from distilmos.predictor.upstream_entry import waveform_entry

    entry, _ = downstreams.make_entry("student", {f"model.{k}": v for k, v in model.state_dict().items()})
    selector = FeatureSelector(downsample_rate=1)
    blob = {
        "upstream": waveform_entry(),
        "featurizer": {"config": selector.config(), "state_dict": {}},
        "downstream": entry,
    }
    blob["card"] = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "sample_rate": SAMPLE_RATE,
        "experiment": {
            "recipe": "egs/compress (student)",
            "config": {k: config[k] for k in sorted(config)},
            "seed": config["seed"],
            "total_steps": config["steps"],
            "step": None,
            "checkpoint": None,
        },
        "upstream": {
            "name": "waveform",
            "kind": "waveform",
            "embedded": True,
            "fine_tuned": False,
            "parameters": 0,
            "checkpoint": None,
        },
        "featurizer": selector.config(),
        "downstream": {
            "expert": "student",
            "variant": f"student_{size}",
            "model": entry["class_name"],
            "parameters": count_parameters(model),
            "system_classes": None,
            "dropped": {"keys": 0, "numel": 0, "modules": []},
        },
        "training_data": facts,
        "validation": history[-1] if history else None,
        "toolkit": {
            "distilmos": distilmos.__version__,
            "torch": str(torch.__version__),
            "python": platform.python_version(),
        },
    }
    write_predictor(blob, out, check=True)
    return blob["card"]


def write_history(path: str, history: list) -> None:
    from distilmos.fileio import atomic_write

    with atomic_write(path, newline="") as handle:
        if history:
            writer = csv.DictWriter(handle, fieldnames=list(history[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(history)


@reports_errors
def main(argv=None) -> int:
    parser = step_parser("train_student", __doc__)
    parser.add_argument("--config", help="student YAML (egs/compress/conf/student.yaml)")
    parser.add_argument("--size", choices=list(SIZES))
    parser.add_argument("--pseudo", help="pseudo-labelled data list (python -m distilmos.compress.pseudo_label)")
    parser.add_argument("--labelled", help="labelled data list")
    parser.add_argument("--labelled_ratio", type=float, help="labelled share of each batch (with both lists)")
    parser.add_argument("--val", help="labelled validation list (best weights by utterance SRCC)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch_size", type=int)
    parser.add_argument("--crop_seconds", type=float)
    parser.add_argument("--eval_every", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--out", required=True, help="predictor file to write")
    args = parser.parse_args(argv)
    config = load_config(args.config, flag_settings(args, DEFAULTS))
    np.random.seed(int(config["seed"]))
    model, history, facts = train_student(config, pseudo=args.pseudo, labelled=args.labelled, val=args.val)
    export_student(model, args.out, size=config["size"], config=config, facts=facts, history=history)
    write_history(os.path.splitext(args.out)[0] + "_history.csv", history)
    print(
        f"{args.out}: student {config['size']} ({count_parameters(model)} parameters), "
        f"best val utt SRCC {facts['best_val_utt_SRCC']:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
