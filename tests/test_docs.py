"""The docs beside the code: every relative link of every markdown file of the checkout resolves (a file that
exists; an ``#anchor`` to a heading of it, by GitHub's anchor rule), the top README stays short, and it links
to every folder's README."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the top README's budget: what it is, set-up, quick start, systems, layout, adding an expert
TOP_README_MAX_LINES = 250

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+).*?\1")
# [text](target "title") and ![alt](target); the text may hold inline code with brackets
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    """Every markdown file of the checkout that git tracks or would track (new files before their commit)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(REPO / line for line in out.splitlines() if (REPO / line).is_file())


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: its text (link targets and inline markup dropped), lowercased,
    every character but letters, digits, '-', '_' and spaces removed, each space a '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a markdown file; a repeated heading gets '-1', '-2', ... as on GitHub."""
    seen: dict[str, int] = {}
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_anchor(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        if count:
            seen.setdefault(f"{slug}-{count}", 1)
    return set(seen)


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link and image of a markdown file, outside code."""
    found = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        definition = REFERENCE_DEF.match(line)
        if definition:
            found.append((number, definition.group(1)))
            continue
        found += [(number, target) for target in INLINE_LINK.findall(INLINE_CODE.sub("", line))]
    return found


def broken_links(path: Path, root: Path = REPO) -> list[str]:
    """'file:line: target (why)' for each relative link of a markdown file that does not resolve."""
    bad = []
    for number, target in links(path):
        if not target or SCHEME.match(target) or target.startswith("//"):
            continue
        file_part, _, anchor = target.partition("#")
        if file_part.startswith("/"):
            resolved = root / file_part.lstrip("/")
        else:
            resolved = (path.parent / file_part) if file_part else path
        resolved = Path(os.path.normpath(resolved))
        where = f"{path.relative_to(root)}:{number}: {target}"
        if not resolved.exists():
            bad.append(f"{where} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            bad.append(f"{where} (no heading with anchor #{anchor} in {resolved.relative_to(root)})")
    return bad


def test_every_relative_link_resolves():
    files = markdown_files()
    assert REPO / "README.md" in files
    bad = [problem for path in files for problem in broken_links(path)]
    assert not bad, "broken links:\n" + "\n".join(bad)


def test_top_readme_is_short():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= TOP_README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {TOP_README_MAX_LINES}): move the section to the README "
        "of the folder it documents and link it"
    )


def test_top_readme_links_every_folder_readme():
    """Each recipe, expert and package README is reachable from the top one, and each recipe folder with a
    run.sh and each expert folder has one."""
    for folder in [*REPO.glob("egs/*/run.sh"), *REPO.glob("downstream/*/expert.py")]:
        assert (folder.parent / "README.md").is_file(), f"{folder.parent.relative_to(REPO)} has no README.md"
    top = REPO / "README.md"
    linked = {(top.parent / target.partition("#")[0]).resolve() for _, target in links(top)}
    readmes = [p for p in markdown_files() if p.name == "README.md" and p != top]
    missing = [str(p.relative_to(REPO)) for p in readmes if p.resolve() not in linked]
    assert not missing, f"README.md does not link to {missing}"


@pytest.mark.parametrize(
    "heading, anchor",
    [
        ("Training and evaluating: `run_downstream.py`", "training-and-evaluating-run_downstreampy"),
        (
            "Compact predictors: distillation and pruning, `egs/compress/run.sh`",
            "compact-predictors-distillation-and-pruning-egscompressrunsh",
        ),
        (
            "The authors' released checkpoints: `distilmos-predict import`",
            "the-authors-released-checkpoints-distilmos-predict-import",
        ),
        ("Loading on torch ≥ 2.6 — why", "loading-on-torch--26--why"),
        ("See [the store](store.md) here", "see-the-store-here"),
    ],
)
def test_github_anchor_rule(heading, anchor):
    assert github_anchor(heading) == anchor


def test_checker_finds_broken_links(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "B.md").write_text("# Title\n\n## A `x` section\n\n## A `x` section\n")
    (tmp_path / "A.md").write_text(
        "# Top\n\n[ok](sub/B.md#a-x-section-1) [ok](#top) [ok](sub/) [web](https://example.org/x#y)\n"
        "[bad](sub/C.md) [bad](sub/B.md#a-y-section) [bad](#nowhere)\n"
        "`[code](nowhere.md)`\n```\n[fenced](nowhere.md)\n```\n[ref]: sub/missing.md\n"
    )
    bad = broken_links(tmp_path / "A.md", root=tmp_path)
    assert bad == [
        "A.md:4: sub/C.md (no such file)",
        "A.md:4: sub/B.md#a-y-section (no heading with anchor #a-y-section in sub/B.md)",
        "A.md:4: #nowhere (no heading with anchor #nowhere in A.md)",
        "A.md:9: sub/missing.md (no such file)",
    ]
