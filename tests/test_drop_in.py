"""The drop-in promise (downstream/README.md, "Drop-in: the experts under stock s3prl"): each expert folder,
copied into a stock s3prl's ``downstream/``, trains and evaluates with s3prl's own ``run_downstream.py`` run from that
s3prl folder, as s3prl's docs do; what only this toolkit's runner does is refused there by name.

The stock s3prl is a copy of the installed package (its parent on ``PYTHONPATH``, so the copy is the one
imported); the upstream is the tiny WavLM, the data the generated corpus.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO
from downstream_helpers import short_run, train_argv

from distilmos.data.batching import STRICT_MAX_PAD
from distilmos.data.datalist import read_datalist
from distilmos.errors import ConfigError
from distilmos.eval.metrics import METRIC_KEYS
from distilmos.train.expert_base import MOSExpert

#: the experts and the flags each needs under any runner
EXPERTS = {
    "distilmos": ["-f"],
    "ssl_mos": ["-f", "-s", "last_hidden_state"],
    "salf_mos": ["-s", "last_hidden_state"],
    "moe_mos": [],
}
#: torch's switch back to full unpickling, which s3prl's own runner needs to load its checkpoints (README)
NO_WEIGHTS_ONLY = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
PLUGIN_RUNNER_NAMED = "needs the DistilMOS toolkit's run_downstream.py"


@pytest.fixture(scope="module")
def stock(tmp_path_factory):
    """A stock s3prl folder (a copy of the installed package) with the four expert folders dropped in."""
    import s3prl

    root = tmp_path_factory.mktemp("checkout")
    shutil.copytree(os.path.dirname(s3prl.__file__), root / "s3prl", ignore=shutil.ignore_patterns("__pycache__"))
    for name in EXPERTS:
        shutil.copytree(os.path.join(REPO, "downstream", name), root / "s3prl" / "downstream" / name)
    return root / "s3prl"


def _env(stock, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != NO_WEIGHTS_ONLY}
    env["PYTHONPATH"] = os.pathsep.join([str(stock.parent)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(extra)
    return env


def stock_run(stock, *argv, **env):
    """``python run_downstream.py ARGV`` in the stock s3prl folder."""
    return subprocess.run(
        [sys.executable, "run_downstream.py", *argv],
        cwd=stock,
        env=_env(stock, **env),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def token_store(demo_data, tiny_ckpts, tmp_path_factory):
    """A k=8 token store of the tiny WavLM over the training list (what ``python -m upstream_tokens fit``
    and ``dump`` write)."""
    from upstream_tokens.dump import dump_split
    from upstream_tokens.fit import fit_store

    out = str(tmp_path_factory.mktemp("tokens") / "wavlm_k8")
    train = os.path.join(demo_data["bvcc"], "train.csv")
    fit_store(train, "wavlm_local", tiny_ckpts["wavlm"], out, n_clusters=8, batch_size=64, progress=False)
    dump_split(train, out, "train", upstream_ckpt=tiny_ckpts["wavlm"], progress=False)
    return out


@pytest.fixture(scope="module")
def trained(stock, demo_data, tiny_ckpts, token_store, tmp_path_factory):
    """``get(name)``: the experiment folder of ``name`` trained (once) for two steps by s3prl's own runner."""
    root = tmp_path_factory.mktemp("exp")
    done = {}

    def get(name):
        if name not in done:
            extra = {
                # DistilMOS trains on its tokens, from the store built above
                "distilmos": {"config.downstream_expert.datarc.token_store": token_store},
                # it cannot stop early (test_early_stopping_is_refused_by_name): a fixed length instead
                "salf_mos": {"config.runner.early_stopping": None},
            }.get(name, {})
            expdir = root / name
            argv = train_argv(
                tiny_ckpts["wavlm"], expdir, name, *EXPERTS[name], overrides=short_run(demo_data["bvcc"], 2, **extra)
            )
            result = stock_run(stock, *argv)
            assert result.returncode == 0, result.stderr[-3000:]
            done[name] = expdir
        return done[name]

    return get


@pytest.fixture(scope="module")
def evaluated(stock, trained):
    """``get(name)``: ``(metrics, prediction rows)`` of s3prl's own ``-m evaluate -t test`` on the best
    checkpoint, run with the environment variable the README gives."""
    done = {}

    def get(name):
        if name not in done:
            expdir = trained(name)
            result = stock_run(
                stock,
                "-m",
                "evaluate",
                "-e",
                str(expdir / "best-states-val.ckpt"),
                "-t",
                "test",
                "--device",
                "cpu",
                **{NO_WEIGHTS_ONLY: "1"},
            )
            assert result.returncode == 0, result.stderr[-3000:]
            done[name] = _results(expdir, "test")
        return done[name]

    return get


def _results(expdir, split):
    with open(expdir / f"metrics_{split}.json") as handle:
        metrics = json.load(handle)
    with open(expdir / f"predictions_{split}.csv") as handle:
        rows = list(csv.DictReader(handle))
    return metrics, rows


def test_the_copy_is_the_s3prl_imported(stock):
    result = subprocess.run(
        [sys.executable, "-c", "import s3prl; print(s3prl.__file__)"],
        cwd=stock,
        env=_env(stock),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == str(stock / "__init__.py")


@pytest.mark.parametrize("name", list(EXPERTS))
def test_expert_trains_and_evaluates_under_stock_runner(name, trained, evaluated, demo_data):
    expdir = trained(name)
    assert (expdir / "best-states-val.ckpt").is_file() and (expdir / "metrics_val_best.json").is_file()
    metrics, rows = evaluated(name)
    test_ids = [u.sample_id for u in read_datalist(os.path.join(demo_data["bvcc"], "test.csv"))]
    assert set(METRIC_KEYS) | {"n_utt", "n_sys"} <= set(metrics)
    assert metrics["n_utt"] == len(test_ids) and sorted(r["sample_id"] for r in rows) == sorted(test_ids)
    assert all(math.isfinite(float(r["pred"])) for r in rows) and math.isfinite(metrics["utt_MSE"])


def test_stock_evaluate_needs_the_environment_variable(stock, trained):
    """What the README says and why: without it torch (>= 2.6, weights_only by default) refuses the
    ``argparse.Namespace`` that s3prl keeps in every checkpoint, before any expert is imported."""
    result = stock_run(
        stock, "-m", "evaluate", "-e", str(trained("ssl_mos") / "best-states-val.ckpt"), "-t", "test", "--device", "cpu"
    )
    assert result.returncode != 0
    assert "Weights only load failed" in result.stderr and "argparse.Namespace" in result.stderr


def test_toolkit_runner_evaluates_a_stock_checkpoint_with_the_check_on(trained, evaluated, tmp_path, monkeypatch):
    """The safer way of the README: this toolkit's run_downstream.py loads the stock runner's checkpoint
    with torch's check on (argparse.Namespace allowed, nothing else) and predicts what the stock runner did."""
    from distilmos.train.runner import run

    monkeypatch.delenv(NO_WEIGHTS_ONLY, raising=False)
    _, stock_rows = evaluated("distilmos")
    run(
        [os.path.join(REPO, "downstream")],
        [
            "-m",
            "evaluate",
            "-e",
            str(trained("distilmos") / "best-states-val.ckpt"),
            "-t",
            "test",
            "--device",
            "cpu",
            "-o",
            f"args.expdir={tmp_path}",
        ],
    )
    _, rows = _results(tmp_path, "test")
    ours = {r["sample_id"]: float(r["pred"]) for r in rows}
    assert ours.keys() == {r["sample_id"] for r in stock_rows}
    for row in stock_rows:
        assert ours[row["sample_id"]] == pytest.approx(float(row["pred"]), abs=1e-4)


def test_early_stopping_is_refused_by_name(stock, demo_data, tiny_ckpts, tmp_path):
    """SALF-MOS's config stops early, which only this toolkit's runner does: s3prl's own would silently train
    all of ``runner.total_steps`` (1,000,000 in that config)."""
    overrides = short_run(demo_data["bvcc"], 2)
    result = stock_run(
        stock, *train_argv(tiny_ckpts["wavlm"], tmp_path / "exp", "salf_mos", *EXPERTS["salf_mos"], overrides=overrides)
    )
    assert result.returncode != 0
    assert f"runner.early_stopping (patience 20 epochs) {PLUGIN_RUNNER_NAMED}" in result.stderr
    assert "would train all runner.total_steps (2)" in result.stderr
    assert "config.runner.early_stopping=None,,config.runner.total_steps=N" in result.stderr
    assert not list((tmp_path / "exp").glob("*.ckpt"))


def test_feature_cache_and_stale_padding_exact_without_the_toolkit_runner(tmp_path):
    """What s3prl's own runner builds (no ``plugin_runner``): a feature cache is refused by name, and an
    ``upstream_padding_exact`` restored from an older checkpoint's args does not lift the padding cap."""
    with pytest.raises(ConfigError, match=f"datarc.feature_cache=cache {PLUGIN_RUNNER_NAMED}"):
        MOSExpert(8, {"datarc": {"feature_cache": "cache"}}, str(tmp_path))
    MOSExpert(8, {"datarc": {"feature_cache": "cache"}}, str(tmp_path), plugin_runner=True)
    stale = MOSExpert(8, {"datarc": {}}, str(tmp_path), upstream_padding_exact=True)
    assert stale.eval_max_pad() == STRICT_MAX_PAD
    told = MOSExpert(8, {"datarc": {}}, str(tmp_path), upstream_padding_exact=True, plugin_runner=True)
    assert told.eval_max_pad() is None
    # evaluating a checkpoint trained with early stopping is fine under any runner
    MOSExpert(8, {"datarc": {}}, str(tmp_path), runner={"early_stopping": {"patience": 2}}, mode="evaluate")
    with pytest.raises(ConfigError, match=f"runner.early_stopping \\(patience 2 epochs\\) {PLUGIN_RUNNER_NAMED}"):
        MOSExpert(8, {"datarc": {}}, str(tmp_path), runner={"early_stopping": {"patience": 2}})
