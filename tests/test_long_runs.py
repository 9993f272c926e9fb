"""Training never loses work: fault injection on short CPU runs with the tiny WavLM.

The last step always counts; a full disk during a save leaves the previous checkpoint whole; a run that
cannot save is refused; SIGTERM stops after the step in flight with a resumable checkpoint and status 75,
and the resumed run ends with exactly the weights and metrics of a run that never stopped; kill -9
between steps or during a save resumes from the newest whole checkpoint; a NaN wav is named with its
data-list row, or skipped and reported.
"""

import glob
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO
from downstream_helpers import DOWNSTREAM, short_run, train_argv

from distilmos.data.audio import AudioError
from distilmos.data.datalist import read_datalist, write_datalist
from distilmos.train import checkpoints
from distilmos.train.checkpoints import CheckpointError
from distilmos.train.preemption import EXIT_PREEMPTED
from distilmos.train.runner import run

TOTAL = 6


def _argv(expdir, ckpt, data_dir, resume=False, **runner):
    values = {"total_steps": TOTAL, "eval_step": 3, "save_step": 2, "log_step": 2, "max_keep": 1, **runner}
    overrides = short_run(data_dir, **{f"config.runner.{k}": v for k, v in values.items()})
    return train_argv(
        ckpt, expdir, "distilmos", "-v", "no_token", "-f", *(["-a"] if resume else []), overrides=overrides
    )


def _train(expdir, ckpt, data_dir, **kwargs):
    run([DOWNSTREAM], _argv(expdir, ckpt, data_dir, **kwargs))


def _load(path):
    from distilmos.fileio import allow_s3prl_checkpoints

    allow_s3prl_checkpoints()  # their argparse.Namespace, also when no run of this process registered it
    return torch.load(path, map_location="cpu", weights_only=True)


def _logged_steps(expdir, split="val"):
    lines = (expdir / "log.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines if f'"{split}"' in line]


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


FULL_DISK_AT_STEP_4 = """\
import errno, os, sys
import torch
from distilmos.train import checkpoints
from distilmos.train.runner import main

full = []
fsync = os.fsync

def no_space(*args):
    raise OSError(errno.ENOSPC, "No space left on device")

def full_disk_at_step_4(states, handle):
    if ".states-4.ckpt." in handle.name:
        handle.write(b"PK\\x03\\x04 half a checkpoint")
        full.append(True)
        no_space()
    torch.save(states, handle)

# from then on every flush to disk fails, tensorboard's event file too
os.fsync = lambda fd: no_space() if full else fsync(fd)
checkpoints._serialize = full_disk_at_step_4
sys.argv = ["run_downstream.py"] + sys.argv[1:]
main([{downstream!r}])
"""


def test_disk_full_during_a_save_keeps_the_previous_checkpoint(tmp_path, tiny_ckpts, demo_data):
    script = tmp_path / "full_disk.py"
    script.write_text(FULL_DISK_AT_STEP_4.format(downstream=DOWNSTREAM))
    expdir = tmp_path / "exp"
    result = subprocess.run(
        [sys.executable, str(script), *_argv(expdir, tiny_ckpts["wavlm"], demo_data["bvcc"])],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    # one line, exit 2, and nothing after it: no traceback of tensorboard's writer thread or exit handler
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"no space left in {expdir} to save states-4.ckpt: it needs about" in errors[0]
    assert sorted(os.listdir(expdir)).count("states-2.ckpt") == 1
    assert not glob.glob(str(expdir / ".*.tmp"))  # the half-written file is gone
    assert _load(expdir / "states-2.ckpt")["Step"] == 2
    _train(expdir, tiny_ckpts["wavlm"], demo_data["bvcc"], resume=True)
    assert _load(expdir / f"states-{TOTAL}.ckpt")["Step"] == TOTAL


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
from distilmos.train import checkpoints
from distilmos.train.runner import run
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
    proc = subprocess.run(
        [sys.executable, "-c", KILL_DRIVER, moment, *_argv(tmp_path, tiny_ckpts["wavlm"], demo_data["bvcc"])],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert [os.path.basename(p) for p in checkpoints.states_paths(tmp_path)] == ["states-2.ckpt"]
    if moment == "save":
        assert glob.glob(str(tmp_path / ".states-4.ckpt.*.tmp"))  # the interrupted write, never renamed in
    _train(tmp_path, tiny_ckpts["wavlm"], demo_data["bvcc"], resume=True)
    assert not glob.glob(str(tmp_path / ".*.tmp"))
    _assert_same_training(_load(tmp_path / f"states-{TOTAL}.ckpt"), reference["ckpt"])


def _torchrun(expdir, ckpt, data_dir, resume=False, total_steps=12):
    """Two CPU ranks training under torchrun (gloo), a log line every step, no periodic checkpoint; the
    launcher in its own process group, its output in ``<expdir>.out``."""
    argv = _argv(expdir, ckpt, data_dir, resume, total_steps=total_steps, eval_step=1000, save_step=1000, log_step=1)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        os.path.join(REPO, "run_downstream.py"),
        *argv,
    ]
    with open(f"{expdir}.out", "a") as log:  # the launcher keeps its own copy of the file
        return subprocess.Popen(
            command,
            env=dict(os.environ, OMP_NUM_THREADS="1"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _output(expdir):
    with open(f"{expdir}.out") as handle:
        return handle.read()


def _rank_pids(launcher_pid):
    """``{local rank: pid}`` of the processes torchrun started."""
    ranks = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/environ") as handle:
                env = dict(v.split("=", 1) for v in handle.read().split("\0") if "=" in v)
        except (OSError, ValueError):
            continue
        if ppid == launcher_pid and "LOCAL_RANK" in env:
            ranks[int(env["LOCAL_RANK"])] = int(entry)
    return ranks


def _wait_for_training(process, expdir, timeout=300):
    """Return once the first step is logged (the ranks' SIGTERM handlers are then installed)."""
    log, deadline = expdir / "log.jsonl", time.time() + timeout
    while not (log.is_file() and '"train"' in log.read_text()):
        assert process.poll() is None, _output(expdir)[-3000:]
        assert time.time() < deadline, "no training step logged"
        time.sleep(0.05)


@pytest.mark.parametrize("target", ["launcher", "rank 1", "every process"])
def test_sigterm_under_torchrun_stops_every_rank_after_one_step(tmp_path, tiny_ckpts, demo_data, target):
    """SIGTERM to torchrun (which passes it on to each rank), to one rank alone, or to every process as a
    scheduler does (so each rank gets it twice): every rank stops after the same step, one checkpoint of
    both ranks is written, the ranks exit 75 and torchrun 1 (it reports any non-zero rank as a failure);
    the same command with -a then trains to total_steps."""
    expdir, total = tmp_path / "exp", 12
    launcher = _torchrun(expdir, tiny_ckpts["wavlm"], demo_data["bvcc"], total_steps=total)
    try:
        _wait_for_training(launcher, expdir)
        ranks = _rank_pids(launcher.pid)
        targets = {"launcher": [launcher.pid], "rank 1": [ranks[1]], "every process": [*ranks.values(), launcher.pid]}[
            target
        ]
        for pid in targets:
            os.kill(pid, signal.SIGTERM)
        assert launcher.wait(timeout=120) == 1
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    out = _output(expdir)
    stopped = set(re.findall(r"stopped after step (\d+) of", out))
    assert len(stopped) == 1 and out.count("stopped after step") == 2, out[-3000:]  # both ranks, one step
    step = int(stopped.pop())
    assert [os.path.basename(p) for p in checkpoints.states_paths(expdir)] == [f"states-{step}.ckpt"]
    # weights_only=False: no run in this process has allowed s3prl's Args for torch.load
    ckpt = torch.load(expdir / f"states-{step}.ckpt", map_location="cpu", weights_only=False)
    assert 0 < step < total and ckpt["Step"] == step and ckpt["WorldSize"] == 2 and len(ckpt[checkpoints.RNG]) == 2
    if target == "rank 1":  # torchrun names the ranks' own status
        assert "exitcode  : 75" in out

    resumed = _torchrun(expdir, tiny_ckpts["wavlm"], demo_data["bvcc"], resume=True, total_steps=total)
    assert resumed.wait(timeout=300) == 0, _output(expdir)[-3000:]
    # continued after the agreed step: no step trained twice or skipped
    assert _logged_steps(expdir, "train") == list(range(1, total + 1))
    final = torch.load(expdir / f"states-{total}.ckpt", map_location="cpu", weights_only=False)
    assert final["Step"] == total and final["WorldSize"] == 2 and os.path.isfile(expdir / "best-states-val.ckpt")


def test_a_second_sigterm_still_saves_and_a_second_ctrl_c_stops_at_once():
    from distilmos.train.preemption import StopRequest

    # Python's own Ctrl-C handler, as in a terminal: a job started in the background (`cmd &`) inherits an
    # ignored SIGINT, and the second Ctrl-C rightly does what the handler before the run did
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _second_signals(StopRequest)
    finally:
        signal.signal(signal.SIGINT, previous)


def _second_signals(StopRequest):
    with StopRequest() as request:
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)  # the scheduler's and torchrun's: still one request
        assert request.signal == signal.SIGTERM and request.agreed() == (True, False)
    with pytest.raises(KeyboardInterrupt), StopRequest() as request:
        signal.raise_signal(signal.SIGINT)
        assert request.signal == signal.SIGINT
        signal.raise_signal(signal.SIGINT)


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
    argv = _argv(expdir, tiny_ckpts["wavlm"], data, total_steps=40, eval_step=40)
    argv[argv.index("-o") + 1] += ",,config.downstream_expert.datarc.skip_bad_audio=True"
    run([DOWNSTREAM], argv)
    assert os.path.isfile(expdir / "states-40.ckpt")
    report = (expdir / "skipped_audio.txt").read_text().splitlines()
    assert len(report) == 1 and sample_id in report[0] and bad in report[0]
    out = capsys.readouterr().out
    assert "1 audio file(s) skipped so far (unreadable or too short)" in out


def _early_stopping_argv(expdir, ckpt, data_dir, patience, section="runner", *overrides):
    """SSL-MOS validated every step, stopping after ``patience`` steps without improvement (configured under
    ``section``: runner or downstream_expert)."""
    values = [
        f"config.downstream_expert.datarc.data_dir={data_dir}",
        "config.downstream_expert.datarc.num_workers=0",
        "config.downstream_expert.datarc.train_batch_size=4",
        "config.runner.total_steps=20",
        "config.runner.eval_step=1",
        "config.runner.save_step=100",
        f"config.{section}.early_stopping.patience={patience}",
        f"config.{section}.early_stopping.unit=step",
        *overrides,
    ]
    return train_argv(ckpt, expdir, "ssl_mos", "-s", "last_hidden_state", "-f", overrides=",,".join(values))


@pytest.mark.parametrize("section", ["runner", "downstream_expert"])
def test_early_stopping_stops_keeps_the_best_and_stays_stopped(tmp_path, tiny_ckpts, demo_data, capsys, section):
    # lr 0: the first validation sets the best score and no later one can beat it
    argv = _early_stopping_argv(tmp_path, tiny_ckpts["wavlm"], demo_data["bvcc"], 2, section, "config.optimizer.lr=0")
    run([DOWNSTREAM], argv)
    assert "early stopping at step 3" in capsys.readouterr().err
    assert [os.path.basename(p) for p in checkpoints.states_paths(tmp_path)] == ["states-3.ckpt"]
    assert _load(tmp_path / "best-states-val.ckpt")["Step"] == 1
    run([DOWNSTREAM], argv + ["-a"])  # resuming a run that stopped early trains no further
    assert [os.path.basename(p) for p in checkpoints.states_paths(tmp_path)] == ["states-3.ckpt"]


#: validation utterance SRCC at steps 1, 2, ...: the best at step 2, then worse each step
FALLING_AFTER_2 = [0.1, 0.5, 0.4, 0.3, 0.2] + [0.0] * 20


def _scripted_validation(monkeypatch):
    """Validation scores follow FALLING_AFTER_2, one per validation, across a stop and its resume."""
    from distilmos.train import expert_base

    real, scores = expert_base.compute_metrics, iter(FALLING_AFTER_2)

    def scripted(*args, **kwargs):
        return dict(real(*args, **kwargs), utt_SRCC=next(scores))

    monkeypatch.setattr(expert_base, "compute_metrics", scripted)


def test_sigterm_in_the_middle_of_the_patience_resumes_the_count(tmp_path, tiny_ckpts, demo_data, monkeypatch, capsys):
    """Best at step 2, patience 3: an uninterrupted run stops at step 5. Stopped by SIGTERM during step 3
    (one step into the patience) and resumed, the run counts on from step 2 and stops at step 5 too: a lost
    count would stop it at step 4, a lost best score at step 7."""
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    _scripted_validation(monkeypatch)
    run([DOWNSTREAM], _early_stopping_argv(reference, tiny_ckpts["wavlm"], demo_data["bvcc"], 3))
    assert "early stopping at step 5" in capsys.readouterr().err and _logged_steps(reference) == [1, 2, 3, 4, 5]

    _scripted_validation(monkeypatch)
    clip, calls = torch.nn.utils.clip_grad_norm_, []

    def clip_then_preempt(*args, **kwargs):  # the signal arrives while step 3 is in flight
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return clip(*args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip_then_preempt)
    argv = _early_stopping_argv(stopped, tiny_ckpts["wavlm"], demo_data["bvcc"], 3)
    with pytest.raises(SystemExit) as caught:
        run([DOWNSTREAM], argv)
    assert caught.value.code == EXIT_PREEMPTED
    assert _load(stopped / "states-3.ckpt")["EarlyStopping"] == {"best_step": 2, "stopped": False}
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    capsys.readouterr()
    run([DOWNSTREAM], argv + ["-a"])  # the scripted scores go on with step 4
    assert "early stopping at step 5" in capsys.readouterr().err and _logged_steps(stopped) == [1, 2, 3, 4, 5]
    assert [os.path.basename(p) for p in checkpoints.states_paths(stopped)] == ["states-5.ckpt"]
    for name in ("best-states-val.ckpt", "states-5.ckpt"):
        a, b = _load(reference / name), _load(stopped / name)
        assert a["Step"] == b["Step"] and a["EarlyStopping"] == b["EarlyStopping"]
    assert _load(stopped / "best-states-val.ckpt")["Step"] == 2
