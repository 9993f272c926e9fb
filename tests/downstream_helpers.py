"""What the tests that drive the experts share: importing an expert as s3prl would (``s3prl.downstream.<name>``),
the runner's command lines, and reading back what ``-m evaluate`` wrote."""

from __future__ import annotations

import csv
import importlib
import json
import os

from conftest import REPO

DOWNSTREAM = os.path.join(REPO, "downstream")  # this checkout's experts, as s3prl's downstream folder


def import_expert_module(name: str, module: str = "expert"):
    from distilmos.train.plugin import register

    register([DOWNSTREAM])
    return importlib.import_module(f"s3prl.downstream.{name}.{module}")


def short_run(data_dir, total_steps: int = 4, eval_batch: int = 8, **more) -> dict[str, object]:
    """``-o`` entries (``{key: value}``) of a short training run on the lists in ``data_dir``: no loader
    workers, batches of 4 (of ``eval_batch`` to evaluate), ``total_steps`` steps, validated, saved and logged
    every 2; ``more`` (full keys, ``config.``...) added or overriding."""
    values = {
        "config.downstream_expert.datarc.data_dir": data_dir,
        "config.downstream_expert.datarc.num_workers": 0,
        "config.downstream_expert.datarc.train_batch_size": 4,
        "config.downstream_expert.datarc.eval_batch_size": eval_batch,
        "config.runner.total_steps": total_steps,
        "config.runner.eval_step": 2,
        "config.runner.save_step": 2,
        "config.runner.log_step": 2,
    }
    return {**values, **more}


def train_argv(
    ckpt, expdir, expert: str = "distilmos", *flags: str, overrides: str | dict = "", upstream: str = "wavlm_local"
) -> list[str]:
    """``run_downstream.py -m train`` options: ``expert`` on the ``upstream`` checkpoint ``ckpt`` (None: an
    upstream without one) into ``expdir``, on the CPU, with ``-o overrides`` (a string, or ``{key: value}``
    joined with ``,,``) and then ``flags`` (``-f``, ``-v VARIANT``, ``-s LAYER``, ``-a`` ...)."""
    if isinstance(overrides, dict):
        overrides = ",,".join(f"{k}={v}" for k, v in overrides.items())
    argv = ["-m", "train", "-u", upstream, *(["-k", str(ckpt)] if ckpt else []), "-d", expert]
    argv += ["--device", "cpu", "-p", str(expdir)]
    return argv + (["-o", overrides] if overrides else []) + list(flags)


def evaluate(expdir, split: str, batch_size: int) -> tuple[dict[str, float], dict]:
    """Run ``-m evaluate`` of ``expdir``'s best checkpoint on ``split``; its predictions ``{sample_id: pred}``
    and metrics, read back from the files it wrote."""
    from distilmos.train.runner import run

    ckpt = os.path.join(expdir, "best-states-val.ckpt")
    eval_batch = f"config.downstream_expert.datarc.eval_batch_size={batch_size}"
    run([DOWNSTREAM], ["-m", "evaluate", "-e", ckpt, "-t", split, "--device", "cpu", "-o", eval_batch])
    with open(os.path.join(expdir, f"predictions_{split}.csv")) as handle:
        preds = {row["sample_id"]: float(row["pred"]) for row in csv.DictReader(handle)}
    with open(os.path.join(expdir, f"metrics_{split}.json")) as handle:
        return preds, json.load(handle)
