"""The architecture's import rules, read off the source: the installed package stands on its own."""

import ast
import os

from conftest import REPO


def _imports(package):
    """``{module file: [imported module names]}`` of every module of an installed package (absolute names;
    relative imports resolved)."""
    found = {}
    root = os.path.join(REPO, package)
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            module = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".").removesuffix(".__init__")
            names = []
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.Import):
                    names += [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = module.split(".")
                    if node.level:
                        base = base[: len(base) - node.level + (1 if name == "__init__.py" else 0)]
                        names.append(".".join(base + ([node.module] if node.module else [])))
                    else:
                        names.append(node.module)
            found[os.path.relpath(path, REPO)] = names
    return found


def test_installed_packages_import_nothing_from_the_checkout():
    from distilmos.registry import EXPERTS

    ours = tuple(f"s3prl.downstream.{name}" for name in EXPERTS)  # this repository's experts under s3prl's name
    for package in ("distilmos", "upstream_tokens"):
        for path, names in _imports(package).items():
            bad = [n for n in names if n.startswith(("downstream", "egs", "tests") + ours)]
            assert not bad, f"{path} imports {bad}"


def test_tokens_and_predictor_do_not_import_each_other():
    for path, names in _imports("distilmos").items():
        if path.startswith(os.path.join("distilmos", "predictor")):
            assert not [n for n in names if n.startswith("upstream_tokens")], path
    for path, names in _imports("upstream_tokens").items():
        assert not [n for n in names if n.startswith("distilmos.predictor")], path
