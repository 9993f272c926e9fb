"""What the tests of the recipe scripts (egs/*/*.sh) share: their environment and their dry runs."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from conftest import REPO


def recipe_env(**extra: str) -> dict[str, str]:
    """The environment a recipe runs in here: one thread, unbuffered, and the recipes' ``python`` this
    interpreter, whatever environment is active."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def run_recipe(script: str, *args, cwd=None, timeout: int = 120) -> subprocess.CompletedProcess:
    """``bash egs/<script> ARGS`` to its end, in :func:`recipe_env`, its output captured."""
    command = ["bash", os.path.join(REPO, "egs", script), *map(str, args)]
    return subprocess.run(command, cwd=cwd, env=recipe_env(), capture_output=True, text=True, timeout=timeout)


def dry_run(script: str, *args) -> list[list[str]]:
    """The commands ``egs/<script> --dry_run true ARGS`` prints, each split into its words."""
    result = run_recipe(script, "--dry_run", "true", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return [shlex.split(line) for line in result.stdout.strip().splitlines()]


def options_of(command: list[str]) -> dict[str, str]:
    """``{--name: value}`` of a command's ``--name value`` pairs."""
    return {command[i]: command[i + 1] for i in range(1, len(command) - 1) if command[i].startswith("--")}
