"""Models by reference: ``hf://`` files through a pre-filled Hugging Face cache with the network off (score, info,
``load()``, ``import --source hf://BaleYang/DistilMOS``, ``torch.hub.load`` of the checkout's hubconf.py), the
one clear error for an id that is not cached, and the trust rule for what the resolver fetches.

The cache is built in ``huggingface_hub``'s own layout (``models--<owner>--<repo>/{blobs,snapshots/<commit>,
refs/main}``, snapshot files linking to their blobs) under a temporary ``HF_HUB_CACHE``, with
``HF_HUB_OFFLINE=1``: nothing here reaches the network.
"""

import csv
import hashlib
import os

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO, load_script

from distilmos.predictor import RemoteCodeError, load
from distilmos.predictor.cli import main as predict_main
from distilmos.predictor.fileformat import read_predictor, write_predictor
from distilmos.predictor.sources import SourceError, identity, parse_hub, resolve

COMMIT = "0123456789abcdef0123456789abcdef01234567"
NEWER = "fedcba9876543210fedcba9876543210fedcba98"


def fill_hub_cache(cache, repo_id: str, files: dict, commit: str = COMMIT, revision: str = "main") -> str:
    """Put ``{path in repo: local file}`` into the hub cache ``cache`` as ``huggingface_hub`` leaves a download:
    content-addressed blobs, snapshot files linking to them, ``refs/<revision>`` naming the commit."""
    root = os.path.join(cache, "models--" + repo_id.replace("/", "--"))
    for rel, src in files.items():
        with open(src, "rb") as handle:
            data = handle.read()
        blob = os.path.join(root, "blobs", hashlib.sha256(data).hexdigest())
        os.makedirs(os.path.dirname(blob), exist_ok=True)
        with open(blob, "wb") as handle:
            handle.write(data)
        link = os.path.join(root, "snapshots", commit, rel)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.relpath(blob, os.path.dirname(link)), link)
    os.makedirs(os.path.join(root, "refs"), exist_ok=True)
    with open(os.path.join(root, "refs", revision), "w") as handle:
        handle.write(commit)
    return root


@pytest.fixture(scope="module")
def tiny_model(tiny_ckpts, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "tiny.pt")
    return load_script("egs/bench/predict_bench.py", "predict_bench").write_random_predictor(tiny_ckpts["wavlm"], path)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(0)
    paths = []
    for i, n in enumerate((16000, 11025, 24000)):
        path = str(folder / f"u{i}.wav")
        sf.write(path, (0.1 * rng.standard_normal(n)).astype(np.float32), 16000 if i != 1 else 22050)
        paths.append(path)
    return paths


@pytest.fixture
def hub(tmp_path, monkeypatch, tiny_model):
    """An offline hub cache holding ``hf://tester/tiny-mos/models/tiny.pt`` (main and an older commit)."""
    cache = str(tmp_path / "hub")
    monkeypatch.setenv("HF_HUB_CACHE", cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fill_hub_cache(cache, "tester/tiny-mos", {"models/tiny.pt": tiny_model})
    return cache


def test_references_parse_and_say_what_is_wrong():
    ref = parse_hub("hf://BaleYang/DistilMOS/wavlm/model.pth.tar@v1.0")
    assert (ref.repo_id, ref.path, ref.revision) == ("BaleYang/DistilMOS", "wavlm/model.pth.tar", "v1.0")
    assert str(ref) == "hf://BaleYang/DistilMOS/wavlm/model.pth.tar@v1.0"
    assert str(parse_hub("hf://BaleYang/DistilMOS").child("w2v2", "model_cfg.yaml")) == (
        "hf://BaleYang/DistilMOS/w2v2/model_cfg.yaml"
    )
    for bad, message in (
        ("hf://BaleYang", "hf://<owner>/<repo>/<path/in/repo>"),
        ("hf://a/b/../c.pt", "hf://<owner>/<repo>"),
        ("hf://a/b/c.pt@", "revision after '@'"),
    ):
        with pytest.raises(SourceError, match=message):
            parse_hub(bad)
    with pytest.raises(SourceError, match="names a repository, not a file"):
        resolve("hf://BaleYang/DistilMOS")
    assert resolve("model.pt") == "model.pt"  # a local path is left to the reader to check


def test_score_info_and_load_resolve_an_hf_file_from_the_cache_offline(hub, tiny_model, wavs, tmp_path, capsys):
    ref = "hf://tester/tiny-mos/models/tiny.pt"
    expected = load(tiny_model, device="cpu").predict(paths=wavs)
    for reference in (ref, f"{ref}@main", f"{ref}@{COMMIT}"):
        assert load(reference, device="cpu").predict(paths=wavs) == expected
    assert identity(ref)["sha256"] == identity(tiny_model)["sha256"] and identity(ref)["commit"] == COMMIT

    out = tmp_path / "scores.csv"
    assert predict_main(["score", ref, *wavs, "-o", str(out), "-q", "--device", "cpu"]) == 0
    with open(out, newline="") as handle:
        assert [float(r["pred"]) for r in csv.DictReader(handle)] == pytest.approx(expected, abs=1e-6)
    assert predict_main(["info", ref, "--json"]) == 0
    assert "random weights, for speed measurements only" in capsys.readouterr().out


def test_an_id_that_is_not_cached_is_one_clear_error_offline(hub, wavs, capsys):
    for ref, named in (
        ("hf://tester/absent/model.pt", "huggingface-cli download tester/absent model.pt"),
        ("hf://tester/tiny-mos/models/other.pt", "huggingface-cli download tester/tiny-mos models/other.pt"),
        (f"hf://tester/tiny-mos/models/tiny.pt@{NEWER}", f"--revision {NEWER}"),
    ):
        for argv in (["score", ref, wavs[0], "-q"], ["info", ref]):
            assert predict_main(argv) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "Traceback" not in err
            assert err.startswith(f"distilmos-predict: error: {ref}: not in the Hugging Face cache ({hub})"), err
            assert "HF_HUB_OFFLINE is set" in err and named in err
    with pytest.raises(SourceError, match="hf://tester/absent/model.pt: not in the Hugging Face cache"):
        load("hf://tester/absent/model.pt", device="cpu")


def test_a_fetched_file_that_names_code_needs_the_trust_opt_in(tmp_path, monkeypatch, wavs, capsys):
    """What the resolver fetches is as untrusted as a local file: the same refusal, after the download."""
    from test_faults import _spec_blob

    crafted = str(tmp_path / "crafted.pt")
    write_predictor(_spec_blob("os:abort"), crafted)
    cache = str(tmp_path / "hub")
    fill_hub_cache(cache, "mallory/free-mos", {"model.pt": crafted})
    monkeypatch.setenv("HF_HUB_CACHE", cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ref = "hf://mallory/free-mos/model.pt"
    with pytest.raises(RemoteCodeError, match="trust_remote_code=True"):
        load(ref, device="cpu")
    assert predict_main(["score", ref, wavs[0], "-q", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"distilmos-predict: error: {ref}") and "'os:abort'" in err and "--trust_remote_code" in err


def test_the_authors_repo_id_imports_with_backbone(tmp_path, monkeypatch, capsys):
    from test_import_authors import _assert_same, build_reference, model_cfg, write_release

    from distilmos.fileio import sha256_file
    from distilmos.predictor.import_authors import import_authors

    cfg = model_cfg("wavlm")
    folder = write_release(str(tmp_path / "release"), "wavlm", build_reference("wavlm", cfg, seed=5), cfg)
    cache = str(tmp_path / "hub")
    names = ("model.pth.tar", "model_cfg.yaml")
    fill_hub_cache(cache, "BaleYang/DistilMOS", {f"wavlm/{n}": os.path.join(folder, n) for n in names})
    monkeypatch.setenv("HF_HUB_CACHE", cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "distilmos_wavlm.pt"
    argv = ["import", "--source", "hf://BaleYang/DistilMOS", "--backbone", "wavlm", "-o", str(out)]
    assert predict_main(argv) == 0
    assert "wavlm/model.pth.tar" in capsys.readouterr().err
    card = read_predictor(str(out))["card"]
    assert card["source"]["repo"] == "https://huggingface.co/BaleYang/DistilMOS" and card["source"]["commit"] == COMMIT
    assert card["source"]["checkpoint"]["file"] == "wavlm/model.pth.tar"
    assert card["source"]["checkpoint"]["sha256"] == sha256_file(os.path.join(folder, "model.pth.tar"))
    local = tmp_path / "local.pt"
    import_authors(folder, "wavlm", str(local))
    for section in ("upstream", "featurizer", "downstream"):
        _assert_same(read_predictor(str(out))[section], read_predictor(str(local))[section])
    # the backbone folder, or the two files, by reference too
    for source in (["hf://BaleYang/DistilMOS/wavlm"], [f"hf://BaleYang/DistilMOS/wavlm/{n}" for n in names]):
        assert import_authors(source, "wavlm", str(tmp_path / "again.pt"))["source"]["commit"] == COMMIT
    # the other backbone is not in this cache: one error naming the file it looked for
    assert predict_main(["import", "--source", "hf://BaleYang/DistilMOS", "--backbone", "w2v2", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("distilmos-predict: error: hf://BaleYang/DistilMOS/w2v2/model.pth.tar: not in the")


def test_torch_hub_loads_the_checkout_hubconf(hub, tiny_model, wavs):
    expected = load(tiny_model, device="cpu").predict(paths=wavs)
    for path in (tiny_model, "hf://tester/tiny-mos/models/tiny.pt"):
        predictor = torch.hub.load(REPO, "predictor", source="local", path=path, device="cpu", batch_size=1)
        assert predictor.batch_size == 1 and predictor.predict(paths=wavs) == expected
    with pytest.raises(SourceError, match="not in the Hugging Face cache"):
        torch.hub.load(REPO, "predictor", source="local", path="hf://tester/absent/x.pt", device="cpu")
