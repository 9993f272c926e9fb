"""Distill-MOS and DNSMOS as ``peer://`` predictors: through the same engine as a predictor file, their scores
equal each package's own API on the same files; the card; the command line, ``load()``, torch.hub and the
compression recipe's teacher; and one clear message when the ``peers`` extra is not installed.

The packages ship their weights (``pip install -e '.[peers]'``, which ``make install`` does); without them
the tests that need them are skipped, and the missing-extra message is still checked.
"""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO

from distilmos.predictor import load, peers
from distilmos.predictor.cli import main as predict_main

#: lengths (s) that take every windowing branch: Distill-MOS pads below 7.68 s and crops above it (10.2 s: 4
#: crops); DNSMOS repeats below 9.01 s (0.6 s: four doublings, to 9.6 s; 2.3 s: two) and hops above it (10.2 s:
#: 2 windows). Few windows in all: DNSMOS takes about a second per window on a busy CPU
SECONDS = (0.6, 2.3, 10.2)


def _installed(*modules):
    missing = [m for m in modules if m not in sys.modules and __import__("importlib").util.find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed: pip install -e '.[peers]'")


needs_distillmos = _installed("distillmos")
needs_dnsmos = _installed("speechmos", "onnxruntime", "librosa")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """16 kHz speech-like clips (noise shaped by a syllable envelope) of :data:`SECONDS`, and one at 22.05 kHz."""
    folder = tmp_path_factory.mktemp("peer_wavs")
    rng = np.random.default_rng(0)
    paths = []
    for i, seconds in enumerate(SECONDS + (2.1,)):
        sr = 22050 if i == len(SECONDS) else 16000
        t = np.arange(int(seconds * sr)) / sr
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
        x = 0.2 * envelope * (np.sin(2 * np.pi * 180 * t) + 0.3 * rng.standard_normal(len(t)))
        path = str(folder / f"clip{i}.wav")
        sf.write(path, x.astype(np.float32), sr, subtype="PCM_16")
        paths.append(path)
    return paths


def _read(path):
    samples, sr = sf.read(path, dtype="float32")
    return samples, sr


@needs_distillmos
def test_distillmos_scores_equal_the_package_on_the_same_files(files):
    import distillmos
    import torchaudio

    model = distillmos.ConvTransformerSQAModel().eval()
    expected = []
    for path in files:  # as its command line reads a file: torchaudio's resampler to 16 kHz, then the model
        samples, sr = _read(path)
        x = torch.from_numpy(samples)[None]
        if sr != 16000:
            x = torchaudio.transforms.Resample(sr, 16000)(x)
        with torch.no_grad():
            expected.append(float(model(x)))
    predictor = load("peer://distillmos", device="cpu", batch_size=8)
    assert predictor.max_seconds == 0 and predictor.max_pad is None  # its own windowing; batches mix lengths
    assert len(predictor.plan([16000 * 2, 16000 * 11])[1]) == 1
    got = predictor.predict(paths=files)  # one batch: 1 + 1 + 4 + 1 crops through the model together
    assert got == pytest.approx(expected, abs=1e-5)
    assert len({round(e, 3) for e in expected}) == len(files)
    # one by one: the same scores
    assert load("peer://distillmos", device="cpu", batch_size=1).predict(paths=files) == pytest.approx(got, abs=1e-5)
    starts = predictor.pipeline.crop_starts(int(10.2 * 16000))
    assert starts[0] == 0 and starts[-1] == int(10.2 * 16000) - 122880 and len(starts) == 4


@needs_dnsmos
def test_dnsmos_scores_equal_the_package_on_the_same_files(files, tmp_path):
    from speechmos import dnsmos

    at_16k = files[: len(SECONDS)]  # the package reads other rates with its own resampler (see the card)
    theirs = [dnsmos.run(_read(path)[0], 16000) for path in at_16k]
    for score, key in (("p808", "p808_mos"), ("ovrl", "ovrl_mos")):
        got = load(f"peer://dnsmos/{score}", device="cpu").predict(paths=at_16k)
        assert got == pytest.approx([float(t[key]) for t in theirs], abs=1e-6), score
    assert len({round(float(t["p808_mos"]), 4) for t in theirs}) == len(at_16k)
    # the command line writes the same (six decimals)
    out = tmp_path / "p808.csv"
    assert predict_main(["score", "peer://dnsmos/p808", *at_16k, "-o", str(out), "-q"]) == 0
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["wav_path"] for r in rows] == at_16k
    assert [float(r["pred"]) for r in rows] == pytest.approx([float(t["p808_mos"]) for t in theirs], abs=1e-6)


@needs_dnsmos
def test_dnsmos_takes_what_the_package_refuses_and_the_engine_keeps_bad_files_out(tmp_path):
    loud = tmp_path / "loud.wav"
    sf.write(loud, 1.5 * np.sin(np.linspace(0, 2000, 16000)).astype(np.float32), 16000, subtype="FLOAT")
    (tmp_path / "empty.wav").write_bytes(b"")
    predictor = load("peer://dnsmos/ovrl", device="cpu")
    scores = predictor.predict(paths=[str(loud), str(tmp_path / "empty.wav")], on_error="nan")
    assert np.isfinite(scores[0]) and np.isnan(scores[1])  # clipped as 16-bit PCM would; the empty one named


@needs_distillmos
@needs_dnsmos
def test_info_prints_a_card_for_each_peer(capsys):
    from importlib import metadata

    for ref, package, params in (  # DNSMOS: the weights of the ONNX model behind the score
        ("peer://distillmos", "distillmos", 4_133_226),
        ("peer://dnsmos/p808", "speechmos", 54_945),
        ("peer://dnsmos/ovrl", "speechmos", 287_292),
    ):
        assert predict_main(["info", ref, "--json"]) == 0
        card = json.loads(capsys.readouterr().out)
        assert card["peer"] == ref and card["source"] == {"package": package, "version": metadata.version(package)}
        assert card["score"] and card["windowing"].startswith("the package's") and len(card["weights"]["sha256"]) == 64
        assert card["parameters"] == params


def test_an_unknown_peer_or_a_missing_extra_is_one_clear_error(files, monkeypatch, capsys):
    assert predict_main(["score", "peer://utmos", files[0], "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("distilmos-predict: error: peer://utmos: no such peer predictor; known: peer://distillmos")
    assert predict_main(["info", "peer://dnsmos"]) == 2
    assert "name one, e.g. peer://dnsmos/p808" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "distillmos", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    for ref, missing in (("peer://distillmos", "distillmos"), ("peer://dnsmos/ovrl", "onnxruntime")):
        assert predict_main(["score", ref, files[0], "-q"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"distilmos-predict: error: {ref}: needs the optional extra 'peers' ({missing}")
        assert "pip install 'distilmos[peers]'" in err
        with pytest.raises(peers.PeerError, match="optional extra 'peers'"):
            load(ref)


@needs_distillmos
def test_torch_hub_serves_the_peers_by_name(files):
    predictor = torch.hub.load(REPO, "peer", source="local", name="distillmos", device="cpu")
    assert predictor.predict(paths=files[:1]) == load("peer://distillmos", device="cpu").predict(paths=files[:1])


@needs_distillmos
def test_a_peer_teaches_the_compression_recipe(files, tmp_path):
    """egs/compress/run.sh --teacher peer://distillmos: pseudo-labels are its scores; pruning is refused."""
    from distilmos.compress.prune import PruneError, prune

    pool = tmp_path / "pool.csv"
    with open(pool, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample_id", "system_id", "wav_path"])
        writer.writerows([f"c{i}", "pool", path] for i, path in enumerate(files))
    workdir = tmp_path / "work"
    (workdir / "pool").mkdir(parents=True)
    os.replace(pool, workdir / "pool" / "pool.csv")
    env = dict(os.environ, OMP_NUM_THREADS="1", PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    result = subprocess.run(
        ["bash", os.path.join(REPO, "egs", "compress", "run.sh"), "--teacher", "peer://distillmos", "--workdir",
         str(workdir), "--stage", "3", "--stop_stage", "3"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    with open(workdir / "pseudo.csv", newline="") as handle:
        labels = [float(r["score"]) for r in csv.DictReader(handle)]
    assert labels == pytest.approx(load("peer://distillmos", device="cpu").predict(paths=files), abs=1e-5)
    sidecar = json.load(open(workdir / "pseudo.csv.teacher.json"))
    assert sidecar["teacher"] == "peer://distillmos" and sidecar["teacher_expert"] == "peer://distillmos"
    with pytest.raises(PruneError, match="peer://distillmos: another package's predictor has no fine-tuned SSL"):
        prune("peer://distillmos", str(workdir / "pseudo.csv"), str(tmp_path / "pruned"), [0.5])
