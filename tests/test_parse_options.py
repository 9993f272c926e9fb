"""The recipes' shared option parser (egs/utils/parse_options.sh): --help, errors, paths."""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# every recipe that sources the parser, so a new one is checked without being listed here
RECIPES = sorted(
    str(p.relative_to(REPO))
    for p in REPO.glob("egs/*/*.sh")
    if p.parent.name != "utils" and "utils/parse_options.sh" in p.read_text()
)


def declared_options(script: Path, top: bool = True) -> list:
    """The `name=` lines above the line that sources the parser, with those of the options files
    (`. "${recipe}/local/x_options.sh"`) it sources there: the script's options."""
    names = []
    for line in script.read_text().splitlines():
        if top and "parse_options.sh" in line and line.lstrip().startswith("."):
            return names
        shared = re.match(r'^\. "\$\{(?:recipe|here)\}/([^"]*_options\.sh)"', line)
        if shared:
            names += declared_options(script.parent / shared.group(1), top=False)
        match = re.match(r"^([a-z][a-z0-9_]*)=", line)
        if match and match.group(1) not in {"path_options", "file_options", "passthrough", "recipe", "here"}:
            names.append(match.group(1))
    if top:
        raise AssertionError(f"{script} does not source parse_options.sh")
    return names


def bash(*args, cwd=REPO):
    return subprocess.run(["bash", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_every_recipe_is_found():
    assert {"egs/bvcc/run.sh", "egs/compress/run.sh", "egs/pretrain_tiny/run.sh"} <= set(RECIPES)


@pytest.mark.parametrize("script", RECIPES)
def test_help_lists_every_option_with_its_default(script):
    options = declared_options(REPO / script)
    assert options, script
    result = bash(script, "--help")
    assert result.returncode == 0, result.stderr
    listed = re.findall(r"^  --([a-z0-9_]+) +\[", result.stdout, flags=re.M)
    assert listed == options
    assert not result.stdout.startswith("!"), "the shebang is not part of the help"


def test_help_lists_an_options_files_options_where_it_is_sourced(tmp_path):
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "shared_options.sh").write_text(
        '# options two toy scripts share\nshared=1  # from the options file\npath_options="shared"\n'
    )
    script = tmp_path / "toy.sh"
    script.write_text(
        '#!/usr/bin/env bash\n# a toy recipe\nhere="$(cd "$(dirname "$0")" && pwd)"\nfirst=a  # its own\n'
        '. "${here}/local/shared_options.sh"\nlast=b  # its own too\n'
        f". {REPO}/egs/utils/parse_options.sh\n"
        'echo "first=${first} shared=${shared} last=${last}"\n'
    )
    result = bash(str(script), "--help")
    assert result.returncode == 0, result.stderr
    assert re.findall(r"^  --([a-z0-9_]+) +\[(.*?)\] (.*)$", result.stdout, flags=re.M) == [
        ("first", "a", "its own"),
        ("shared", "1", "from the options file"),
        ("last", "b", "its own too"),
    ]
    assert declared_options(script) == ["first", "shared", "last"]
    result = bash(str(script), "--shared", "rel", cwd=tmp_path)
    assert result.stdout.strip() == f"first=a shared={tmp_path}/rel last=b", result.stderr


def write_script(tmp_path, body):
    script = tmp_path / "toy.sh"
    script.write_text(
        "#!/usr/bin/env bash\n# a toy recipe\n"
        f"{body}\n. {REPO}/egs/utils/parse_options.sh\n"
        'echo "name=${name} flag=${flag} dir=${dir} rest=$*"\n'
        'if declare -p passthrough > /dev/null 2>&1; then echo "passthrough=${passthrough[*]}"; fi\n'
    )
    return script


def test_values_flags_paths_and_positionals(tmp_path):
    script = write_script(tmp_path, 'name=a  # a name\nflag=false\ndir=\npath_options="dir"')
    result = bash(str(script), "--name=b", "--flag", "true", "--dir", "rel/x", "pos1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"name=b flag=true dir={tmp_path}/rel/x rest=pos1"


def test_unknown_option_and_bad_boolean_are_named(tmp_path):
    script = write_script(tmp_path, "name=a\nflag=false")
    result = bash(str(script), "--nmae", "b", cwd=tmp_path)
    assert result.returncode == 1
    assert "unknown option --nmae" in result.stderr
    result = bash(str(script), "--flag", "yes", cwd=tmp_path)
    assert result.returncode == 1
    assert "--flag takes true or false, not 'yes'" in result.stderr
    result = bash(str(script), "--name", cwd=tmp_path)
    assert result.returncode == 1 and "--name needs a value" in result.stderr


def test_passthrough_collects_unknown_options_in_order(tmp_path):
    script = write_script(tmp_path, "name=a\npassthrough=()")
    result = bash(str(script), "--batch_size", "4", "--name", "z", "--lr=0.1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "name=z" in result.stdout
    assert "passthrough=--batch_size 4 --lr 0.1" in result.stdout
