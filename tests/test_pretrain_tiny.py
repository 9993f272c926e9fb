"""The offline pretraining of a tiny HuBERT (distilmos.pretrain.tiny_hubert) and the checkpoint the demo ships."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, load_script

from distilmos.pretrain import masked_prediction as mp
from distilmos.pretrain.tiny_hubert import main as pretrain_main
from distilmos.upstream.build import build_upstream

SHIPPED = os.path.join(REPO, "egs", "demo", "pretrained", "tiny_hubert.pt")


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """A pool of 10 eSpeak NG utterances and 4 of the demo generator's: the path of its pool.csv."""
    make_pool = load_script("egs/pretrain_tiny/local/make_pool.py", "pretrain_make_pool")
    return make_pool.make_pool(str(tmp_path_factory.mktemp("pool")), n_utts=10, n_generated=4, seed=0, quiet=True)


def _rows(pool_csv):
    with open(pool_csv, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_pool_is_real_espeak_speech_with_labels(pool):
    from distilmos.data.audio import load_audio

    rows = _rows(pool)
    assert {r["split"] for r in rows} == {"train", "heldout"}
    espeak = [r for r in rows if r["source"] == "espeak"]
    assert len(espeak) == 10 and all(r["voice"] and r["rate"] in ("slow", "medium", "fast") for r in espeak)
    wav = load_audio(os.path.join(os.path.dirname(pool), espeak[0]["wav_path"]))
    assert len(wav) > 16000 and float(wav.abs().max()) > 0.1  # a sentence of audible speech


def test_every_pool_voice_speaks_the_same_samples_in_every_process():
    """The pool, and so the shipped checkpoint, is reproducible only if eSpeak NG is (its breathy variants
    are not: they draw noise that differs between processes)."""
    code = (
        "import hashlib, sys; sys.path.insert(0, sys.argv[1]); import make_pool; synth = make_pool.Espeak(); "
        "print([hashlib.sha256(synth.say('The old clock rang twice.', voice=v, rate=r).tobytes()).hexdigest() "
        "for v in make_pool.VOICES for r in (120, 260)])"
    )
    local = os.path.join(REPO, "egs", "pretrain_tiny", "local")
    runs = [
        subprocess.run([sys.executable, "-c", code, local], capture_output=True, text=True, timeout=120)
        for _ in range(2)
    ]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    assert runs[0].stdout == runs[1].stdout


def test_a_training_step_lowers_the_masked_prediction_loss(pool):
    from distilmos.data.audio import load_audio

    torch.set_num_threads(1)
    rows = _rows(pool)[:4]
    wavs = [load_audio(os.path.join(os.path.dirname(pool), r["wav_path"])) for r in rows]
    assign = mp.fit_kmeans([mp.mfcc_frames(w) for w in wavs], k=8, seed=0)
    targets = [assign(mp.mfcc_frames(w)) for w in wavs]
    batch = mp.make_batch(wavs, targets, np.random.default_rng(0), crop_samples=16000)
    model, _ = mp.build_model(mp.hubert_config(8), 8, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = [mp.train_step(model, optimizer, batch, mask_seed=(0,))["loss"] for _ in range(4)]
    assert losses[-1] < losses[0], losses


def test_pretraining_is_reproducible_and_loads_as_hubert_local(pool, tmp_path):
    torch.set_num_threads(1)
    argv = [
        "--pool",
        pool,
        "--iterations",
        "2",
        "--k",
        "8,8",
        "--steps",
        "3",
        "--batch_size",
        "4",
        "--crop_s",
        "0.5",
        "--eval_every",
        "2",
        "--eval_utts",
        "2",
        "--probe",
        "voice",
        "--quiet",
    ]
    outs = [str(tmp_path / name / "tiny.pt") for name in ("a", "b")]
    for out in outs:
        assert pretrain_main(argv + ["--out", out]) == 0
    first, second = (torch.load(o, map_location="cpu") for o in outs)
    assert first["model_weight"].keys() == second["model_weight"].keys()
    for name, tensor in first["model_weight"].items():  # bit-identical: same seed, same thread count
        assert torch.equal(tensor, second["model_weight"][name]), name
    with open(str(tmp_path / "a" / "tiny.report.json"), encoding="utf-8") as handle:
        report = json.load(handle)
    assert [it["targets"] for it in report["iterations"]] == ["MFCC k-means", "layer 2 k-means"]
    assert len(report["probes"]["voice"]["trained"]["layers"]) == 4
    for suffix in (".card.md", ".curves.png"):
        assert os.path.getsize(str(tmp_path / "a" / ("tiny" + suffix))) > 0

    # the toolkit's -u hubert_local -k path (s3prl's hub) and upstream_tokens both take it
    upstream = build_upstream("hubert_local", outs[0])
    hidden = upstream([torch.zeros(16000)])["hidden_states"]
    assert len(hidden) == 4 and hidden[0].shape == (1, 49, 64)
    from upstream_tokens import cli

    data = tmp_path / "list.csv"
    root = os.path.dirname(pool)
    with open(data, "w", encoding="utf-8") as handle:
        handle.write("sample_id,system_id,wav_path,score\n")
        handle.writelines(
            f"u{i},s{i % 2},{os.path.join(root, row['wav_path'])},3.0\n" for i, row in enumerate(_rows(pool)[:6])
        )
    assert (
        cli.main(
            [
                "fit",
                "--csv",
                str(data),
                "-u",
                "hubert_local",
                "-k",
                outs[0],
                "--n_clusters",
                "4",
                "--out",
                str(tmp_path / "tokens"),
                "--quiet",
                "--device",
                "cpu",
            ]
        )
        == 0
    )


def test_pool_without_a_heldout_split_is_refused(tmp_path, capsys):
    (tmp_path / "pool.csv").write_text("wav_path,split\nx.wav,train\n")
    assert pretrain_main(["--pool", str(tmp_path / "pool.csv"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "heldout" in capsys.readouterr().err


def test_the_shipped_checkpoint_loads_and_its_card_holds_its_hash():
    from distilmos.fileio import sha256_file

    upstream = build_upstream("hubert_local", SHIPPED)
    hidden = upstream([torch.zeros(8000)])["hidden_states"]
    assert len(hidden) == 4
    assert os.path.getsize(SHIPPED) < 8 * 2**20
    with open(SHIPPED.replace(".pt", ".card.md"), encoding="utf-8") as handle:
        card = handle.read()
    assert sha256_file(SHIPPED) in card and "egs/pretrain_tiny/run.sh" in card
