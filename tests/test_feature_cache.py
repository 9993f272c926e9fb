"""The feature cache: a frozen upstream's hidden states dumped once, and runs that train and evaluate from
it exactly as with the upstream in the loop."""

import csv
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import DURATIONS, REPO, write_corpus
from downstream_helpers import DOWNSTREAM, train_argv
from test_tokens import store_files

from distilmos.data.audio import load_audio
from distilmos.errors import ConfigError
from distilmos.train.runner import main as run_downstream_main
from distilmos.upstream.build import build_upstream
from upstream_tokens import cli
from upstream_tokens.extract import Batching
from upstream_tokens.feature_cache import FeatureCacheError, FeatureStore, dump_features
from upstream_tokens.store import TokenStoreError

SMALL = Batching(max_batch_seconds=3.0, max_batch_utts=4)


@pytest.fixture(scope="module")
def cache(corpus, tiny_ckpts, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("caches") / "wavlm")
    dump_features(corpus, out, "val", "wavlm_local", tiny_ckpts["wavlm"], batching=SMALL, progress=False)
    return out


def test_cache_holds_every_hidden_state_as_the_upstream_gives_it_alone(cache, corpus, tiny_ckpts):
    store = FeatureStore(cache)
    meta = store.meta
    assert meta["kind"] == "features" and meta["layers"] == [0, 1, 2, 3] and meta["feature_dim"] == 64
    assert meta["feature_dtype"] == "float32" and len(meta["upstream_ckpt_sha256"]) == 64
    assert meta["padding_exact"] is True and store.split_sizes() == {"val": 12}
    upstream = build_upstream("wavlm_local", tiny_ckpts["wavlm"]).eval()
    rows = list(csv.DictReader(open(corpus)))
    for row in rows[:5]:
        wav = load_audio(os.path.join(os.path.dirname(corpus), row["wav_path"]))
        with torch.no_grad():
            alone = torch.stack([h[0] for h in upstream([wav])["hidden_states"]])
        got = store.features(row["sample_id"])
        assert got.dtype == torch.float32 and got.shape == alone.shape
        assert (got - alone).abs().max() <= 1e-5


def test_half_precision_is_an_option(corpus, tiny_ckpts, cache, tmp_path):
    out = str(tmp_path / "half")
    dump_features(
        corpus,
        out,
        "val",
        "wavlm_local",
        tiny_ckpts["wavlm"],
        dtype="float16",
        layers="3",
        batching=SMALL,
        progress=False,
    )
    half, full = FeatureStore(out), FeatureStore(cache)
    assert half.layers == [3] and half.dtype == np.float16
    sample = half.sample_ids()[0]
    assert half.features(sample).dtype == torch.float32
    assert torch.allclose(half.features(sample)[0], full.features(sample)[3], atol=2e-2, rtol=1e-2)
    assert os.path.getsize(os.path.join(out, "val.npy")) < os.path.getsize(os.path.join(cache, "val.npy")) / 7


def test_killed_dump_resumes_to_the_same_bytes(corpus, tiny_ckpts, cache, tmp_path):
    out = str(tmp_path / "killed")

    def die(batch):
        if batch >= 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dump_features(
            corpus, out, "val", "wavlm_local", tiny_ckpts["wavlm"], batching=SMALL, progress=False, on_part=die
        )
    assert os.path.isdir(os.path.join(out, "val.parts")) and not os.path.isfile(os.path.join(out, "val.npy"))
    dump_features(corpus, out, "val", "wavlm_local", tiny_ckpts["wavlm"], batching=SMALL, progress=False)
    ours, reference = store_files(out), store_files(cache)
    assert ours.keys() == reference.keys()
    assert all(ours[k] == reference[k] for k in ours if k != "summary.json")


def test_cache_dump_killed_hard_resumes_to_the_same_bytes(tiny_ckpts, tmp_path):
    """SIGKILL of `python -m upstream_tokens cache` once its first part file is there (no cleanup at all),
    then a rerun: every file of the store equals an uninterrupted dump's (meta.json holds no timestamp)."""
    corpus = write_corpus(str(tmp_path / "corpus"), durations=DURATIONS * 4)  # 48 one-utterance batches
    out, reference = str(tmp_path / "killed"), str(tmp_path / "reference")
    args = [
        "cache",
        "--csv",
        corpus,
        "--split",
        "val",
        "-u",
        "wavlm_local",
        "-k",
        tiny_ckpts["wavlm"],
        "--max_batch_utts",
        "1",
        "--device",
        "cpu",
        "--quiet",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "upstream_tokens", *args, "--store", out],
        cwd=REPO,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not glob.glob(os.path.join(out, "val.parts", "b*.npz")) and proc.poll() is None:
            assert time.monotonic() < deadline, "no part file after 120 s"
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        err = proc.communicate(timeout=60)[1].decode()
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    assert not os.path.exists(os.path.join(out, "val.npy"))
    done = [n for n in os.listdir(os.path.join(out, "val.parts")) if n.endswith(".npz")]
    assert 1 <= len(done) < 48
    assert cli.main([*args, "--store", out]) == 0
    assert cli.main([*args, "--store", reference]) == 0
    ours, theirs = store_files(out), store_files(reference)
    assert sorted(ours) == ["meta.json", "summary.json", "val.index.json", "val.npy"] == sorted(theirs)
    assert ours == theirs


def test_the_dump_prints_its_disk_use_before_it_starts(corpus, tiny_ckpts, tmp_path, capsys):
    """Printed (not logged, so whatever the logging set-up) before the first part: frames x layers x dims x
    bytes, and their product."""
    before_first_part = []

    def first_part(batch):
        if not before_first_part:
            before_first_part.append(capsys.readouterr().err)

    summary = dump_features(
        corpus,
        str(tmp_path / "disk"),
        "val",
        "wavlm_local",
        tiny_ckpts["wavlm"],
        batching=SMALL,
        progress=False,
        on_part=first_part,
    )
    line = next(line for line in before_first_part[0].splitlines() if line.startswith("cache val: "))
    frames, n_bytes = summary["total_frames"], summary["bytes"]
    assert n_bytes == frames * 4 * 64 * 4
    assert f"cache val: {frames} frames x 4 layers x 64 dims x 4 bytes = {n_bytes} bytes" in line


def test_a_cache_of_another_upstream_checkpoint_or_layers_is_refused(corpus, tiny_ckpts, cache, tmp_path):
    with pytest.raises(FeatureCacheError, match="upstream checkpoint"):
        dump_features(corpus, cache, "test", "hubert_local", tiny_ckpts["hubert"], progress=False)
    with pytest.raises(FeatureCacheError, match="layers: cache has"):
        dump_features(corpus, cache, "test", "wavlm_local", tiny_ckpts["wavlm"], layers="3", progress=False)
    store = FeatureStore(cache)
    with pytest.raises(FeatureCacheError, match=r"missing \[5\]"):
        store.check("wavlm_local", tiny_ckpts["wavlm"], layers=[5])
    with pytest.raises(FeatureCacheError, match="not a feature cache"):
        FeatureStore(str(tmp_path))
    assert not issubclass(FeatureCacheError, TokenStoreError)


def test_the_dump_refuses_to_start_without_room(corpus, tiny_ckpts, tmp_path, monkeypatch, caplog):
    import shutil as shutil_module
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    out = str(tmp_path / "full")
    with pytest.raises(FeatureCacheError, match=r"not enough free space .* frames x 4 layers x 64 dims x 4 bytes"):
        dump_features(corpus, out, "val", "wavlm_local", tiny_ckpts["wavlm"], progress=False)
    assert not os.path.isdir(os.path.join(out, "val.parts"))


def test_cli_cache_and_info(corpus, tiny_ckpts, tmp_path, capsys):
    out = str(tmp_path / "cli")
    common = [
        "--csv",
        corpus,
        "--store",
        out,
        "-u",
        "wavlm_local",
        "-k",
        tiny_ckpts["wavlm"],
        "--quiet",
        "--device",
        "cpu",
    ]
    assert cli.main(["cache", *common, "--split", "val", "--layers", "2,3"]) == 0
    capsys.readouterr()
    assert cli.main(["info", "--store", out]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["meta"]["layers"] == [2, 3] and info["splits"] == {"val": 12}
    assert cli.main(["cache", *common, "--split", "val", "--dtype", "float16"]) == 2
    assert "dtype: cache has float32, run uses float16" in capsys.readouterr().err


# ---- runs from the cache ------------------------------------------------------------------------------


def _overrides(data_dir, **extra):
    values = {
        "config.downstream_expert.datarc.data_dir": data_dir,
        "config.downstream_expert.datarc.num_workers": 0,
        "config.downstream_expert.datarc.train_batch_size": 4,
        "config.downstream_expert.datarc.eval_batch_size": 8,
        "config.runner.total_steps": 4,
        "config.runner.eval_step": 2,
        "config.runner.log_step": 2,
    }
    values.update(extra)
    return ",,".join(f"{k}={v}" for k, v in values.items())


def _run(expdir, data_dir, ckpt, downstream, extra_args, cache=None, fine_tune=False):
    extra = {"config.downstream_expert.datarc.feature_cache": cache} if cache else {}
    flags = [*extra_args, *(["-f"] if fine_tune else [])]
    argv = train_argv(ckpt, expdir, downstream, *flags, overrides=_overrides(data_dir, **extra))
    run_downstream_main([DOWNSTREAM], argv)
    run_downstream_main(
        [DOWNSTREAM],
        ["-m", "evaluate", "-e", os.path.join(expdir, "best-states-val.ckpt"), "-t", "test", "--device", "cpu"],
    )
    with open(os.path.join(expdir, "predictions_test.csv")) as handle:
        preds = {row["sample_id"]: float(row["pred"]) for row in csv.DictReader(handle)}
    metrics = {
        name: json.load(open(os.path.join(expdir, name)))
        for name in sorted(os.listdir(expdir))
        if name.startswith("metrics_")
    }
    return preds, metrics


@pytest.mark.parametrize(
    "downstream,extra_args,layers",
    [
        ("ssl_mos", ("-s", "last_hidden_state"), "3"),
        ("distilmos", ("-v", "no_token"), "hidden_states"),
    ],
)
def test_a_run_from_the_cache_equals_the_run_with_the_upstream(
    demo_data, tiny_ckpts, tmp_path, downstream, extra_args, layers
):
    data_dir = demo_data["bvcc"]
    store = str(tmp_path / "cache")
    for split in ("train", "val", "test"):
        dump_features(
            os.path.join(data_dir, f"{split}.csv"),
            store,
            split,
            "wavlm_local",
            tiny_ckpts["wavlm"],
            layers=layers,
            progress=False,
        )
    live, live_metrics = _run(str(tmp_path / "live"), data_dir, tiny_ckpts["wavlm"], downstream, extra_args)
    cached, cached_metrics = _run(
        str(tmp_path / "cached"), data_dir, tiny_ckpts["wavlm"], downstream, extra_args, cache=store
    )
    assert live.keys() == cached.keys()
    assert max(abs(live[k] - cached[k]) for k in live) <= 1e-5
    assert live_metrics.keys() == cached_metrics.keys()
    for name in live_metrics:
        for key, value in live_metrics[name].items():
            if isinstance(value, float):
                assert value == pytest.approx(cached_metrics[name][key], abs=1e-5), (name, key)


def _refused(tmp_path, demo_data, tiny_ckpts, capsys, downstream, extra_args, **options) -> str:
    """Train ``downstream`` on the demo BVCC lists; the run must stop with exit status 2. Returns stderr."""
    with pytest.raises(SystemExit) as exit_info:
        _run(str(tmp_path / "run"), demo_data["bvcc"], tiny_ckpts["wavlm"], downstream, extra_args, **options)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_fine_tuning_from_a_cache_is_refused(demo_data, tiny_ckpts, cache, tmp_path, capsys):
    err = _refused(
        tmp_path, demo_data, tiny_ckpts, capsys, "ssl_mos", ("-s", "last_hidden_state"), cache=cache, fine_tune=True
    )
    assert f"datarc.feature_cache={cache}" in err and "-f fine-tunes the upstream" in err
    assert "stale after the first step" in err and "drop -f, or drop the cache" in err


def test_mse_distill_from_a_cache_is_refused(demo_data, tiny_ckpts, cache, tmp_path, capsys):
    """Its frozen teacher runs on the waveforms, which a cache does not hold: refused, not fed features."""
    err = _refused(tmp_path, demo_data, tiny_ckpts, capsys, "distilmos", ("-v", "mse_distill"), cache=cache)
    assert "variant 'mse_distill' cannot train from datarc.feature_cache" in err
    assert "teacher upstream runs on each batch's waveforms" in err and "Traceback" not in err


def test_a_split_missing_from_the_cache_is_named(demo_data, tiny_ckpts, cache, tmp_path, capsys):
    err = _refused(tmp_path, demo_data, tiny_ckpts, capsys, "ssl_mos", ("-s", "last_hidden_state"), cache=cache)
    assert "not in feature cache" in err and "split 'train'" in err and "upstream_tokens cache" in err


def test_needed_layers():
    from distilmos.upstream.cached import needed_layers

    assert needed_layers("hidden_states", None, 3) == [0, 1, 2, 3]
    assert needed_layers("hidden_states", -1, 3) == [3]
    assert needed_layers("last_hidden_state", None, 12) == [12]
    assert needed_layers("hidden_state_4", None, 12) == [4]
    with pytest.raises(ConfigError, match="cannot be read from a feature cache"):
        needed_layers("PR", None, 12)
