"""Every command line in a markdown code block of the tree names only options its command has.

A documented ``--flag`` is looked up in the ``--help`` of the command it is given to (a console script and
its subcommand, a ``python -m`` module, a Python script, a recipe's shell script, ``run_downstream.py``,
also behind ``torchrun``), so a renamed or removed option fails here rather than in a user's shell. A recipe
script hands the options it does not declare to its folder's ``run.sh``; those count as its own.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import os
import re
import shlex
import subprocess
import sys

import pytest
from conftest import REPO, console_scripts, load_script

SCRIPTS = console_scripts()
FENCE = re.compile(r"^\s*```\s*(\w*)")
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console"}
SKIPPED_FOLDERS = {".git", ".venv", "node_modules", "demo_out", "learning_out", "exp"}


def markdown_files() -> list[str]:
    found = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_FOLDERS and not d.startswith("."))
        found += [os.path.join(folder, f) for f in sorted(files) if f.endswith(".md")]
    return found


def command_lines(md: str) -> list[tuple[int, str]]:
    """(line number, command) of the shell code blocks of ``md``: continuations joined, split at ``&&``,
    ``||``, ``;`` and ``|``, without a leading prompt, ``do``/``then`` or variable assignments."""
    commands, language, pending, start = [], None, "", 0
    with open(md, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fence = FENCE.match(line)
            if fence:
                language = None if language is not None else fence.group(1)
                continue
            if language not in SHELL_BLOCKS:
                continue
            start = start or number
            if line.rstrip().endswith("\\"):
                pending += line.strip()[:-1].strip() + " "
                continue
            whole, pending = pending + line.strip(), ""
            for part in re.split(r"\s(?:&&|\|\||\|)\s|;\s*", whole):
                part = re.sub(r"^(\$ |do |then )", "", part.strip())
                if part and not part.startswith("#"):
                    commands.append((start, part))
            start = 0
    return commands


def argv_of(command: str) -> list[str] | None:
    """The words of ``command`` after its variable assignments; None when it is not plain shell words."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return None
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words.pop(0)
    return words or None


def _help_of_main(main, argv: list[str]) -> str | None:
    """What ``main(argv)`` prints for ``--help`` (in this process: no interpreter start per command)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(argv)
        except SystemExit as done:
            return out.getvalue() if done.code in (0, None) else None
    return None


def _help_of_process(args: list[str], cwd: str) -> str | None:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    return result.stdout + result.stderr if result.returncode == 0 else None


def _main_of(kind: str, target: str):
    """The ``main(argv)`` behind ``python -m target`` (a package's: its ``cli`` module's) or a script."""
    if kind == "script":
        module = load_script(os.path.relpath(target, REPO))
        main = getattr(module, "main", None)
        # a script that calls an imported main (with its own arguments) runs as a script
        return main if getattr(main, "__module__", None) == module.__name__ else None
    else:
        module = importlib.import_module(target)
        if not hasattr(module, "main") and hasattr(module, "__path__"):
            module = importlib.import_module(f"{target}.cli")
    return getattr(module, "main", None)


@functools.cache
def help_text(kind: str, target: str, sub: str) -> str:
    """The ``--help`` of ``target`` (with the subcommand ``sub`` first when it has one; else the whole
    command's); for a recipe script, with its folder's run.sh."""
    if kind == "shell":
        text = _help_of_process(["bash", target, "--help"], os.path.dirname(target)) or ""
        run_sh = os.path.join(os.path.dirname(target), "run.sh")
        if run_sh != target and os.path.isfile(run_sh):
            text += help_text("shell", run_sh, "")
        return text
    main = _main_of(kind, target)
    if main is None:  # a script without a main(argv) of its own, such as run_downstream.py: its own process
        return _help_of_process([sys.executable, target, "--help"], os.path.dirname(target)) or ""
    return (sub and _help_of_main(main, [sub, "--help"])) or _help_of_main(main, ["--help"]) or ""


def resolve(words: list[str], md: str) -> tuple[str, str, list[str]] | None:
    """(kind, target, its arguments) of a command the tree provides; None for any other program."""
    here = os.path.dirname(md)
    if words[0] == "torchrun":
        rest = [w for w in words[1:] if not w.startswith("-") or w in ("-m", "--module")]
        return resolve(["python", *words[words.index(rest[0]) :]], md) if rest else None
    if words[0] in SCRIPTS:
        return "module", SCRIPTS[words[0]].partition(":")[0].removesuffix(".__init__"), words[1:]
    if words[0] in ("python", "python3") and len(words) > 1:
        if words[1] == "-m" and len(words) > 2 and words[2].split(".")[0] in ("distilmos", "upstream_tokens"):
            return "module", words[2], words[3:]
        words = words[1:]
    if words[0] == "bash" and len(words) > 1:
        words = words[1:]
    for folder in (here, REPO):
        path = os.path.normpath(os.path.join(folder, words[0]))
        if words[0].endswith((".sh", ".py")) and os.path.isfile(path) and path.startswith(REPO):
            return ("shell" if path.endswith(".sh") else "script"), path, words[1:]
    return None


def documented_commands() -> list[tuple[str, str, tuple[str, str, list[str]]]]:
    found = []
    for md in markdown_files():
        for number, command in command_lines(md):
            words = argv_of(command)
            target = words and resolve(words, md)
            if target:
                found.append((f"{os.path.relpath(md, REPO)}:{number}", command, target))
    return found


def unknown_options(kind: str, target: str, args: list[str]) -> list[str]:
    sub = args[0] if args and re.fullmatch(r"[a-z][a-z0-9_-]*", args[0]) else ""
    text = help_text(kind, target, sub)
    flags = [a.split("=")[0] for a in args if a.startswith("--") and re.fullmatch(r"--[A-Za-z][\w-]*(=.*)?", a)]
    return [flag for flag in flags if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text)]


COMMANDS = documented_commands()


def test_the_docs_show_commands_of_every_kind():
    kinds = {target[0] for _, _, target in COMMANDS}
    assert kinds == {"module", "script", "shell"}, kinds
    assert len(COMMANDS) > 50


def test_every_documented_option_exists():
    wrong = []
    for where, command, (kind, target, args) in COMMANDS:
        wrong += [f"{where}: {flag} in `{command}`" for flag in unknown_options(kind, target, args)]
    assert not wrong, "options the command does not have:\n" + "\n".join(wrong)


def test_a_misspelt_option_is_found():
    (where, command, (kind, target, args)) = next(c for c in COMMANDS if c[2][0] == "module")
    assert unknown_options(kind, target, [*args, "--no_such_option"]) == ["--no_such_option"]


@pytest.mark.parametrize(
    "block, expected",
    [
        (
            "```bash\nA=1 distilmos-predict score \\\n  --out x.csv && ls\n```\n",
            ["A=1 distilmos-predict score --out x.csv", "ls"],
        ),
        ("```python\nimport distilmos\n```\n", []),
        ("```\nfor x in a b; do ./run.sh --x $x; done\n```\n", ["for x in a b", "./run.sh --x $x", "done"]),
    ],
)
def test_command_lines_of_a_block(tmp_path, block, expected):
    md = tmp_path / "x.md"
    md.write_text("text\n" + block)
    assert [c for _, c in command_lines(str(md))] == expected
