"""Shared fixtures: tiny real-format upstream checkpoints and generated corpora, built once per session."""
import importlib.util
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(relpath: str, name: str = None):
    """Import a script of the repository (egs/ folders are not packages) as a module."""
    path = os.path.join(REPO, relpath)
    name = name or relpath.replace("/", "_").replace(".py", "")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_ckpts(tmp_path_factory):
    """``{arch: path}`` of tiny seeded checkpoints for wavlm, hubert and wav2vec2."""
    from distilmos.tiny_upstream import ARCHS, write_checkpoint

    root = tmp_path_factory.mktemp("tiny")
    return {arch: write_checkpoint(str(root / f"{arch}.pt"), arch) for arch in ARCHS}
