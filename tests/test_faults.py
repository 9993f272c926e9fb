"""The fault suite: what a hostile but realistic user did, and the one clear refusal each now gets.

A predictor file runs no code it names unless trusted; a garbled one is refused by name; two runs never
share an experiment folder or a store split; an unwritable output or experiment folder is refused before
any work; misspelt or out-of-range config keys are refused before the first step; a full disk ends a run
with one line. Each test failed on the code before its fix.
"""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from conftest import REPO
from downstream_helpers import import_expert_module, short_run, train_argv

from distilmos.errors import ConfigError, OutputError
from distilmos.locks import EXPERIMENT_LOCK
from distilmos.predictor import PredictorFileError, RemoteCodeError, downstreams, load
from distilmos.predictor import upstream_entry as parts
from distilmos.predictor.cli import main as predict_main
from distilmos.predictor.fileformat import write_predictor
from distilmos.train.runner import main, run

DOWNSTREAM = os.path.join(REPO, "downstream")
ENV = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _python(*args, cwd=REPO, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=ENV)


def _one_clear_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr[-3000:])


# ---- predictor files --------------------------------------------------------------------------------


def _blob(**sections):
    """A small valid predictor dict: the waveform itself as the one "layer", the SSL-MOS head on it."""
    from distilmos.models.ssl_mos import SSLMOSModel

    torch.manual_seed(0)
    expert_state = {f"model.{k}": v for k, v in SSLMOSModel(1).state_dict().items()}
    blob = {
        "card": {"downstream": {"expert": "ssl_mos"}},
        "upstream": parts.waveform_entry(),
        "featurizer": {
            "config": {
                "feature_selection": "hidden_states",
                "layer_selection": None,
                "normalize": False,
                "downsample_rate": 1,
                "output_dim": 1,
                "n_layers": None,
            },
            "state_dict": {},
        },
        "downstream": downstreams.make_entry("ssl_mos", expert_state)[0],
    }
    blob.update(sections)
    return blob


def _write(tmp_path, name, blob):
    path = str(tmp_path / name)
    write_predictor(blob, path)
    return path


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("wav") / "a.wav"
    sf.write(path, 0.1 * np.random.default_rng(0).standard_normal(8000).astype("float32"), 16000)
    return str(path)


SPEC = {"name": "beside:frames", "ckpt": None, "model_config": None}
BESIDE = """\
import os
import torch
open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "IMPORTED"), "w").close()
class Frames(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(160, 1)
    def get_downsample_rates(self, key):
        return 160
    def forward(self, wavs):
        x = torch.nn.utils.rnn.pad_sequence([w[: len(w) // 160 * 160].view(-1, 160) for w in wavs], True)
        return {"hidden_states": [self.proj(x)]}
def frames():
    return Frames()
"""


def _spec_blob(name):
    state = {"proj.weight": torch.zeros(1, 160), "proj.bias": torch.zeros(1)}
    featurizer = dict(_blob()["featurizer"], config=dict(_blob()["featurizer"]["config"], downsample_rate=160))
    return _blob(upstream={"kind": "spec", "spec": dict(SPEC, name=name), "state_dict": state}, featurizer=featurizer)


def test_a_file_naming_os_abort_is_refused_and_calls_nothing(tmp_path, wav):
    model = _write(tmp_path, "crafted.pt", _spec_blob("os:abort"))
    result = _python("-m", "distilmos.predictor", "score", model, wav, "-q", "--device", "cpu")
    # before: the scorer imported os and called abort() while rebuilding the upstream (killed by SIGABRT)
    _one_clear_error(result, model, "'os:abort'", "--trust_remote_code", "trust_remote_code=True")


def test_a_module_beside_the_file_runs_only_with_the_opt_in(tmp_path, wav, monkeypatch):
    (tmp_path / "beside.py").write_text(BESIDE)
    model = _write(tmp_path, "model.pt", _spec_blob("beside:frames"))
    marker = tmp_path / "IMPORTED"
    # scoring from the file's folder puts the module beside it on sys.path ('' with -m)
    refused = _python("-m", "distilmos.predictor", "score", "model.pt", wav, "-q", "--device", "cpu", cwd=tmp_path)
    _one_clear_error(refused, "model.pt", "'beside:frames'", "--trust_remote_code")
    assert not marker.exists()
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("beside", None)
    with pytest.raises(RemoteCodeError, match="trust_remote_code=True"):
        load(model, device="cpu")
    assert not marker.exists()

    trusted = _python(
        "-m",
        "distilmos.predictor",
        "score",
        "model.pt",
        wav,
        "-q",
        "--device",
        "cpu",
        "--trust_remote_code",
        cwd=tmp_path,
    )
    assert trusted.returncode == 0, trusted.stderr[-2000:]
    assert marker.exists() and trusted.stdout.startswith("wav_path,pred\n")
    marker.unlink()
    assert np.isfinite(load(model, device="cpu", trust_remote_code=True).predict(paths=[wav])[0])
    assert marker.exists()


def test_what_stays_allowed_and_what_needs_the_opt_in():
    entry = _spec_blob("fbank")["upstream"]
    assert parts.remote_code(entry) is None  # an s3prl hub name: its own registry, nothing imported by name
    assert parts.remote_code(parts.waveform_entry()) is None
    assert "unpickle" in parts.remote_code(dict(entry, spec=dict(SPEC, name="tera_local", ckpt="x.ckpt")))
    assert "import and call" in parts.remote_code(dict(entry, spec=dict(SPEC, name="pkg.mod:make")))


def _garbled():
    valid = _blob()
    down, feat = valid["downstream"], valid["featurizer"]
    return {
        "featurizer config a list": dict(featurizer=dict(feat, config=[1, 2])),
        "featurizer config with an unknown key": dict(featurizer=dict(feat, config=dict(feat["config"], evil=1))),
        "downstream kwargs of the wrong type": dict(downstream=dict(down, kwargs={"upstream_dim": "eight"})),
        "downstream kwargs another constructor argument": dict(
            downstream=dict(down, kwargs={"upstream_dim": 1, "bias": 3})
        ),
        "downstream state dict not a dict": dict(downstream=dict(down, state_dict=[1, 2, 3])),
        "downstream state dict of other weights": dict(downstream=dict(down, state_dict={"x": torch.zeros(2)})),
        "downstream name outside the registry": dict(downstream=dict(down, name="os:system")),
        "upstream section a string": dict(upstream="wavlm"),
        "embedded upstream checkpoint not a dict": dict(upstream={"kind": "wavlm", "spec": SPEC, "checkpoint": 7}),
    }


@pytest.mark.parametrize("garble", list(_garbled()))
def test_a_garbled_section_is_refused_as_not_a_predictor_file(tmp_path, wav, garble, capsys):
    assert predict_main(["score", _write(tmp_path, "ok.pt", _blob()), wav, "-q", "--device", "cpu"]) == 0
    capsys.readouterr()
    model = _write(tmp_path, "garbled.pt", _blob(**_garbled()[garble]))
    # before: a TypeError / AttributeError / KeyError traceback out of the rebuild
    assert predict_main(["score", model, wav, "-q", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert model in err and "not a valid predictor file" in err and err.count("\n") == 1, err
    with pytest.raises(PredictorFileError, match="not a valid predictor file"):
        load(model, device="cpu")


# ---- an output that cannot be written ----------------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    ["parent is a file", "a folder", "under /proc", "metrics parent is a file", "sidecar a folder", "part a folder"],
)
def test_score_refuses_an_unwritable_output_before_scoring(tmp_path, wav, where, capsys, monkeypatch):
    from distilmos.predictor.predictor import Predictor

    model = _write(tmp_path, "m.pt", _blob())
    (tmp_path / "file").write_text("")
    scores_csv = tmp_path / "list.csv"
    scores_csv.write_text(f"wav_path,score\n{wav},3.0\n")
    out = str(tmp_path / "s.csv")
    args = {  # the options, and the path the one error names
        "parent is a file": (["-o", str(tmp_path / "file" / "s.csv")], str(tmp_path / "file" / "s.csv")),
        "a folder": (["-o", str(tmp_path)], str(tmp_path)),
        "under /proc": (["-o", "/proc/distilmos-scores.csv"], "/proc/distilmos-scores.csv"),
        "metrics parent is a file": (["-o", out, "--metrics", str(tmp_path / "file" / "m.json")], "m.json"),
        "sidecar a folder": (["-o", out], out + ".failed.tsv"),
        "part a folder": (["-o", out, "--nshard", "2", "--rank", "1"], out + ".part-1-of-2"),
    }
    argv, named = args[where]
    if where in ("sidecar a folder", "part a folder"):
        os.mkdir(named)  # a file the run would write beside -o: checked as -o is
    scored = []
    monkeypatch.setattr(Predictor, "score_chunks", lambda self, paths, **kw: scored.append(paths) or iter(()))
    # before: every file was scored, then writing the output raised an OSError traceback
    assert predict_main(["score", model, str(scores_csv), "-q", "--device", "cpu", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("distilmos-predict: error:") == 1 and f"{named} " in err, err
    assert ("is a folder; give a file name" if "folder" in where else "cannot be written") in err, err
    assert not scored


def test_the_write_probe_sees_a_read_only_folder(tmp_path, monkeypatch):
    import tempfile

    from distilmos.fileio import check_writable_dir, check_writable_file

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(OutputError, match=f"experiment folder {tmp_path} cannot be written.*Read-only file system"):
        check_writable_dir(tmp_path, "experiment folder")
    with pytest.raises(OutputError, match="output file .*s.csv cannot be written.*Read-only"):
        check_writable_file(tmp_path / "s.csv")


# ---- training: the experiment folder and the config ---------------------------------------------------


def _train_argv(expdir, ckpt, data_dir, *overrides, steps=1, config=None):
    """DistilMOS without tokens for ``steps`` steps, nothing validated, saved or logged on the way, a small head;
    ``overrides`` (``key=value``) last, ``config`` as ``-c``."""
    values = short_run(data_dir, steps, **{f"config.runner.{k}_step": 1000 for k in ("eval", "save", "log")})
    values["config.downstream_expert.modelrc.hidden_dim"] = 16
    joined = ",,".join([f"{k}={v}" for k, v in values.items()] + list(overrides))
    config_flag = ["-c", config] if config else []
    return train_argv(ckpt, expdir, "distilmos", "-v", "no_token", "-f", *config_flag, overrides=joined)


def _run_downstream(*argv, cwd=REPO, **kwargs):
    return subprocess.Popen(
        [sys.executable, os.path.join(REPO, "run_downstream.py"), *argv],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _wait_for(path, process, seconds=120):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_a_second_training_run_into_the_folder_is_refused_naming_the_first(tmp_path, tiny_ckpts, demo_data):
    expdir = tmp_path / "exp"
    first = _run_downstream(
        *_train_argv(expdir, tiny_ckpts["wavlm"], demo_data["bvcc"], "config.runner.log_step=1", steps=100000)
    )
    try:
        _wait_for(expdir / "log.jsonl", first)  # training under way (its first step logged)
        second = _run_downstream(*_train_argv(expdir, tiny_ckpts["wavlm"], demo_data["bvcc"], steps=2))
        _, err = second.communicate(timeout=120)
        # before: both trained into the folder and exited 0
        assert second.returncode == 2 and "Traceback" not in err, err[-3000:]
        assert (
            f"experiment folder {expdir} is in use by another run (pid {first.pid} on {socket.gethostname()}, started "
            in err
            and "run_downstream.py -m train" in err
        ), err
        assert err.count("error:") == 1
    finally:
        first.send_signal(signal.SIGTERM)  # stops after its step, saves, exits 75
        first.communicate(timeout=120)
    assert first.returncode == 75 and not (expdir / EXPERIMENT_LOCK).exists()
    # the folder is free again: a resumed run of it (-a) trains on
    step = max(int(p.split("-")[1].split(".")[0]) for p in os.listdir(expdir) if p.startswith("states-"))
    run([DOWNSTREAM], _train_argv(expdir, tiny_ckpts["wavlm"], demo_data["bvcc"], steps=step + 1) + ["-a"])
    assert os.path.isfile(expdir / f"states-{step + 1}.ckpt") and not (expdir / EXPERIMENT_LOCK).exists()


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _stale_record(path, pid):
    record = {
        "pid": pid,
        "host": socket.gethostname(),
        "started": "2025-01-01T00:00:00+00:00",
        "command": "python run_downstream.py -m train (killed)",
    }
    path.write_text(json.dumps(record) + "\n")


def test_a_stale_experiment_lock_is_taken_over_with_a_warning(tmp_path, tiny_ckpts, demo_data, capfd):
    expdir = tmp_path / "exp"
    expdir.mkdir()
    pid = _dead_pid()
    _stale_record(expdir / EXPERIMENT_LOCK, pid)
    run([DOWNSTREAM], _train_argv(expdir, tiny_ckpts["wavlm"], demo_data["bvcc"]))
    err = capfd.readouterr().err
    assert (
        f"taking over the lock of experiment folder {expdir} left by a run that did not end cleanly (pid {pid} "
        f"on {socket.gethostname()}"
        in err
        and "that process is gone" in err
    ), err
    assert os.path.isfile(expdir / "states-1.ckpt") and not (expdir / EXPERIMENT_LOCK).exists()


def _main_error(capsys, argv):
    """The one message and exit status of ``run_downstream.py`` (its ``main``, in this process)."""
    with pytest.raises(SystemExit) as caught:
        main([DOWNSTREAM], argv)
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert caught.value.code == 2 and len(errors) == 1, errors
    return errors[0]


def test_an_unwritable_experiment_folder_is_refused_up_front(tmp_path, tiny_ckpts, demo_data, capsys):
    (tmp_path / "file").write_text("")
    expdir = tmp_path / "file" / "exp"
    # before: s3prl's makedirs raised a FileExistsError traceback
    error = _main_error(capsys, _train_argv(expdir, tiny_ckpts["wavlm"], demo_data["bvcc"]))
    assert f"experiment folder {expdir} cannot be written: {tmp_path / 'file'} is not a folder" in error


def test_a_misspelt_runner_key_is_refused_before_the_first_step(tmp_path, tiny_ckpts, demo_data, capsys):
    config = yaml.safe_load(open(os.path.join(DOWNSTREAM, "distilmos", "config_no_token.yaml")))
    config["runner"]["gradient_cliping"] = config["runner"].pop("gradient_clipping")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    argv = _train_argv(tmp_path / "exp", tiny_ckpts["wavlm"], demo_data["bvcc"], config=str(tmp_path / "config.yaml"))
    # before: a KeyError traceback after the first step
    error = _main_error(capsys, argv)
    assert "unknown key in runner: 'gradient_cliping' (did you mean 'gradient_clipping'?)" in error
    assert not [p for p in os.listdir(tmp_path / "exp") if p.endswith((".ckpt", ".yaml"))]


@pytest.mark.parametrize(
    "override, fragment",
    [
        (
            "config.downstream_expert.datarc.train_bach_size=2",
            "downstream_expert.datarc: 'train_bach_size' (did you mean 'train_batch_size'?)",
        ),
        ("config.runner.totl_steps=5", "runner: 'totl_steps' (did you mean 'total_steps'?)"),
        ("config.downstream_expert.modelrc.hiden_dim=32", "modelrc: 'hiden_dim' (did you mean 'hidden_dim'?)"),
        ("config.optimizer.weight_decy=0.1", "torch.optim.AdamW): 'weight_decy' (did you mean 'weight_decay'?)"),
        ("config.scheduler.pct_strt=0.1", "scheduler (OneCycleLR): 'pct_strt' (did you mean 'pct_start'?)"),
    ],
)
def test_misspelt_config_keys_are_refused_with_the_closest_valid_one(
    tmp_path, tiny_ckpts, demo_data, override, fragment
):
    # before: ignored in silence (the default was used), or a TypeError traceback from the optimizer
    with pytest.raises(ConfigError, match="unknown key") as caught:
        run([DOWNSTREAM], _train_argv(tmp_path / "exp", tiny_ckpts["wavlm"], demo_data["bvcc"], override))
    assert fragment in str(caught.value)
    assert not [p for p in os.listdir(tmp_path / "exp") if p.endswith(".ckpt")]


@pytest.mark.parametrize(
    "override",
    [
        "config.runner.total_steps=0",
        "config.runner.total_steps=-3",
        "config.runner.eval_step=0",
        "config.runner.save_step=0",
        "config.runner.gradient_accumulate_steps=0",
    ],
)
def test_out_of_range_runner_numbers_are_refused_up_front(tmp_path, tiny_ckpts, demo_data, override):
    key, value = override.split(".")[-1].split("=")
    # before: a ValueError traceback from the scheduler, or a ZeroDivisionError after the first step
    with pytest.raises(ConfigError, match=f"runner.{key} must be a whole number >= 1, not {value}"):
        run([DOWNSTREAM], _train_argv(tmp_path / "exp", tiny_ckpts["wavlm"], demo_data["bvcc"], override))
    assert os.listdir(tmp_path / "exp") == []  # refused before anything was written


def test_every_shipped_config_and_expert_default_passes_the_key_check(tmp_path):
    from distilmos import registry
    from distilmos.train.runner import check_config

    for name, expert in registry.EXPERTS.items():
        cls = import_expert_module(name).DownstreamExpert
        for config_name in sorted({v.config for v in expert.variants}):
            config = yaml.safe_load(open(os.path.join(DOWNSTREAM, name, config_name)))
            check_config(config)
            section = config["downstream_expert"]
            assert set(section) <= set(cls.SECTIONS), (name, config_name)
            assert set(section["datarc"]) <= set(cls.DATARC), (name, config_name)
            assert set(section["modelrc"]) <= set(cls.MODELRC), (name, config_name)


# ---- token stores and feature caches: one dump per split ----------------------------------------------


@pytest.fixture(scope="module")
def token_store(demo_data, tiny_ckpts, tmp_path_factory):
    from upstream_tokens.fit import fit_store

    store = str(tmp_path_factory.mktemp("faults_tokens") / "store")
    fit_store(
        os.path.join(demo_data["bvcc"], "val.csv"),
        "wavlm_local",
        tiny_ckpts["wavlm"],
        store,
        n_clusters=4,
        batch_size=64,
        progress=False,
    )
    return store


HELD = """\
import os, sys, time
from upstream_tokens.extract import Batching
from upstream_tokens.{module} import {function}
go = sys.argv[1]

def wait(batch):  # after its first part: hold the split until the test says go
    open(go + ".waiting", "w").close()
    while not os.path.exists(go):
        time.sleep(0.05)

{function}({args}, batching=Batching(max_batch_utts=4), progress=False, on_part=wait)
"""


def _held_dump(tmp_path, module, function, args):
    script = tmp_path / "held.py"
    script.write_text(HELD.format(module=module, function=function, args=args))
    go = str(tmp_path / "go")
    process = subprocess.Popen([sys.executable, str(script), go], cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True)
    _wait_for(go + ".waiting", process)
    return process, go


@pytest.mark.parametrize("command", ["dump", "cache"])
def test_a_second_dump_into_the_same_split_is_refused_naming_the_first(
    tmp_path, demo_data, tiny_ckpts, token_store, command
):
    csv = os.path.join(demo_data["bvcc"], "val.csv")
    if command == "dump":
        store = str(tmp_path / "store")
        subprocess.run(["cp", "-r", token_store, store], check=True)
        first, go = _held_dump(tmp_path, "dump", "dump_split", f"{csv!r}, {store!r}, 'val'")
        upstream = []  # the store's
    else:
        store = str(tmp_path / "cache")
        upstream = ["-u", "wavlm_local", "-k", tiny_ckpts["wavlm"]]
        first, go = _held_dump(
            tmp_path,
            "feature_cache",
            "dump_features",
            f"{csv!r}, {store!r}, 'val', 'wavlm_local', {tiny_ckpts['wavlm']!r}",
        )
    split = ["--csv", csv, "--store", store, "--split", "val"]
    argv = [command, *split, *upstream, "--device", "cpu", "--quiet", "--max_batch_utts", "4"]
    try:
        second = _python("-m", "upstream_tokens", *argv, timeout=300)
        # before: both ran; one crashed with a FileNotFoundError / Directory not empty traceback
        _one_clear_error(
            second,
            f"split 'val' of {store} is in use by another run (pid {first.pid} on {socket.gethostname()}, started ",
        )
    finally:
        open(go, "w").close()
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    assert not os.path.exists(os.path.join(store, "val.parts")) and os.path.isfile(os.path.join(store, "val.npy"))
    assert not os.path.exists(os.path.join(store, ".val.lock"))


def test_a_stale_split_lock_is_taken_over_with_a_warning(tmp_path, demo_data, token_store, capsys):
    from upstream_tokens.cli import main as tokens_main

    store = tmp_path / "store"
    subprocess.run(["cp", "-r", token_store, str(store)], check=True)
    pid = _dead_pid()
    _stale_record(store / ".val.lock", pid)
    assert (
        tokens_main(
            [
                "dump",
                "--csv",
                os.path.join(demo_data["bvcc"], "val.csv"),
                "--store",
                str(store),
                "--split",
                "val",
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert (
        f"taking over the lock of split 'val' of {store} left by a run that did not end cleanly (pid {pid} " in err
        and "that process is gone" in err
    ), err
    assert not (store / ".val.lock").exists() and (store / "val.npy").is_file()


# ---- a full disk while training writes its metrics -----------------------------------------------------


def test_a_disk_that_fills_while_writing_metrics_is_one_line(tmp_path, tiny_ckpts, demo_data, capsys, monkeypatch):
    from distilmos.eval import results

    def full(expdir, split, *args, **kwargs):  # the disk fills while the best validation's metrics are written
        raise OSError(errno.ENOSPC, "No space left on device", os.path.join(expdir, f"metrics_{split}.json"))

    monkeypatch.setattr(results, "write_results", full)
    expdir = tmp_path / "exp"
    # before: an OSError traceback (exit 1)
    error = _main_error(capsys, _train_argv(expdir, tiny_ckpts["wavlm"], demo_data["bvcc"], steps=2))
    assert f"no space left in {expdir} writing {expdir / 'metrics_val_best.json'}" in error
    assert "the previous checkpoints are intact" in error
