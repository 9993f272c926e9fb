"""The installed package works on its own: a wheel built from the repository, installed (not editable) into
a fresh virtual environment and run from outside the checkout, exports, describes and scores with
``distilmos-predict`` and builds tokens with ``python -m upstream_tokens``; every console script of setup.py is
installed and runs.

The fresh environment borrows this environment's third-party packages (torch, s3prl, ...) through a
``.pth`` line, so the test installs nothing but the wheel (offline, in seconds). A ``.pth`` file in a
folder that a ``.pth`` line adds is not itself processed, so this environment's editable install of the
checkout stays invisible there.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest
from conftest import REPO, console_scripts
from downstream_helpers import DOWNSTREAM, train_argv

from distilmos.train.runner import run as run_downstream

_ANYWHERE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache")
# run outputs at the top of a checkout; only there, since distilmos/data is a package
_AT_TOP = {"build", "dist", "demo_out", "learning_out", "exp", "data", "tokens"}


def IGNORE(folder, names):
    """What the copy of the checkout leaves out (``shutil.copytree``'s ``ignore``)."""
    ignored = set(_ANYWHERE(folder, names))
    if os.path.samefile(folder, REPO):
        ignored |= _AT_TOP & set(names)
    return ignored


def _run(args, cwd, **kwargs):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, args))}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """``(python, bin folder)`` of a fresh virtual environment holding the wheel of this repository."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=IGNORE)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(root / "dist"),
            str(source),
        ],
        cwd=root,
    )
    wheels = list((root / "dist").glob("distilmos-*.whl"))
    assert len(wheels) == 1
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=root)
    python = venv / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root)
    with open(os.path.join(site.stdout.strip(), "borrowed_packages.pth"), "w") as handle:
        handle.write(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheels[0])], cwd=root)
    return python, venv / "bin"


def test_installed_package_is_the_wheel_not_the_checkout(wheel_env, tmp_path):
    python, _ = wheel_env
    out = _run(
        [
            str(python),
            "-c",
            "import distilmos, upstream_tokens; print(distilmos.__file__); print(upstream_tokens.__file__)",
        ],
        cwd=tmp_path,
    ).stdout.split()
    assert all(path.startswith(str(python.parent.parent)) and REPO not in path for path in out)


def test_console_scripts_are_installed(wheel_env, tmp_path):
    _, bin_dir = wheel_env
    for command in console_scripts():
        out = _run([str(bin_dir / command), "--help"], cwd=tmp_path).stdout
        assert "usage:" in out, command


def test_predictor_and_tokens_work_from_the_wheel(wheel_env, tmp_path, demo_data, tiny_ckpts):
    python, bin_dir = wheel_env
    expdir = tmp_path / "exp"
    overrides = ",,".join(
        [
            f"config.downstream_expert.datarc.data_dir={demo_data['bvcc']}",
            "config.downstream_expert.datarc.num_workers=0",
            "config.downstream_expert.datarc.train_batch_size=4",
            "config.runner.total_steps=2",
            "config.runner.eval_step=2",
            "config.runner.save_step=2",
        ]
    )
    argv = train_argv(tiny_ckpts["wavlm"], expdir, "distilmos", "-v", "no_token", "-f", overrides=overrides)
    run_downstream([DOWNSTREAM], argv)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    predict = str(bin_dir / "distilmos-predict")
    model = str(outside / "model.pt")
    _run([predict, "export", "-e", str(expdir / "best-states-val.ckpt"), "-o", model], cwd=outside)
    card = json.loads(_run([predict, "info", model, "--json"], cwd=outside).stdout)
    assert card["downstream"]["expert"] == "distilmos" and card["downstream"]["variant"] == "no_token"
    test_csv = os.path.join(demo_data["bvcc"], "test.csv")
    scores = _run([predict, "score", model, test_csv, "-q", "-o", str(outside / "scores.csv")], cwd=outside)
    assert "metrics over" in scores.stderr
    with open(outside / "scores.csv") as handle:
        rows = handle.read().splitlines()
    with open(test_csv) as handle:
        assert len(rows) == len(handle.read().splitlines())  # a header and one row per utterance

    store = str(outside / "tokens")
    _run(
        [
            str(python),
            "-m",
            "upstream_tokens",
            "fit",
            "--csv",
            test_csv,
            "-u",
            "wavlm_local",
            "-k",
            tiny_ckpts["wavlm"],
            "--n_clusters",
            "4",
            "--out",
            store,
            "--quiet",
        ],
        cwd=outside,
    )
    _run(
        [
            str(python),
            "-m",
            "upstream_tokens",
            "dump",
            "--csv",
            test_csv,
            "--store",
            store,
            "--split",
            "test",
            "--quiet",
        ],
        cwd=outside,
    )
    info = json.loads(_run([str(python), "-m", "upstream_tokens", "info", "--store", store], cwd=outside).stdout)
    assert info["meta"]["n_clusters"] == 4 and "test" in info["splits"]
