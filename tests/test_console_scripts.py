"""The console scripts of setup.py: every target imports and answers ``--help``; ``distilmos-compress``
dispatches to each step, whose ``python -m`` form keeps working. (The installed wheel's scripts themselves:
tests/test_wheel.py.)"""

import importlib
import subprocess
import sys

import pytest
from conftest import REPO, console_scripts

SCRIPTS = console_scripts()
#: the commands recipes and docs call, each with its python -m form (issue 26)
EXPECTED = {
    "distilmos-predict": "distilmos.predictor.cli:main",
    "distilmos-tokens": "upstream_tokens.cli:main",
    "distilmos-prep": "distilmos.corpora:main",
    "distilmos-compress": "distilmos.compress.cli:main",
    "distilmos-registry": "distilmos.registry:main",
    "distilmos-tiny-upstream": "distilmos.upstream.tiny:main",
    "distilmos-pretrain-tiny": "distilmos.pretrain.tiny_hubert:main",
    "distilmos-standins": "distilmos.standins.cli:main",
}


def _target(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def test_setup_declares_the_commands():
    assert SCRIPTS == EXPECTED


@pytest.mark.parametrize("command", sorted(SCRIPTS))
def test_every_console_script_answers_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        _target(SCRIPTS[command])(["--help"])
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "step, module",
    [
        ("degrade", "degrade"),
        ("pseudo-label", "pseudo_label"),
        ("train-student", "train_student"),
        ("prune", "prune"),
        ("evaluate", "evaluate"),
    ],
)
def test_compress_dispatches_each_step(step, module, capsys):
    from distilmos.compress.cli import main

    with pytest.raises(SystemExit) as done:
        main([step, "--help"])
    assert done.value.code == 0
    assert f"python -m distilmos.compress.{module}" in capsys.readouterr().out  # the step's own parser


def test_compress_refuses_an_unknown_step(capsys):
    from distilmos.compress.cli import main

    with pytest.raises(SystemExit) as done:
        main(["distil"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'distil'" in err and "pseudo-label" in err


def test_python_m_forms_of_the_command_modules():
    """``python -m distilmos.compress`` (the dispatcher) and a moved module's new ``python -m`` path."""
    for args in (["distilmos.compress", "prune", "--help"], ["distilmos.upstream.tiny", "--help"]):
        result = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "usage:" in result.stdout, result.stderr
