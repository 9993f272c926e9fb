"""Training never loses work: fault injection on short CPU runs with the tiny WavLM.

The last step always counts; a full disk during a save leaves the previous checkpoint whole; a run that
cannot save is refused; SIGTERM stops after the step in flight with a resumable checkpoint and status 75,
and the resumed run ends with exactly the weights and metrics of a run that never stopped; kill -9
between steps or during a save resumes from the newest whole checkpoint; a NaN wav is named with its
data-list row, or skipped and reported.
"""
import errno
import glob
import json
import os
import random
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from distilmos import checkpoints
from distilmos.audio import AudioError
from distilmos.checkpoints import CheckpointError
from distilmos.datalist import read_datalist, write_datalist
from distilmos.preemption import EXIT_PREEMPTED
from distilmos.runner import run

from conftest import REPO

DOWNSTREAM = os.path.join(REPO, "downstream")
TOTAL = 6


def _argv(expdir, ckpt, data_dir, resume=False, **runner):
    values = {"total_steps": TOTAL, "eval_step": 3, "save_step": 2, "log_step": 2, "max_keep": 1}
    values.update(runner)
    overrides = [f"config.downstream_expert.datarc.data_dir={data_dir}",
                 "config.downstream_expert.datarc.num_workers=0",
                 "config.downstream_expert.datarc.train_batch_size=4",
                 "config.downstream_expert.datarc.eval_batch_size=8"]
    overrides += [f"config.runner.{k}={v}" for k, v in values.items()]
    argv = ["-m", "train", "-u", "wavlm_local", "-k", ckpt, "-d", "distilmos", "-v", "no_token", "-f",
            "--device", "cpu", "-p", str(expdir), "-o", ",,".join(overrides)]
    return argv + (["-a"] if resume else [])


def _train(expdir, ckpt, data_dir, **kwargs):
    run([DOWNSTREAM], _argv(expdir, ckpt, data_dir, **kwargs))


def _load(path):
    checkpoints_ok = torch.load(path, map_location="cpu", weights_only=True)
    return checkpoints_ok


def _assert_same_training(a, b):
    """Two checkpoints hold bit-identical weights, optimizer state and step."""
    assert a["Step"] == b["Step"]
    for key in ("Upstream", "Featurizer", "Downstream"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"
    for sa, sb in zip(a["Optimizer"]["state"].values(), b["Optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa if isinstance(sa[k], torch.Tensor))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_ckpts, demo_data):
    """An uninterrupted run of TOTAL steps: its last checkpoint and its best validation metrics."""
    expdir = tmp_path_factory.mktemp("reference")
    _train(expdir, tiny_ckpts["wavlm"], demo_data["bvcc"])
    with open(expdir / "metrics_val_best.json") as handle:
        best = json.load(handle)
    return {"ckpt": _load(expdir / f"states-{TOTAL}.ckpt"), "best": best, "expdir": expdir}


def test_the_last_step_always_counts(tmp_path, tiny_ckpts, demo_data):
    # a quick trial: 5 steps, validation and saving left at every 1000 steps
    _train(tmp_path, tiny_ckpts["wavlm"], demo_data["bvcc"], total_steps=5, eval_step=1000, save_step=1000)
    assert os.path.isfile(tmp_path / "best-states-val.ckpt")
    assert _load(tmp_path / "states-5.ckpt")["Step"] == 5
    assert [json.loads(line)["step"] for line in open(tmp_path / "log.jsonl") if '"val"' in line] == [5]


def test_checkpoints_carry_what_an_exact_resume_needs(reference):
    ckpt = reference["ckpt"]
    assert ckpt["Step"] == TOTAL and checkpoints.BATCH_IN_EPOCH in ckpt
    assert len(ckpt[checkpoints.RNG]) == 1 and set(ckpt[checkpoints.RNG][0]) >= {"python", "numpy", "torch"}
    # max_keep 1: the states of earlier steps were retired after the new one was written
    assert [os.path.basename(p) for p in checkpoints.states_paths(reference["expdir"])] == [f"states-{TOTAL}.ckpt"]


def test_disk_full_during_a_save_keeps_the_previous_checkpoint(tmp_path, tiny_ckpts, demo_data, monkeypatch):
    def full_disk_at_step_4(states, handle):
        if ".states-4.ckpt." in handle.name:
            handle.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        torch.save(states, handle)

    monkeypatch.setattr(checkpoints, "_serialize", full_disk_at_step_4)
    with pytest.raises(CheckpointError, match=f"no space left in {tmp_path}") as caught:
        _train(tmp_path, tiny_ckpts["wavlm"], demo_data["bvcc"])
    assert "states-4.ckpt" in str(caught.value) and "needs about" in str(caught.value)
    assert sorted(os.listdir(tmp_path)).count("states-2.ckpt") == 1
    assert not glob.glob(str(tmp_path / ".*.tmp"))  # the half-written file is gone
    assert _load(tmp_path / "states-2.ckpt")["Step"] == 2
    monkeypatch.undo()
    _train(tmp_path, tiny_ckpts["wavlm"], demo_data["bvcc"], resume=True)
    assert _load(tmp_path / f"states-{TOTAL}.ckpt")["Step"] == TOTAL


def test_a_run_that_cannot_save_is_refused_before_training(tmp_path, tiny_ckpts, demo_data, monkeypatch):
    usage = checkpoints.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda path: usage._replace(free=10_000))
    with pytest.raises(CheckpointError, match="not enough free space"):
        _train(tmp_path, tiny_ckpts["wavlm"], demo_data["bvcc"])
    assert not glob.glob(str(tmp_path / "*.ckpt"))


def test_sigterm_saves_exits_75_and_the_resumed_run_is_exact(tmp_path, tiny_ckpts, demo_data, reference, monkeypatch):
    stop_at = random.randint(1, TOTAL - 1)
    clip = torch.nn.utils.clip_grad_norm_
    calls = []

    def clip_then_preempt(*args, **kwargs):  # the signal arrives while step `stop_at` is in flight
        calls.append(1)
        if len(calls) == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return clip(*args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip_then_preempt)
    with pytest.raises(SystemExit) as caught:
        _train(tmp_path, tiny_ckpts["wavlm"], demo_data["bvcc"])
    assert caught.value.code == EXIT_PREEMPTED, f"stopped at step {stop_at}"
    assert _load(tmp_path / f"states-{stop_at}.ckpt")["Step"] == stop_at
    monkeypatch.undo()
    _train(tmp_path, tiny_ckpts["wavlm"], demo_data["bvcc"], resume=True)
    _assert_same_training(_load(tmp_path / f"states-{TOTAL}.ckpt"), reference["ckpt"])
    with open(tmp_path / "metrics_val_best.json") as handle:
        assert json.load(handle) == reference["best"], f"stopped at step {stop_at}"


KILL_DRIVER = """
import os, signal, sys
import torch
from distilmos import checkpoints
from distilmos.runner import run
mode, argv = sys.argv[1], sys.argv[2:]
if mode == "save":  # killed while writing states-4.ckpt
    def half_then_die(states, handle):
        if ".states-4.ckpt." in handle.name:
            handle.write(b"PK\\x03\\x04 half")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        torch.save(states, handle)
    checkpoints._serialize = half_then_die
else:  # killed between steps 3 and 4
    clip, calls = torch.nn.utils.clip_grad_norm_, []
    def die_at_4(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGKILL)
        return clip(*args, **kwargs)
    torch.nn.utils.clip_grad_norm_ = die_at_4
run([sys.argv[0] and os.environ["DOWNSTREAM"]], argv)
"""


@pytest.mark.parametrize("moment", ["save", "between_steps"])
def test_kill_9_resumes_from_the_newest_whole_checkpoint(tmp_path, tiny_ckpts, demo_data, reference, moment):
    env = dict(os.environ, DOWNSTREAM=DOWNSTREAM, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", KILL_DRIVER, moment,
                           *_argv(tmp_path, tiny_ckpts["wavlm"], demo_data["bvcc"])],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert [os.path.basename(p) for p in checkpoints.states_paths(tmp_path)] == ["states-2.ckpt"]
    if moment == "save":
        assert glob.glob(str(tmp_path / ".states-4.ckpt.*.tmp"))  # the interrupted write, never renamed in
    _train(tmp_path, tiny_ckpts["wavlm"], demo_data["bvcc"], resume=True)
    assert not glob.glob(str(tmp_path / ".*.tmp"))
    _assert_same_training(_load(tmp_path / f"states-{TOTAL}.ckpt"), reference["ckpt"])


@pytest.fixture
def nan_data(tmp_path, demo_data):
    """The generated lists, with one training wav that decodes but holds NaN samples."""
    data = tmp_path / "data"
    data.mkdir()
    utts = read_datalist(os.path.join(demo_data["bvcc"], "train.csv"))
    bad = str(tmp_path / "nan.wav")
    samples = np.random.default_rng(0).normal(0, 0.1, 16000).astype("float32")
    samples[100:200] = np.nan
    sf.write(bad, samples, 16000, subtype="FLOAT")
    utts[3] = type(utts[3])(utts[3].sample_id, utts[3].system_id, bad, utts[3].score)
    write_datalist(str(data / "train.csv"), utts)
    for split in ("val", "test"):
        write_datalist(str(data / f"{split}.csv"), read_datalist(os.path.join(demo_data["bvcc"], f"{split}.csv")))
    return data, bad, utts[3].sample_id


def test_a_nan_wav_is_named_with_its_row(tmp_path, tiny_ckpts, nan_data):
    data, bad, sample_id = nan_data
    with pytest.raises(AudioError) as caught:
        _train(tmp_path / "exp", tiny_ckpts["wavlm"], data, total_steps=200, eval_step=1000, save_step=1000)
    message = str(caught.value)
    assert f"{data / 'train.csv'}:5 [{sample_id}]" in message and bad in message and "NaN" in message


def test_a_nan_wav_can_be_skipped_and_reported(tmp_path, tiny_ckpts, nan_data, capsys):
    data, bad, sample_id = nan_data
    expdir = tmp_path / "exp"
    run([DOWNSTREAM], _argv(expdir, tiny_ckpts["wavlm"], data, total_steps=40, eval_step=40)
        [:-1] + [_argv(expdir, tiny_ckpts["wavlm"], data)[-1] + ",,config.downstream_expert.datarc.skip_bad_audio=True"
                 + ",,config.runner.total_steps=40,,config.runner.eval_step=40"])
    assert os.path.isfile(expdir / "states-40.ckpt")
    report = (expdir / "skipped_audio.txt").read_text().splitlines()
    assert len(report) == 1 and sample_id in report[0] and bad in report[0]
    out = capsys.readouterr().out
    assert "1 unreadable audio file(s) skipped so far" in out


def test_early_stopping_stops_keeps_the_best_and_stays_stopped(tmp_path, tiny_ckpts, demo_data, capsys):
    # lr 0: the first validation sets the best score and no later one can beat it
    argv = ["-m", "train", "-u", "wavlm_local", "-k", tiny_ckpts["wavlm"], "-d", "ssl_mos", "-s", "last_hidden_state",
            "-f", "--device", "cpu", "-p", str(tmp_path), "-o", ",,".join([
                f"config.downstream_expert.datarc.data_dir={demo_data['bvcc']}",
                "config.downstream_expert.datarc.num_workers=0", "config.downstream_expert.datarc.train_batch_size=4",
                "config.optimizer.lr=0", "config.runner.total_steps=20", "config.runner.eval_step=1",
                "config.runner.save_step=100", "config.runner.early_stopping.patience=2",
                "config.runner.early_stopping.unit=step"])]
    run([DOWNSTREAM], argv)
    assert "early stopping at step 3" in capsys.readouterr().err
    assert [os.path.basename(p) for p in checkpoints.states_paths(tmp_path)] == ["states-3.ckpt"]
    assert _load(tmp_path / "best-states-val.ckpt")["Step"] == 1
    run([DOWNSTREAM], argv + ["-a"])  # resuming a run that stopped early trains no further
    assert [os.path.basename(p) for p in checkpoints.states_paths(tmp_path)] == ["states-3.ckpt"]
