"""The recipes' shared shell (egs/utils/lib.sh, egs/utils/path.sh) and the rule of what a recipe may use
of another one (written in lib.sh's header), read off every file under egs/."""

from __future__ import annotations

import ast
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import console_scripts
from recipe_helpers import run_recipe

REPO = Path(__file__).resolve().parents[1]
EGS = REPO / "egs"
LIB = EGS / "utils" / "lib.sh"
# every recipe script: the ones that take options through the shared parser
RECIPE_SCRIPTS = sorted(
    p for p in EGS.glob("*/*.sh") if p.parent.name != "utils" and "utils/parse_options.sh" in p.read_text()
)
LIB_FUNCTIONS = (
    "log",
    "in_stages",
    "todo",
    "done_stage",
    "run",
    "announce",
    "sweep_run",
    "refuse_passthrough",
    "abspath",
)


def bash(script: str, *args, cwd=REPO):
    """Run ``script`` (bash source text) with the library sourced first: ``(status, stdout, stderr)``."""
    body = f"set -euo pipefail\n. {LIB}\n{script}\n"
    result = subprocess.run(["bash", "-c", body, "toy.sh", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout, result.stderr


def test_log_says_time_and_stage():
    status, out, _ = bash('log 3 "training x -> y"')
    assert status == 0 and re.fullmatch(r"\d\d:\d\d:\d\d \[stage 3\] training x -> y\n", out)


def test_todo_keeps_to_the_stage_range_and_skips_stamped_stages(tmp_path):
    (tmp_path / ".done.2").touch()
    script = f"""stage=2 stop_stage=4 stamp_dir={tmp_path}
for n in 1 2 3 4 5; do todo $n && echo "todo $n" || true; done
done_stage 3
todo 3 || echo "3 done"
in_stages 2 && echo "2 in range\""""
    status, out, err = bash(script)
    assert status == 0, err
    assert out.splitlines() == ["todo 3", "todo 4", "3 done", "2 in range"]
    assert (tmp_path / ".done.3").is_file()


def test_todo_without_a_stamp_folder_is_an_error():
    status, out, err = bash("stage=1 stop_stage=2\ntodo 1 && echo ran")
    assert status == 1 and "stamp_dir is not set" in err and "ran" not in out


def test_run_prints_commands_in_a_dry_run_and_runs_them_otherwise():
    script = """announce "first run"
run echo "a b" 'c'
dry_run=true
announce "not shown"
run echo "a b" 'c'"""
    status, out, err = bash(script)
    assert status == 0, err
    assert out.splitlines() == ["=== first run", "a b c", r"echo a\ b c "]


def test_sweep_run_announces_and_hands_on_the_passthrough_options():
    script = """passthrough=(--batch_size 16)
sweep_run "first run" echo "a b"
dry_run=true
sweep_run "not shown" echo "a b"
"""
    status, out, err = bash(script)
    assert status == 0, err
    assert out.splitlines() == ["=== first run", "a b --batch_size 16", r"echo a\ b --batch_size 16 "]


def test_refuse_passthrough_names_the_option_and_the_fix():
    script = 'passthrough=(--batch_size 16 --seed 3)\nrefuse_passthrough "see --seeds" variant seed\necho passed'
    status, out, err = bash(script)
    assert status == 1 and "--seed is set per run here; see --seeds" in err and "passed" not in out
    # only option names count: a value that looks like a refused option is a value
    status, out, _ = bash('passthrough=(--overrides --seed)\nrefuse_passthrough "x" seed\necho passed')
    assert status == 0 and out == "passed\n"


def test_a_sweep_refuses_an_option_it_sets_per_run():
    result = run_recipe("bvcc/run_table1.sh", "--dry_run", "true", "--seed", "1")
    assert result.returncode == 1 and "run_table1.sh: --seed is set per run here" in result.stderr


def test_paths_and_work_folders(tmp_path):
    status, out, err = bash('abspath rel/x; abspath /abs/y; workdir_of new/dir; echo "$(elapsed)"', cwd=tmp_path)
    assert status == 0, err
    assert out.splitlines()[:3] == [f"{tmp_path}/rel/x", "/abs/y", f"{tmp_path}/new/dir"]
    assert (tmp_path / "new" / "dir").is_dir() and int(out.splitlines()[3]) >= 0


# ---- path.sh: one implementation, a two-line file in every recipe folder ----------------------------------


RECIPE_DIRS = sorted(p for p in EGS.iterdir() if p.is_dir() and p.name not in ("utils", "bench"))


@pytest.mark.parametrize("recipe", RECIPE_DIRS, ids=lambda p: p.name)
def test_every_recipe_folder_has_its_path_sh(recipe, tmp_path):
    path_sh = recipe / "path.sh"
    assert path_sh.is_file(), f"{recipe.name} has no path.sh"
    assert '. "$(dirname "${BASH_SOURCE[0]}")/../utils/path.sh"' in path_sh.read_text()
    # sourced from anywhere, with no environment active: the repository's root and interpreter
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "REPO_ROOT", "PYTHONUNBUFFERED")}
    probe = f'. {path_sh}; echo "$REPO_ROOT $PYTHONUNBUFFERED"'
    result = subprocess.run(["bash", "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.stdout.split() == [str(REPO), "1"]


@pytest.mark.parametrize("script", RECIPE_SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_recipe_script_uses_its_path_sh_and_the_library(script):
    text = script.read_text()
    sourced = re.findall(r'^\s*\. "\$\{(?:here|recipe)\}/([^"]+)"', text, flags=re.M)
    assert sourced[:2] == ["path.sh", "../utils/lib.sh"], sourced
    own = [name for name in LIB_FUNCTIONS if re.search(rf"^\s*{name}\(\)", text, flags=re.M)]
    assert not own, f"{script.name} defines {own} again: egs/utils/lib.sh has them"


@pytest.mark.parametrize("script", RECIPE_SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_script_a_recipe_script_sources_or_runs_exists(script):
    """A script or module moved or removed from a recipe's folder breaks the scripts that still name it only
    when they run (some take an hour); this finds it at once."""
    named = re.findall(r'"\$\{(?:here|recipe)\}/([\w./-]+\.(?:sh|py))"', script.read_text())
    missing = [name for name in named if not (script.parent / name).exists()]
    assert not missing, f"{script.name} calls {missing}, which do not exist"


# ---- no recipe reaches into another one -------------------------------------------------------------------


def _code_lines(path: Path):
    """``(number, line)`` of a shell file's lines that are not comments."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            yield number, line


def _shell_reaches(path: Path, recipe: str, egs: Path = EGS) -> list[str]:
    """What a shell file of ``recipe`` (a folder of ``egs``) uses of another recipe's folder besides its
    top-level scripts and its shipped results, and any ``local/`` file it reaches through a path that is not
    its own folder's."""
    bad = []
    for number, line in _code_lines(path):
        where = f"{path.relative_to(egs)}:{number}"
        for other, rest in re.findall(r"(?:\.\./|egs/)([a-z0-9_]+)/([^\s\"')]*)", line):
            if other in (recipe, "utils"):
                continue
            top_level_script = re.fullmatch(r"[a-z0-9_]+\.sh", rest) and rest != "path.sh"
            if re.match(r"\s*(\.|source)\s", line) or not (top_level_script or rest.startswith("pretrained/")):
                bad.append(f"{where}: {other}/{rest}")
        # local/ files through a variable or path that is not this recipe's own folder
        for prefix in re.findall(r"""([^\s"'(=]*)local/[\w.-]+""", line):
            prefix = prefix.strip('"')
            if re.search(r"(\.\./|egs/)[a-z0-9_]+/$", prefix):  # a named recipe folder: checked above
                continue
            if prefix not in ("", "./", "${here}/", "${recipe}/", "$here/", "$recipe/"):
                bad.append(f"{where}: {prefix}local/")
    return bad


def _python_reaches(path: Path, egs: Path = EGS) -> list[str]:
    """sys.path changes, imports by file path, and imports of a module that lives in another folder of ``egs``."""
    tree = ast.parse(path.read_text())
    own = {p.stem for p in path.parent.glob("*.py")}
    elsewhere = {p.stem for p in egs.rglob("*.py") if p.parent != path.parent} - own
    bad = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(egs)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", None) == "sys":
            bad.append(f"{where}: sys.path")
        if isinstance(node, ast.Attribute) and node.attr == "spec_from_file_location":
            bad.append(f"{where}: import by file path")
        names = []
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module.split(".")[0]]
        bad += [f"{where}: import {n}" for n in names if n in elsewhere]
    return bad


def test_no_recipe_sources_imports_or_runs_another_recipes_internals():
    bad = []
    for path in sorted(EGS.rglob("*")):
        recipe = path.relative_to(EGS).parts[0]
        if path.suffix == ".sh" and recipe != "utils":
            bad += _shell_reaches(path, recipe)
        elif path.suffix == ".py":
            bad += _python_reaches(path)
    assert not bad, "recipes reaching into others (see the rule in egs/utils/lib.sh):\n" + "\n".join(bad)


def test_the_rule_check_finds_what_it_forbids(tmp_path):
    """The scanners flag each kind of reach (a check that cannot fail proves nothing)."""
    script = tmp_path / "demo" / "run.sh"
    (tmp_path / "bench").mkdir()
    script.parent.mkdir()
    script.write_text(
        '. "${here}/../bvcc/path.sh"\n'
        'python "${here}/../bvcc/local/plots.py"\n'
        '"${mosbench}/local/benchmark.py" combine\n'
        '"${here}/../bvcc/run.sh" --stage 2\n'  # allowed: another recipe's documented command
        'ckpt="${here}/../demo/pretrained/tiny_hubert.pt"\n'  # allowed: its own folder
        "# python ../bvcc/local/plots.py: a comment\n"
    )
    found = _shell_reaches(script, "demo", tmp_path)
    assert [f.split(": ", 1)[1] for f in found] == ["bvcc/path.sh", "bvcc/local/plots.py", "${mosbench}/local/"]
    (tmp_path / "bench" / "benchlib.py").write_text("")
    module = tmp_path / "demo" / "probe.py"
    module.write_text("import sys\nsys.path.insert(0, 'x')\nimport benchlib\nimport numpy\n")
    found = _python_reaches(module, tmp_path)
    assert sorted(f.split(": ", 1)[1] for f in found) == ["import benchlib", "sys.path"]


# ---- recipes call the console scripts ---------------------------------------------------------------------


def _module_calls(path: Path, commands: dict[str, str]) -> list[str]:
    """The ``python -m MODULE`` calls of a shell file whose module (or its package) a console script of
    ``commands`` (``{command: "module:function"}``) runs, each with the command to call instead."""
    forms = {}
    for command, target in commands.items():
        module = target.partition(":")[0]
        forms[module] = forms[module.removesuffix(".cli")] = command
    bad = []
    for number, line in _code_lines(path):
        for module in re.findall(r"python3? -m ([\w.]+)", line):
            parts = module.split(".")
            known = [forms[".".join(parts[:n])] for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in forms]
            if known:
                bad.append(f"{path.name}:{number}: python -m {module} (call {known[0]})")
    return bad


def test_recipes_call_console_scripts_not_module_paths():
    """A recipe is the user's copy-paste example: it calls ``distilmos-predict``, not the module path that
    the console script hides (the ``python -m`` forms keep working: tests/test_console_scripts.py)."""
    commands = console_scripts()
    bad = [b for path in sorted(EGS.rglob("*.sh")) for b in _module_calls(path, commands)]
    assert not bad, "\n".join(bad)


def test_the_module_call_check_finds_what_it_forbids(tmp_path):
    script = tmp_path / "run.sh"
    script.write_text(
        "python -m distilmos.compress.prune --teacher t.pt\n"  # a step of distilmos-compress
        "python -m upstream_tokens fit --csv x.csv\n"
        "python -m distilmos.data.score_list --list l.txt\n"  # allowed: no console script runs it
        "# python -m upstream_tokens dump: a comment\n"
    )
    commands = {"distilmos-compress": "distilmos.compress.cli:main", "distilmos-tokens": "upstream_tokens.cli:main"}
    assert _module_calls(script, commands) == [
        "run.sh:1: python -m distilmos.compress.prune (call distilmos-compress)",
        "run.sh:2: python -m upstream_tokens (call distilmos-tokens)",
    ]
