"""Pretrain a tiny HuBERT (s3prl's own ``HubertModel``) by masked prediction, offline, on an unlabelled
speech pool; write it in s3prl's ``hubert_local`` checkpoint format, with the evidence that it learned.

    python -m distilmos.pretrain.tiny_hubert --pool pool/pool.csv --out tiny_hubert.pt [--iterations 2]
    python run_downstream.py -m train -u hubert_local -k tiny_hubert.pt -d distilmos ...

The pool is a CSV with ``wav_path`` (relative to the CSV's folder), ``split`` (``train`` or ``heldout``) and
any label columns (egs/pretrain_tiny/local/make_pool.py writes one). Iteration 1 predicts k-means clusters of
MFCC frames; iteration 2 (``--iterations 2``) starts again from the same initial weights and predicts k-means
clusters of a layer of the iteration-1 model, as HuBERT does. Printed and written beside ``--out``:

- ``<stem>.report.json``: masked-prediction accuracy on the held-out utterances of the trained model, of the
  same model at init and of chance (1/k and the most frequent cluster), per iteration; the frozen linear
  probes of every layer for each ``--probe`` column, trained model vs random init;
- ``<stem>.curves.png``: training loss, training and held-out masked accuracy per iteration;
- ``<stem>.card.md``: the model card (data, steps, final accuracy, probes, the command).

Everything is seeded; with the same seed and ``--threads`` the checkpoint is bit-identical on CPU.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import sys
import tempfile
import time

import numpy as np
import torch
from tqdm import tqdm

from distilmos.data.audio import SAMPLE_RATE, load_audio
from distilmos.data.datalist import open_list
from distilmos.errors import ToolkitError, reports_errors
from distilmos.fileio import atomic_write, sha256_file

from . import masked_prediction as mp


class PoolError(ToolkitError, ValueError):
    """A pool CSV that cannot be used; the message says what is wrong."""


def read_pool(csv_path: str) -> list[dict[str, str]]:
    """The rows of a pool CSV, with ``wav_path`` made absolute; refuses a pool without both splits."""
    if not os.path.isfile(csv_path):
        raise PoolError(f"{csv_path}: no such pool CSV (make one with egs/pretrain_tiny/local/make_pool.py)")
    rows = list(csv.DictReader(open_list(csv_path)))
    missing = {"wav_path", "split"} - set(rows[0] if rows else {})
    if missing:
        raise PoolError(f"{csv_path}: needs the columns wav_path and split (missing {', '.join(sorted(missing))})")
    root = os.path.dirname(os.path.abspath(csv_path))
    for row in rows:
        row["wav_path"] = os.path.join(root, row["wav_path"])
    splits = {row["split"] for row in rows}
    if not {"train", "heldout"} <= splits:
        raise PoolError(f"{csv_path}: needs rows of split 'train' and 'heldout' (found {sorted(splits)})")
    return rows


def shown_path(path: str) -> str:
    """``path`` relative to the current folder when inside it (a report that names no machine's layout)."""
    rel = os.path.relpath(os.path.abspath(path))
    return path if rel.startswith("..") else rel


def lr_factor(step: int, total: int, warmup: float = 0.08) -> float:
    """Linear warm-up over the first ``warmup`` of the run, then linear decay to zero (HuBERT's schedule)."""
    n_warm = max(1, int(warmup * total))
    return (step + 1) / n_warm if step < n_warm else max(0.0, (total - step) / max(1, total - n_warm))


def make_targets(
    iteration: int, wavs: list[torch.Tensor], train_idx: list[int], previous, k: int, layer: int, seed: int
) -> list[torch.Tensor]:
    """Cluster ids per frame of every utterance: k-means of MFCCs (iteration 1) or of ``layer`` of the previous
    iteration's model, fitted on the training utterances only."""
    if iteration == 1:
        frames = [mp.mfcc_frames(w) for w in tqdm(wavs, desc="MFCC", leave=False)]
    else:
        frames = [mp.layer_features(previous, w, layer) for w in tqdm(wavs, desc=f"layer {layer}", leave=False)]
    assign = mp.fit_kmeans([frames[i] for i in train_idx], k, seed)
    targets = [assign(f) for f in frames]
    for wav, target in zip(wavs, targets):  # the model's frames and the targets must pair one to one
        assert len(target) == mp.n_frames(len(wav)), (len(target), len(wav))
    return targets


def run_iteration(iteration: int, wavs, targets, train_idx, heldout_idx, args, k: int):
    """Train one iteration from the seeded initial weights; return (model, init checkpoint, fields, history,
    held-out evaluation)."""
    model, fields = mp.build_model(mp.hubert_config(k), k, args.seed)
    init_ckpt = mp.checkpoint(model, fields)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, args.steps))
    rng = np.random.default_rng([args.seed, iteration])
    crop = int(args.crop_s * SAMPLE_RATE)
    eval_idx = heldout_idx[: args.eval_utts]
    history = {"step": [], "loss": [], "acc": [], "eval_step": [], "eval_acc": []}
    bar = tqdm(range(args.steps), desc=f"iteration {iteration}", disable=args.quiet)
    for step in bar:
        pick = rng.choice(train_idx, size=args.batch_size, replace=False)
        batch = mp.make_batch([wavs[i] for i in pick], [targets[i] for i in pick], rng, crop)
        stats = mp.train_step(model, optimizer, batch, (args.seed, iteration, step))
        scheduler.step()
        history["step"].append(step + 1)
        history["loss"].append(stats["loss"])
        history["acc"].append(stats["acc"])
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            held = mp.masked_accuracy(model, [wavs[i] for i in eval_idx], [targets[i] for i in eval_idx], args.seed)
            history["eval_step"].append(step + 1)
            history["eval_acc"].append(held["acc"])
            bar.set_postfix(loss=f"{stats['loss']:.3f}", heldout_acc=f"{held['acc']:.3f}")
    held_wavs, held_targets = [wavs[i] for i in heldout_idx], [targets[i] for i in heldout_idx]
    init_model, _ = mp.build_model(fields["model_cfg"], k, args.seed)
    counts = np.bincount(torch.cat(held_targets).numpy(), minlength=k)
    evaluation = {
        "k": k,
        "trained": mp.masked_accuracy(model, held_wavs, held_targets, args.seed),
        "init": mp.masked_accuracy(init_model, held_wavs, held_targets, args.seed),
        "chance_uniform": 1.0 / k,
        "chance_majority": float(counts.max() / counts.sum()),
    }
    return model, init_ckpt, fields, history, evaluation


def save_checkpoint(ckpt: dict, path: str) -> None:
    with atomic_write(path, "wb") as handle:
        torch.save(ckpt, handle)


def run_probes(ckpt_path: str, init_path: str, rows, columns: list[str], seed: int) -> dict[str, dict]:
    """Linear probes of every layer for every label column, for the checkpoint and for its random init, both
    loaded through the toolkit's ``-u hubert_local -k`` path."""
    from distilmos.upstream.build import build_upstream

    from .probes import pooled_layers, probe_layers

    wavs = [load_audio(r["wav_path"]) for r in rows]
    is_train = [r["split"] == "train" for r in rows]
    out = {}
    for name, path in (("trained", ckpt_path), ("init", init_path)):
        features = pooled_layers(
            build_upstream("hubert_local", path), tqdm(wavs, desc=f"probe features ({name})", leave=False)
        )
        for column in columns:
            out.setdefault(column, {})[name] = probe_layers(features, [r.get(column, "") for r in rows], is_train, seed)
    return out


def plot_curves(histories: dict[int, dict], path: str) -> None:
    """Training loss and masked accuracy (training batches smoothed, held-out points) per iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for iteration, h in histories.items():
        window = max(1, len(h["loss"]) // 50)
        smooth = np.convolve(h["loss"], np.ones(window) / window, mode="valid")
        ax_loss.plot(h["step"][window - 1 :], smooth, label=f"iteration {iteration}")
        smooth_acc = np.convolve(h["acc"], np.ones(window) / window, mode="valid")
        ax_acc.plot(h["step"][window - 1 :], smooth_acc, label=f"iteration {iteration}: training batches")
        ax_acc.plot(h["eval_step"], h["eval_acc"], "o-", ms=3, label=f"iteration {iteration}: held out")
    ax_loss.set(xlabel="step", ylabel="loss (masked CE + feature penalty)", title="masked-prediction loss")
    ax_acc.set(xlabel="step", ylabel="accuracy on masked frames", title="masked-prediction accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=90)
    plt.close(fig)


def summary_lines(report: dict) -> list[str]:
    """The evidence as Markdown tables (printed, and put in the card)."""
    lines = [
        "| iteration | targets | k | held-out masked acc | same model at init | chance 1/k | chance (most frequent) |",
        "|---|---|---|---|---|---|---|",
    ]
    for it in report["iterations"]:
        e = it["heldout"]
        lines.append(
            f"| {it['iteration']} | {it['targets']} | {e['k']} | {e['trained']['acc']:.3f} | "
            f"{e['init']['acc']:.3f} | {e['chance_uniform']:.3f} | {e['chance_majority']:.3f} |"
        )
    for column, result in report["probes"].items():
        n = len(result["trained"]["layers"])
        lines += [
            "",
            (
                f"Linear probe of `{column}` ({result['trained']['classes']} classes, held-out accuracy; "
                f"chance {result['trained']['chance']:.3f}):"
            ),
            "",
            "| model | " + " | ".join(f"layer {i}" for i in range(n)) + " |",
            "|---" * (n + 1) + "|",
        ]
        for name in ("trained", "init"):
            label = "pretrained" if name == "trained" else "random init"
            lines.append(f"| {label} | " + " | ".join(f"{a:.3f}" for a in result[name]["layers"]) + " |")
    return lines


def write_card(report: dict, path: str) -> None:
    r = report
    lines = [
        f"# {os.path.basename(r['checkpoint'])}: a tiny HuBERT pretrained offline",
        "",
        (
            f"s3prl `HubertModel` in the `hubert_local` checkpoint format ({r['parameters']:,} parameters, "
            f"{r['config']['encoder_layers']} transformer layers of width {r['config']['encoder_embed_dim']}, "
            "the Base models' GroupNorm front end, 20 ms frames). Load it with "
            f"`-u hubert_local -k {os.path.basename(r['checkpoint'])}`."
        ),
        "",
        (
            f"- data: {r['pool']['train']} training utterances ({r['pool']['train_minutes']:.1f} min), "
            f"{r['pool']['heldout']} held out; sources {r['pool']['sources']}"
        ),
        (
            f"- training: {len(r['iterations'])} iteration(s) of {r['args']['steps']} steps, batch "
            f"{r['args']['batch_size']} x {r['args']['crop_s']} s crops, AdamW lr {r['args']['lr']}, seed "
            f"{r['args']['seed']}, {r['args']['threads']} thread(s); {r['seconds'] / 60:.1f} min on CPU"
        ),
        f"- sha256: `{r['sha256']}`",
        "",
        "## Evidence (held-out utterances)",
        "",
        *summary_lines(r),
        "",
        "## Reproduce",
        "",
        "```bash",
        r["command"],
        "```",
        "",
    ]
    with atomic_write(path) as handle:
        handle.write("\n".join(lines))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pool", required=True, help="pool CSV: wav_path, split (train/heldout), label columns")
    p.add_argument("--out", required=True, help="checkpoint to write (hubert_local format)")
    p.add_argument("--iterations", type=int, default=2, choices=(1, 2))
    p.add_argument("--k", default="50,100", help="clusters per iteration (comma separated)")
    p.add_argument("--layer", type=int, default=2, help="layer of the iteration-1 model clustered for iteration 2")
    p.add_argument("--steps", type=int, default=1500, help="training steps per iteration")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--crop_s", type=float, default=2.0, help="seconds of audio per training crop")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--eval_every", type=int, default=250, help="score held-out masked accuracy every N steps")
    p.add_argument("--eval_utts", type=int, default=64, help="held-out utterances scored during training")
    p.add_argument("--probe", default="voice,rate,degradation", help="label columns to probe ('' for none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (bit-identical reruns need the same)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--recipe", help="the command that reproduces this checkpoint, for the card (default: this command line)"
    )
    return p


def pretrain(args) -> dict:
    """Run every iteration, save the checkpoint, run the probes; return the report."""
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    ks = [int(v) for v in str(args.k).split(",")]
    if len(ks) < args.iterations:
        raise PoolError(f"--k gives {len(ks)} value(s) for {args.iterations} iteration(s)")
    rows = read_pool(args.pool)
    wavs = [load_audio(r["wav_path"]) for r in tqdm(rows, desc="audio", disable=args.quiet, leave=False)]
    short = [r["wav_path"] for r, w in zip(rows, wavs) if len(w) < mp.RECEPTIVE_FIELD + 10 * mp.FRAME_SHIFT]
    if short:
        raise PoolError(f"{len(short)} pool file(s) shorter than 0.2 s, e.g. {short[0]}")
    train_idx = [i for i, r in enumerate(rows) if r["split"] == "train"]
    heldout_idx = [i for i, r in enumerate(rows) if r["split"] == "heldout"]
    if len(train_idx) < args.batch_size:
        raise PoolError(f"{len(train_idx)} training utterances for a batch of {args.batch_size}")

    histories, iterations, previous = {}, [], None
    for iteration in range(1, args.iterations + 1):
        k = ks[iteration - 1]
        targets = make_targets(iteration, wavs, train_idx, previous, k, args.layer, args.seed)
        model, init_ckpt, fields, history, evaluation = run_iteration(
            iteration, wavs, targets, train_idx, heldout_idx, args, k
        )
        histories[iteration] = history
        iterations.append(
            {
                "iteration": iteration,
                "k": k,
                "heldout": evaluation,
                "targets": "MFCC k-means" if iteration == 1 else f"layer {args.layer} k-means",
                "final_train_loss": float(np.mean(history["loss"][-50:])),
            }
        )
        previous = model
    ckpt = mp.checkpoint(previous, fields)
    save_checkpoint(ckpt, args.out)

    stem = os.path.splitext(args.out)[0]
    columns = [c for c in args.probe.split(",") if c]
    with tempfile.TemporaryDirectory() as tmp:
        init_path = os.path.join(tmp, "init.pt")
        save_checkpoint(init_ckpt, init_path)
        probes = run_probes(args.out, init_path, rows, columns, args.seed) if columns else {}
    plot_curves(histories, stem + ".curves.png")

    minutes = sum(len(wavs[i]) for i in train_idx) / SAMPLE_RATE / 60
    report = {
        "checkpoint": shown_path(args.out),
        "sha256": sha256_file(args.out),
        "parameters": int(sum(p.numel() for p in previous.parameters())),
        "config": fields["model_cfg"],
        "pool": {
            "csv": shown_path(args.pool),
            "train": len(train_idx),
            "heldout": len(heldout_idx),
            "train_minutes": minutes,
            "sources": ", ".join(sorted({r.get("source", "?") for r in rows})),
        },
        "args": {k: v for k, v in vars(args).items() if k not in ("pool", "out", "recipe")},
        "iterations": iterations,
        "probes": probes,
        "seconds": time.perf_counter() - start,
        "command": args.recipe
        or "python -m distilmos.pretrain.tiny_hubert " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "torch": torch.__version__,
    }
    report["iterations"] = [
        dict(
            it,
            curve={
                "eval_step": histories[it["iteration"]]["eval_step"],
                "eval_acc": histories[it["iteration"]]["eval_acc"],
            },
        )
        for it in iterations
    ]
    with atomic_write(stem + ".report.json") as handle:
        json.dump(report, handle, indent=1)
    write_card(report, stem + ".card.md")
    return report


@reports_errors
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    report = pretrain(args)
    print("\n".join(summary_lines(report)))
    stem = os.path.splitext(args.out)[0]
    print(
        f"\n{args.out}: {os.path.getsize(args.out) / 2**20:.2f} MiB; card {stem}.card.md, curves "
        f"{stem}.curves.png, report {stem}.report.json; {report['seconds'] / 60:.1f} min"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
