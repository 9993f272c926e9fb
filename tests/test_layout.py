"""The architecture's import rules, read off the source: every import statement, lazy ones inside functions
included (only ``importlib`` calls by name escape the reading: the registry's ``"module:Class"`` strings).

The installed package is a stack of layers; a layer imports itself and the layers below it, never a sibling
of its own layer and never a layer above. ``upstream_tokens`` stands on top: nothing in ``distilmos``
imports it back.
"""

from __future__ import annotations

import ast
import os

import pytest
from conftest import REPO

#: the layers, lowest first; each subpackage's docstring says the same
LAYERS: list[tuple[str, ...]] = [
    ("foundation",),  # distilmos/__init__.py, errors.py, fileio.py, locks.py, registry.py
    ("data", "eval", "models"),
    ("upstream", "corpora", "standins"),
    ("predictor", "train", "pretrain"),
    ("compress",),
    ("upstream_tokens",),
]
FOUNDATION = {"distilmos", "distilmos.errors", "distilmos.fileio", "distilmos.locks", "distilmos.registry"}
LEVEL = {unit: level for level, units in enumerate(LAYERS) for unit in units}
PACKAGES = ("distilmos", "upstream_tokens")


def imports_of_source(source: str, module: str, is_package: bool, known: set[str]) -> list[str]:
    """The modules a module's source imports, as absolute names (relative imports resolved; ``from P import
    m`` counts as importing ``P.m`` when that is a module of ``known``)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                parts = parts[: len(parts) - node.level + (1 if is_package else 0)]
                base = ".".join(parts + ([node.module] if node.module else []))
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            names += submodules or [base]
    return names


def _module_files(package: str) -> dict[str, str]:
    """``{module name: file}`` of every module of a package of this checkout."""
    found = {}
    for folder, _, files in os.walk(os.path.join(REPO, package)):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                found[os.path.relpath(path, REPO)[:-3].replace(os.sep, ".").removesuffix(".__init__")] = path
    return found


MODULES = {m: p for package in PACKAGES for m, p in _module_files(package).items()}


def _imports() -> dict[str, list[str]]:
    """``{module: [imported modules of this repository's packages]}`` for every module of the packages."""
    known = set(MODULES)
    found = {}
    for module, path in MODULES.items():
        with open(path, encoding="utf-8") as handle:
            names = imports_of_source(handle.read(), module, path.endswith("__init__.py"), known)
        found[module] = [n for n in names if n.split(".")[0] in PACKAGES]
    return found


IMPORTS = _imports()


def unit_of(module: str) -> str | None:
    """The layer unit of a module: ``foundation``, a subpackage of ``distilmos``, or ``upstream_tokens``;
    None for a top-level ``distilmos`` module that is not a foundation module (it belongs to no layer)."""
    parts = module.split(".")
    if parts[0] == "upstream_tokens":
        return "upstream_tokens"
    if module in FOUNDATION:
        return "foundation"
    package = MODULES.get(".".join(parts[:2]), "")
    if len(parts) > 1 and package.endswith("__init__.py"):
        return parts[1]
    return None


def test_every_module_belongs_to_a_layer():
    stray = [m for m in MODULES if unit_of(m) is None or unit_of(m) not in LEVEL]
    assert not stray, (
        f"{stray} belong to no layer: put a module into the subpackage of its role (see LAYERS in this test "
        "and each subpackage's docstring), or add a new subpackage to LAYERS"
    )


@pytest.mark.parametrize("unit", [u for units in LAYERS for u in units])
def test_layer_imports_only_itself_and_lower_layers(unit):
    """One rule per layer unit: it imports its own modules and those of lower layers; never a sibling of its
    layer, never a layer above it."""
    modules = [m for m in IMPORTS if unit_of(m) == unit]
    if not modules:
        pytest.skip(f"no {unit} package in this checkout")
    allowed = {u for u, level in LEVEL.items() if level < LEVEL[unit]} | {unit}
    bad = [
        f"{module} imports {name} ({unit_of(name)})"
        for module in modules
        for name in IMPORTS[module]
        if unit_of(name) not in allowed
    ]
    assert not bad, f"{unit} may import only {sorted(allowed)}:\n" + "\n".join(bad)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of a directed graph as ``[a, b, ..., a]``, or None when it has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) is None


def test_lazy_and_relative_imports_are_read():
    source = "def f():\n    from ..data import audio\n    from .cached import x\n    import distilmos.fileio\n"
    known = {"distilmos.data.audio", "distilmos.upstream.cached"}
    assert imports_of_source(source, "distilmos.upstream.build", False, known) == [
        "distilmos.data.audio",
        "distilmos.upstream.cached",
        "distilmos.fileio",
    ]


def test_no_import_cycle_between_packages():
    """Between the units (the foundation, each subpackage of ``distilmos``, ``upstream_tokens``), counting lazy
    imports inside functions too."""
    graph: dict[str, set[str]] = {}
    for module, names in IMPORTS.items():
        for name in names:
            if unit_of(module) != unit_of(name):
                graph.setdefault(str(unit_of(module)), set()).add(str(unit_of(name)))
    cycle = find_cycle(graph)
    if cycle:
        edges = sorted(
            {
                f"{m} imports {n}"
                for a, b in zip(cycle, cycle[1:])
                for m, names in IMPORTS.items()
                for n in names
                if str(unit_of(m)) == a and str(unit_of(n)) == b
            }
        )
        pytest.fail(f"import cycle {' -> '.join(cycle)}:\n" + "\n".join(edges))


def test_installed_packages_import_nothing_from_the_checkout():
    from distilmos.registry import EXPERTS

    ours = tuple(f"s3prl.downstream.{name}" for name in EXPERTS)  # this repository's experts under s3prl's name
    known = set(MODULES)
    for module, path in MODULES.items():
        with open(path, encoding="utf-8") as handle:
            names = imports_of_source(handle.read(), module, path.endswith("__init__.py"), known)
        bad = [n for n in names if n.startswith(("downstream", "egs", "tests") + ours)]
        assert not bad, f"{path} imports {bad}"


def test_tokens_do_not_import_the_predictor():
    """upstream_tokens extracts, clusters and caches; it has no use for scoring files."""
    for module, names in IMPORTS.items():
        if unit_of(module) == "upstream_tokens":
            assert not [n for n in names if unit_of(n) == "predictor"], module


def test_standins_stand_on_the_foundation_and_data_alone():
    """The generated corpora write audio and score files in the real layouts; what a model, a metric or a
    corpus reader does must not shape them, or a test would check its code against itself."""
    modules = [m for m in IMPORTS if unit_of(m) == "standins"]
    assert modules, "distilmos/standins is missing"
    allowed = {"foundation", "data", "standins"}
    bad = [f"{m} imports {n}" for m in modules for n in IMPORTS[m] if unit_of(n) not in allowed]
    assert not bad, "\n".join(bad)


def test_experts_stay_drop_in():
    """A ``downstream/<name>/`` folder imports only its own folder (relative), installed packages and
    third-party libraries, so that it can be copied into a stock s3prl checkout."""
    root = os.path.join(REPO, "downstream")
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):  # downstream/README.md indexes the experts
            continue
        for file in sorted(f for f in os.listdir(folder) if f.endswith(".py")):
            with open(os.path.join(folder, file), encoding="utf-8") as handle:
                tree = ast.parse(handle.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level:
                    assert node.level == 1, f"downstream/{name}/{file}: relative import out of its folder"
                    continue
                roots = [a.name.split(".")[0] for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom):
                    roots = [node.module.split(".")[0]]
                bad = [r for r in roots if r in ("downstream", "egs", "tests", "conftest", "run_downstream")]
                assert not bad, f"downstream/{name}/{file} imports {bad} from the checkout"


def test_public_names_of_moved_modules_still_import():
    """The public entry points kept their names through the package's regrouping."""
    import distilmos.data.stores as stores
    import upstream_tokens
    import upstream_tokens.feature_cache
    import upstream_tokens.store
    from distilmos.predictor import load
    from distilmos.predictor.cli import main as predict_main
    from upstream_tokens.cli import main as tokens_main

    assert upstream_tokens.store.TokenStore is stores.TokenStore is upstream_tokens.TokenStore
    assert upstream_tokens.store.TokenStoreError is stores.TokenStoreError
    assert upstream_tokens.feature_cache.FeatureStore is stores.FeatureStore
    assert upstream_tokens.feature_cache.FeatureCacheError is stores.FeatureCacheError
    assert callable(load) and callable(predict_main) and callable(tokens_main)
    assert os.path.isfile(os.path.join(REPO, "run_downstream.py"))
