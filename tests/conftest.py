"""Shared fixtures: tiny real-format upstream checkpoints and generated corpora, built once per session."""

import importlib.util
import os
import sys

# The tests run tiny models, for which one thread is as fast as two, and some spawn two processes on
# a two-core machine: more threads than cores makes OpenMP's spin-waiting stall everything (50x seen).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(autouse=True, scope="session")
def one_thread_pools():
    """numpy's BLAS and scikit-learn's OpenMP pools too: small k-means steps lose a lot to a shared CPU."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(os.environ["OMP_NUM_THREADS"])):
        yield


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(relpath: str, name: str = None):
    """Import a script of the repository (egs/ folders are not packages) as a module, with its folder on
    ``sys.path`` as when it runs (a script imports the modules beside it)."""
    path = os.path.join(REPO, relpath)
    if os.path.dirname(path) not in sys.path:
        sys.path.append(os.path.dirname(path))
    name = name or relpath.replace("/", "_").replace(".py", "")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def console_scripts() -> dict[str, str]:
    """``{command: "module:function"}`` of the console scripts setup.py declares (read off its source)."""
    import ast

    with open(os.path.join(REPO, "setup.py"), encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            entries = ast.literal_eval(node.value)["console_scripts"]
            return {name.strip(): target.strip() for name, _, target in (e.partition("=") for e in entries)}
    raise AssertionError("setup.py declares no entry_points")


@pytest.fixture(scope="session")
def tiny_ckpts(tmp_path_factory):
    """``{arch: path}`` of tiny seeded checkpoints for wavlm, hubert and wav2vec2."""
    from distilmos.upstream.tiny import ARCHS, write_checkpoint

    root = tmp_path_factory.mktemp("tiny")
    return {arch: write_checkpoint(str(root / f"{arch}.pt"), arch) for arch in ARCHS}


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory):
    """A small generated corpus in the BVCC and SOMOS layouts: ``(root, record)``."""
    from distilmos.standins import make_corpus

    root = tmp_path_factory.mktemp("corpus")
    record = make_corpus(
        str(root), seed=0, bvcc_systems=6, bvcc_utts_per_system=8, somos_systems=4, somos_utts_per_system=6
    )
    return str(root), record


@pytest.fixture(scope="session")
def demo_data(demo_corpus, tmp_path_factory):
    """Data list CSVs of the generated corpus: ``{"bvcc": dir, "somos": dir}``."""
    root, _ = demo_corpus
    out = tmp_path_factory.mktemp("data")
    from distilmos import corpora

    for name in ("bvcc", "somos"):
        corpora.prepare(name, os.path.join(root, name), str(out / name), progress=False)
    return {"bvcc": str(out / "bvcc"), "somos": str(out / "somos")}


# Durations in seconds; repeated lengths make multi-utterance batches even with max_pad=0.
DURATIONS = [0.5, 0.5, 0.75, 0.8, 0.82, 1.0, 1.1, 0.3, 0.6, 0.95, 0.5, 0.62]


def write_corpus(folder, durations=DURATIONS, seed=0, name="list.csv"):
    """Generated wavs (tones + noise, 16 kHz PCM) and a data list with relative paths."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "wav"), exist_ok=True)
    rows = ["sample_id,system_id,wav_path,score"]
    for i, seconds in enumerate(durations):
        n = int(seconds * 16000)
        t = np.arange(n) / 16000
        wav = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.05 * rng.standard_normal(n)
        sf.write(os.path.join(folder, "wav", f"utt{i:02d}.wav"), wav.astype(np.float32), 16000, subtype="PCM_16")
        rows.append(f"sys{i % 3}-utt{i:02d},sys{i % 3},wav/utt{i:02d}.wav,{rng.uniform(1, 5):.2f}")
    csv = os.path.join(folder, name)
    with open(csv, "w", encoding="utf-8") as handle:
        handle.write("\n".join(rows) + "\n")
    return csv


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The data list of a :func:`write_corpus` corpus (12 short utterances), one per test module (a module
    may define its own ``corpus``)."""
    return write_corpus(str(tmp_path_factory.mktemp("corpus")))
