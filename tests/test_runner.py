import importlib
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from downstream_helpers import train_argv

from distilmos.train.plugin import register, register_upstream
from distilmos.train.runner import complete_argv
from distilmos.upstream.build import UpstreamSpecError


def _toy_expert(root, name):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "model.py").write_text("WIDTH = 7\n")
    # relative import, as a drop-in s3prl expert must use
    (folder / "expert.py").write_text("from .model import WIDTH\n\nclass DownstreamExpert:\n    width = WIDTH\n")
    (folder / "config.yaml").write_text("runner: {}\n")
    return folder


def test_expert_folder_resolves_under_s3prl_namespace(tmp_path):
    _toy_expert(tmp_path / "downstream", "toy_expert_x")
    register([str(tmp_path / "downstream")])
    expert = importlib.import_module("s3prl.downstream.toy_expert_x.expert")
    assert expert.DownstreamExpert.width == 7
    # s3prl's own experts still resolve
    importlib.import_module("s3prl.downstream.example.expert")


def test_onecycle_in_s3prl_scheduler_registry():
    register([])
    from s3prl.schedulers import get_scheduler

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4, betas=(0.9, 0.98))
    sched = get_scheduler(opt, 100, {"name": "OneCycleLR", "pct_start": 0.3})
    lrs = []
    for _ in range(100):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert max(lrs) == pytest.approx(1e-4, rel=1e-3)  # the configured lr is the peak
    assert lrs[-1] < 1e-6 and lrs.index(max(lrs)) in range(28, 32)
    assert opt.param_groups[0]["betas"] == (0.9, 0.98)  # momentum cycling would overwrite beta1


def test_complete_argv(tmp_path, monkeypatch):
    _toy_expert(tmp_path / "ds", "toy_cfg")
    monkeypatch.chdir(tmp_path)
    argv = complete_argv(
        ["-m", "train", "-d", "toy_cfg", "--device", "cpu"], [str(tmp_path / "ds")], environ={"LOCAL_RANK": "1"}
    )
    assert argv[argv.index("--local_rank") + 1] == "1"
    assert argv[argv.index("--backend") + 1] == "gloo"
    assert argv[argv.index("-c") + 1] == str(tmp_path / "ds" / "toy_cfg" / "config.yaml")
    # a registered expert's variant brings its own config, from any folder
    argv = complete_argv(["-d", "distilmos", "-v", "no_token"], [os.path.join(REPO, "downstream")])
    assert argv[argv.index("-c") + 1] == os.path.join(REPO, "downstream", "distilmos", "config_no_token.yaml")
    # explicit flags win, and nothing is added for a resumed experiment
    argv = complete_argv(
        ["-m", "train", "-e", "x", "--backend", "nccl", "--local_rank=0"], [], environ={"LOCAL_RANK": "1"}
    )
    assert argv == ["-m", "train", "-e", "x", "--backend", "nccl", "--local_rank=0"]


def test_register_user_callable_in_hub(tmp_path, monkeypatch):
    (tmp_path / "user_up_mod.py").write_text("def make(ckpt=None):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    register_upstream("user_up_mod:make")
    from s3prl import hub

    assert callable(getattr(hub, "user_up_mod:make"))
    with pytest.raises(UpstreamSpecError):
        register_upstream("hubert_bse")


def _run(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "run_downstream.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_run_downstream_help():
    result = _run("-h")
    assert result.returncode == 0 and "--upstream" in result.stdout and "--downstream" in result.stdout


def test_run_downstream_unknown_upstream_is_one_clear_error(tmp_path):
    result = _run(
        "-m", "train", "-u", "wavlm_lage", "-d", "toy", "-c", os.devnull, "-p", str(tmp_path / "exp"), "--device", "cpu"
    )
    assert result.returncode != 0
    assert "unknown upstream 'wavlm_lage'" in result.stderr and "wavlm_large" in result.stderr
    assert "Traceback" not in result.stderr


def _assert_one_clear_error(result, *fragments):
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.count("run_downstream.py: error:") == 1
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr[-2000:]


@pytest.fixture(scope="module")
def tiny_wavlm(tiny_ckpts):
    return tiny_ckpts["wavlm"]


def _train_argv(tmp_path, ckpt, data_dir, *extra):
    overrides = f"config.downstream_expert.datarc.data_dir={data_dir},,config.downstream_expert.datarc.num_workers=0"
    return tuple(
        train_argv(ckpt, tmp_path / "exp", "distilmos", "-v", "no_token", overrides=overrides + "".join(extra))
    )


def test_entry_point_reports_a_bad_data_list_once(tmp_path, tiny_wavlm, demo_data):
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "val", "test"):
        text = open(os.path.join(demo_data["bvcc"], f"{split}.csv")).read().splitlines()
        if split == "train":  # two bad rows: a missing wav, a score that is not a number
            first = text[1].split(",")
            text.append(",".join(["ghost-utt", first[1], "/nowhere/ghost.wav", "3.0"]))
            text[2] = ",".join(text[2].split(",")[:3] + ["abc"])
        (data / f"{split}.csv").write_text("\n".join(text) + "\n")
    result = _run(*_train_argv(tmp_path, tiny_wavlm, data), cwd=str(tmp_path))
    _assert_one_clear_error(result, "2 bad row(s)", "/nowhere/ghost.wav", "'abc' is not a finite number")


def test_entry_point_reports_a_bad_token_store_and_config(tmp_path, tiny_wavlm, demo_data):
    argv = list(
        _train_argv(
            tmp_path,
            tiny_wavlm,
            demo_data["bvcc"],
            f",,config.downstream_expert.datarc.token_store={tmp_path / 'no_store'}",
        )
    )
    argv[argv.index("no_token")] = "distilmos"
    _assert_one_clear_error(_run(*argv, cwd=str(tmp_path)), "not a token store")
    argv = _train_argv(tmp_path, tiny_wavlm, demo_data["bvcc"], ",,config.downstream_expert.variant=no_tokn")
    argv = [a for a in argv if a not in ("-v", "no_token")]
    _assert_one_clear_error(
        _run(*argv, cwd=str(tmp_path)),
        "expert 'distilmos' has no variant 'no_tokn'; it has distilmos, no_token, mse_distill",
    )
