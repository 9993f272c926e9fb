"""The predictor: export from an experiment checkpoint, the file, ``distilmos-predict``, the Python API.

Two tiny models are trained once for the module (4 steps each, tiny WavLM): DistilMOS (with its token
heads) and the SSL-MOS baseline (last layer, no featurizer weights).
"""

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from downstream_helpers import DOWNSTREAM, evaluate, short_run, train_argv

from distilmos.data.audio import load_audio
from distilmos.data.datalist import read_datalist
from distilmos.data.dataset import MOSDataset, eval_loader
from distilmos.eval.metrics import METRIC_KEYS, compute_metrics
from distilmos.predictor import PredictionError, PredictorFileError, export, load
from distilmos.predictor.chunking import chunk_windows, weighted_mean
from distilmos.predictor.cli import main as cli_main
from distilmos.train.runner import run as run_downstream_main

EXPERTS = {
    "distilmos": ("distilmos", ()),
    "ssl_mos": ("ssl_mos", ("-s", "last_hidden_state")),
}
EVAL_BATCH = 8


@pytest.fixture(scope="module")
def experiments(demo_data, tiny_ckpts, tmp_path_factory):
    """``{expert: expdir}`` of models trained 4 steps on the generated BVCC-layout corpus."""
    from upstream_tokens.dump import dump_split
    from upstream_tokens.fit import fit_store

    root = tmp_path_factory.mktemp("predictor_exp")
    train_csv = os.path.join(demo_data["bvcc"], "train.csv")
    store = str(root / "tokens")
    fit_store(train_csv, "wavlm_local", tiny_ckpts["wavlm"], store, n_clusters=8, batch_size=64, progress=False)
    dump_split(train_csv, store, "train", upstream_ckpt=tiny_ckpts["wavlm"], progress=False)
    expdirs = {}
    for name, (downstream, extra_args) in EXPERTS.items():
        expdirs[name] = str(root / name)
        extra = {"config.downstream_expert.datarc.token_store": store} if name == "distilmos" else {}
        overrides = short_run(demo_data["bvcc"], eval_batch=EVAL_BATCH, **extra)
        argv = train_argv(tiny_ckpts["wavlm"], expdirs[name], downstream, "-f", *extra_args, overrides=overrides)
        run_downstream_main([DOWNSTREAM], argv)
    return expdirs


@pytest.fixture(scope="module")
def models(experiments, tmp_path_factory):
    """``{expert: predictor file}`` exported from each experiment's best checkpoint."""
    root = tmp_path_factory.mktemp("predictor_models")
    out = {}
    for name, expdir in experiments.items():
        out[name] = str(root / f"{name}.pt")
        export(os.path.join(expdir, "best-states-val.ckpt"), out[name])
    return out


def _read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ---- export equals the runner -------------------------------------------------------------------------


@pytest.mark.parametrize("expert", list(EXPERTS))
def test_exported_scores_equal_runnerevaluate(experiments, models, demo_data, expert):
    """One by one, the predictor gives the runner's `-m evaluate` predictions (eval batch size 1)."""
    test_csv = os.path.join(demo_data["bvcc"], "test.csv")
    utts = read_datalist(test_csv)
    runner_preds, _ = evaluate(experiments[expert], "test", batch_size=1)
    predictor = load(models[expert], device="cpu", batch_size=1)
    ours = predictor.predict(paths=[u.wav_path for u in utts])
    gaps = [abs(runner_preds[u.sample_id] - p) for u, p in zip(utts, ours)]
    assert max(gaps) <= 1e-5, gaps


def test_batched_runner_evaluate_equals_one_by_one(experiments, demo_data):
    """The padding-exact forward: `-m evaluate` with a batch of 16 (lengths mixed, no padding cap) writes
    the predictions of eval batch 1."""
    utts = read_datalist(os.path.join(demo_data["bvcc"], "test.csv"))
    loader = eval_loader(MOSDataset(utts), 16, 320.0, 0)
    lengths = [utts[i].num_samples for i in max(loader.batch_sampler, key=len)]
    assert len(lengths) > 4 and min(lengths) < 0.7 * max(lengths)  # a batch with >30 % padding
    batched, _ = evaluate(experiments["distilmos"], "test", batch_size=16)
    alone, _ = evaluate(experiments["distilmos"], "test", batch_size=1)
    assert max(abs(batched[k] - alone[k]) for k in alone) <= 1e-5


def test_equal_lengths_batch_like_one_by_one(models, demo_data, tmp_path):
    """max_pad=0 batches only equal lengths, which gives every file its score alone."""
    utts = read_datalist(os.path.join(demo_data["bvcc"], "test.csv"))
    paths = []
    for k, utt in enumerate(utts[:4]):
        paths.append(str(tmp_path / f"cut{k}.wav"))
        sf.write(paths[-1], load_audio(utt.wav_path)[:24000].numpy(), 16000)
    batched = load(models["distilmos"], device="cpu", max_pad=0.0)
    assert len(batched.plan([24000] * 4)[1]) == 1  # all four in one batch
    alone = load(models["distilmos"], device="cpu", batch_size=1)
    np.testing.assert_allclose(batched.predict(paths=paths), alone.predict(paths=paths), atol=1e-5, rtol=0)


def test_default_batching_equals_one_by_one(models, demo_data):
    """WavLM runs padding-exact, so by default lengths mix freely in a batch (no padding cap) and every
    score equals the file's score alone; an upstream of unknown make keeps the strict cap."""
    import torch.nn as nn

    from distilmos.data.batching import STRICT_MAX_PAD
    from distilmos.predictor.predictor import default_max_pad

    utts = read_datalist(os.path.join(demo_data["bvcc"], "test.csv"))
    batched = load(models["distilmos"], device="cpu")
    assert batched.max_pad is None and batched.batch_size == 16
    assert max(len(b) for b in batched.plan([u.num_samples for u in utts])[1]) > 4
    alone = load(models["distilmos"], device="cpu", batch_size=1)
    paths = [u.wav_path for u in utts]
    np.testing.assert_allclose(batched.predict(paths=paths), alone.predict(paths=paths), atol=1e-5, rtol=0)
    assert default_max_pad(nn.Sequential(nn.Conv1d(1, 4, 10, 5), nn.GroupNorm(4, 4))) == STRICT_MAX_PAD


# ---- the file ---------------------------------------------------------------------------------------------


def test_file_holds_inference_weights_only(experiments, models):
    ckpt_path = os.path.join(experiments["distilmos"], "best-states-val.ckpt")
    from distilmos.fileio import allow_s3prl_checkpoints

    allow_s3prl_checkpoints()
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    blob = torch.load(models["distilmos"], map_location="cpu", weights_only=True)  # plain values only
    assert set(blob) == {"format", "format_version", "card", "upstream", "featurizer", "downstream"}
    down = blob["downstream"]["state_dict"]
    assert not any(k.startswith(("heads", "best_score")) for k in down)
    assert set(down) == {k[len("model.") :] for k in ckpt["Downstream"] if k.startswith("model.")}
    n_heads = sum(v.numel() for k, v in ckpt["Downstream"].items() if k.startswith("heads."))
    assert n_heads > 0 and blob["card"]["downstream"]["dropped"]["numel"] == n_heads + 1  # + best_score
    predictor = load(models["distilmos"], device="cpu")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(predictor.pipeline.downstream) == sum(
        v.numel()
        for k, v in ckpt["Downstream"].items()
        if k.startswith("model.") and "running_" not in k and "num_batches" not in k
    )
    # the fine-tuned upstream and the featurizer weights are the trained ones
    upstream = predictor.pipeline.upstream.state_dict()
    assert set(upstream) == set(ckpt["Upstream"])
    assert all(torch.equal(upstream[k], ckpt["Upstream"][k]) for k in upstream)
    assert torch.equal(predictor.pipeline.featurizer.weights, ckpt["Featurizer"]["weights"])
    assert os.path.getsize(models["distilmos"]) < os.path.getsize(ckpt_path) / 2  # no optimizer state, no heads


def test_info_prints_model_card(experiments, models, capsys, tiny_ckpts):
    assert cli_main(["info", models["distilmos"], "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    with open(os.path.join(experiments["distilmos"], "metrics_val_best.json")) as handle:
        best = json.load(handle)
    assert card["upstream"]["name"] == "wavlm_local" and card["upstream"]["checkpoint"] == tiny_ckpts["wavlm"]
    assert card["upstream"]["embedded"] and card["upstream"]["fine_tuned"]
    assert card["downstream"]["variant"] == "distilmos" and card["downstream"]["model"] == "DistilMOSModel"
    assert card["training_data"]["token_store"].endswith("tokens")  # the variant registered with tokens
    assert card["experiment"]["step"] == best["step"]
    assert card["validation"]["utt_SRCC"] == pytest.approx(best["utt_SRCC"])
    assert card["training_data"]["train"]["utterances"] == len(read_datalist(card["training_data"]["train"]["path"]))
    assert card["format_version"] == 1
    assert cli_main(["info", models["ssl_mos"]]) == 0
    text = capsys.readouterr().out
    assert "variant: ssl_mos" in text and "feature_selection: last_hidden_state" in text and "utt_SRCC:" in text


def test_non_predictor_files_are_refused_by_name(experiments, models, tmp_path, capsys):
    ckpt_path = os.path.join(experiments["distilmos"], "best-states-val.ckpt")
    with pytest.raises(PredictorFileError, match="experiment checkpoint.*export"):
        load(ckpt_path)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(PredictorFileError, match="notes.pt: not a DistilMOS predictor file"):
        load(str(text))
    blob = torch.load(models["ssl_mos"], weights_only=True)
    blob["format_version"] = 99
    future = tmp_path / "future.pt"
    torch.save(blob, future)
    with pytest.raises(PredictorFileError, match="future.pt: predictor file format version 99"):
        load(str(future))
    assert cli_main(["score", str(text), ckpt_path]) == 2
    assert "notes.pt: not a DistilMOS predictor file" in capsys.readouterr().err


def test_export_command_and_refusals(experiments, models, demo_data, tmp_path, capsys):
    out = tmp_path / "ssl.pt"
    ckpt_path = os.path.join(experiments["ssl_mos"], "best-states-val.ckpt")
    assert cli_main(["export", "-e", ckpt_path, "-o", str(out)]) == 0
    assert "ssl_mos (ssl_mos) on wavlm_local" in capsys.readouterr().err
    wav = read_datalist(os.path.join(demo_data["bvcc"], "test.csv"))[0].wav_path
    assert load(str(out)).predict(paths=[wav]) == load(models["ssl_mos"]).predict(paths=[wav])
    assert cli_main(["export", "-e", models["ssl_mos"], "-o", str(tmp_path / "again.pt")]) == 2
    assert "not an s3prl experiment checkpoint (it is already a predictor file)" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "again.pt")


@pytest.mark.parametrize("arch", ["wavlm", "hubert", "wav2vec2"])
def test_embedded_upstreams_rebuild_with_their_fine_tuned_weights(tiny_ckpts, arch):
    """WavLM, HuBERT and wav2vec 2.0 go into the file whole (config + weights in the *_local format)."""
    import io

    from distilmos.predictor import upstream_entry as parts

    model, configs = parts.build_for_export(f"{arch}_local", tiny_ckpts[arch], None)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # stands in for fine-tuning
        for param in model.parameters():
            param.add_(0.01 * torch.randn(param.shape, generator=generator))
    entry = parts.make_entry(model, f"{arch}_local", tiny_ckpts[arch], None, configs)
    assert entry["kind"] == arch
    buffer = io.BytesIO()
    torch.save(entry, buffer)
    buffer.seek(0)
    rebuilt = parts.rebuild(torch.load(buffer, weights_only=True))
    wav = 0.1 * torch.randn(20000, generator=generator)
    with torch.no_grad():
        expected, got = model.eval()([wav])["hidden_states"], rebuilt([wav])["hidden_states"]
    assert len(expected) == len(got) and all(torch.equal(a, b) for a, b in zip(expected, got))


def test_wavlm_entry_can_take_the_last_layer_before_the_final_layer_norm():
    """``last_layer_before_final_norm``: a layer_norm_first WavLM's last hidden state is layer N's output, not
    the encoder's (its final LayerNorm applied); the other layers, the count and batching stay as they are."""
    from distilmos.predictor import upstream_entry as parts
    from distilmos.upstream.tiny import build_checkpoint

    checkpoint = build_checkpoint("wavlm", "tiny", 0, None, "layer_norm")
    assert checkpoint["cfg"]["layer_norm_first"]
    entry = {
        "kind": "wavlm",
        "spec": {"name": "wavlm_local", "ckpt": None, "model_config": None},
        "checkpoint": checkpoint,
    }
    plain, before = parts.rebuild(entry), parts.rebuild(dict(entry, last_layer_before_final_norm=True))
    layer_n = []
    before.model.encoder.layers[-1].register_forward_hook(lambda m, args, out: layer_n.append(out[0].transpose(0, 1)))
    generator = torch.Generator().manual_seed(0)
    wavs = [0.1 * torch.randn(n, generator=generator) for n in (16000, 9137, 12345)]
    with torch.no_grad():
        expected, out = plain(wavs)["hidden_states"], before(wavs)
        got = out["hidden_states"]
        assert len(got) == len(expected) == 4 and all(torch.equal(a, b) for a, b in zip(expected[:-1], got[:-1]))
        assert torch.equal(got[-1], layer_n[-1]) and out["last_hidden_state"] is got[-1]
        assert torch.allclose(before.model.encoder.layer_norm(got[-1]), expected[-1], atol=1e-6)
        assert not torch.allclose(got[-1], expected[-1], atol=1e-2)
        for i, wav in enumerate(wavs):  # padding-exact still: each utterance's frames as alone
            alone = before([wav])["hidden_states"]
            frames = alone[0].shape[1]
            assert all(torch.allclose(a[0], b[i, :frames], atol=1e-5) for a, b in zip(alone, got))
    # the key survives making an entry again, and files without it are unchanged
    assert (
        parts.make_entry(before, "wavlm_local", None, None, {"cfg": checkpoint["cfg"]})["last_layer_before_final_norm"]
        is True
    )
    assert "last_layer_before_final_norm" not in parts.make_entry(
        plain, "wavlm_local", None, None, {"cfg": checkpoint["cfg"]}
    )
    for bad in (
        dict(entry, last_layer_before_final_norm="yes"),
        dict(entry, kind="hubert", last_layer_before_final_norm=True),
    ):
        with pytest.raises(parts.UpstreamRebuildError, match="model.pt: upstream last_layer_before_final_norm is"):
            parts.rebuild(bad, source="model.pt")


def test_other_upstreams_are_rebuilt_from_their_spec(tmp_path, monkeypatch):
    """A user's callable is stored as its spec plus the fine-tuned weights, and needs to be importable."""
    from distilmos.predictor import upstream_entry as parts

    (tmp_path / "frames_upstream.py").write_text(
        "import torch\n"
        "class Frames(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.proj = torch.nn.Linear(160, 8)\n"
        "    def get_downsample_rates(self, key):\n"
        "        return 160\n"
        "    def forward(self, wavs):\n"
        "        x = torch.nn.utils.rnn.pad_sequence([w[: len(w) // 160 * 160].view(-1, 160) for w in wavs], True)\n"
        "        return {'hidden_states': [self.proj(x), self.proj(x).tanh()]}\n"
        "def frames(ckpt=None):\n"
        "    return Frames()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("frames_upstream", None)
    model, configs = parts.build_for_export("frames_upstream:frames", None, None)
    with torch.no_grad():
        model.proj.weight.add_(1.0)
    entry = parts.make_entry(model, "frames_upstream:frames", None, None, configs)
    assert entry["kind"] == "spec" and entry["spec"]["name"] == "frames_upstream:frames"
    with pytest.raises(parts.RemoteCodeError, match="m.pt: refused to load: it names the callable"):
        parts.rebuild(entry, "m.pt")  # a callable is imported and called only when trusted (tests/test_faults.py)
    assert torch.equal(parts.rebuild(entry, "m.pt", trust_remote_code=True).proj.weight, model.proj.weight)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    sys.modules.pop("frames_upstream", None)
    with pytest.raises(parts.UpstreamRebuildError, match="m.pt: its upstream 'frames_upstream:frames' is not embedded"):
        parts.rebuild(entry, "m.pt", trust_remote_code=True)


# ---- distilmos-predict score --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed_folder(demo_data, tmp_path_factory):
    """Readable files at 8, 16, 22.05, 44.1 and 48 kHz, two stereo ones (one in a subfolder, one FLAC), a
    0-byte file and a truncated one; returns ``(folder, readable, bad)``."""
    import torchaudio.functional as AF

    folder = tmp_path_factory.mktemp("mixed")
    source = load_audio(read_datalist(os.path.join(demo_data["bvcc"], "test.csv"))[0].wav_path)
    readable = []
    for sr in (8000, 16000, 22050, 44100, 48000):
        readable.append(str(folder / f"mono_{sr}.wav"))
        sf.write(readable[-1], AF.resample(source, 16000, sr).numpy(), sr)
    (folder / "sub").mkdir()
    y = AF.resample(source, 16000, 44100).numpy()
    readable.append(str(folder / "sub" / "stereo_44100.wav"))
    sf.write(readable[-1], np.stack([y, 0.5 * y], axis=1), 44100)
    readable.append(str(folder / "sub" / "stereo_16000.flac"))
    sf.write(readable[-1], np.stack([source.numpy()] * 2, axis=1), 16000)
    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    whole = folder / "whole.tmp"
    sf.write(str(whole), source.numpy(), 16000, format="WAV")
    truncated = folder / "sub" / "truncated.wav"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    (folder / "README.txt").write_text("not audio")
    return str(folder), sorted(readable), [str(empty), str(truncated)]


def test_mixed_folder_scores_readable_files_and_names_bad_ones(models, mixed_folder, tmp_path, capsys):
    folder, readable, bad = mixed_folder
    out = tmp_path / "scores.csv"
    assert cli_main(["score", models["distilmos"], folder, "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    rows = _read_csv(out)
    assert list(rows[0]) == ["wav_path", "pred"]
    assert sorted(r["wav_path"] for r in rows) == readable
    assert all(math.isfinite(float(r["pred"])) for r in rows)
    assert "scored 7 of 9 file(s)" in err and "2 file(s) could not be scored" in err
    assert f"{bad[0]}: file is empty" in err and f"{bad[1]}: file is truncated" in err
    preds = {os.path.basename(r["wav_path"]): float(r["pred"]) for r in rows}
    assert preds["stereo_16000.flac"] == pytest.approx(preds["mono_16000.wav"], abs=1e-6)  # equal channels
    assert max(preds.values()) - min(preds.values()) < 0.05  # the same speech at every rate


def test_csv_with_scores_prints_the_trainers_metrics(experiments, models, demo_data, tmp_path, capsys):
    test_csv = os.path.join(demo_data["bvcc"], "test.csv")
    _, runner_metrics = evaluate(experiments["ssl_mos"], "test", batch_size=1)
    out, metrics_json = tmp_path / "scores.csv", tmp_path / "metrics.json"
    assert (
        cli_main(
            [
                "score",
                models["ssl_mos"],
                test_csv,
                "-o",
                str(out),
                "--metrics",
                str(metrics_json),
                "--batch_size",
                "1",
                "-q",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "metrics over 9 utterance(s)" in err and "SRCC" in err
    rows = _read_csv(out)
    assert list(rows[0]) == ["wav_path", "pred", "score"]
    utts = read_datalist(test_csv)
    assert [r["wav_path"] for r in rows] == [u.wav_path for u in utts]
    metrics = json.loads(metrics_json.read_text())
    for key in METRIC_KEYS:
        assert metrics[key] == pytest.approx(runner_metrics[key], abs=1e-4), key
    expected = compute_metrics(
        [float(r["score"]) for r in rows], [float(r["pred"]) for r in rows], [u.system_id for u in utts]
    )
    assert metrics["utt_SRCC"] == pytest.approx(expected["utt_SRCC"], abs=1e-4)

    # JSON lines to stdout, from a plain "wav,score" list
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{u.wav_path},{u.score}\n" for u in utts[:3]))
    assert cli_main(["score", models["ssl_mos"], str(listing), "--jsonl", "-q", "--system_delim", "-"]) == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["wav_path"] for r in records] == [u.wav_path for u in utts[:3]]
    assert all(set(r) == {"wav_path", "pred", "score"} for r in records) and "metrics over 3" in captured.err


def test_long_file_is_scored_in_overlapping_windows(models, demo_data, tmp_path, capsys):
    utts = read_datalist(os.path.join(demo_data["bvcc"], "test.csv"))
    long = torch.cat([load_audio(u.wav_path) for u in utts[:3]])  # about 6.5 s
    path = tmp_path / "long.wav"
    sf.write(str(path), long.numpy(), 16000)
    predictor = load(models["distilmos"], device="cpu", max_seconds=2.0, chunk_overlap=0.5)
    windows = predictor.windows(len(long))
    assert len(windows) > 2 and windows[0][0] == 0 and windows[-1][1] == len(long)
    with torch.inference_mode():
        alone = [float(predictor.pipeline([long[a:b]])[0]) for a, b in windows]
    expected = weighted_mean(alone, [b - a for a, b in windows])
    assert predictor.predict(paths=[str(path)])[0] == pytest.approx(expected, abs=1e-5)
    assert predictor.predict(wav=long.numpy(), sr=16000) == pytest.approx(expected, abs=1e-5)
    assert (
        cli_main(["score", models["distilmos"], str(path), "--max_seconds", "2", "--chunk_overlap", "0.5", "-q"]) == 0
    )
    captured = capsys.readouterr()
    assert float(captured.out.splitlines()[1].split(",")[1]) == pytest.approx(expected, abs=1e-5)
    assert "1 longer than 2 s, scored in windows" in captured.err


@pytest.mark.parametrize(
    "n,max_len,overlap", [(100, 100, 10), (101, 100, 10), (1000, 100, 10), (999, 100, 0), (12345, 480, 80)]
)
def test_chunk_windows_cover_overlap_and_fit(n, max_len, overlap):
    windows = chunk_windows(n, max_len, overlap)
    assert windows[0][0] == 0 and windows[-1][1] == n
    assert len({b - a for a, b in windows}) == 1 and all(b - a <= max_len for a, b in windows)
    assert all(prev[1] - nxt[0] >= overlap for prev, nxt in zip(windows, windows[1:]))
    if len(windows) > 1:  # the fewest windows: one fewer would not fit
        assert (len(windows) - 1) * max_len - (len(windows) - 2) * overlap < n


# ---- Python API ------------------------------------------------------------------------------------------


def test_python_api_arrays_tensors_and_paths(models, mixed_folder, tmp_path):
    folder, readable, bad = mixed_folder
    predictor = load(models["distilmos"], device="cpu")
    wav_44k, sr = sf.read(os.path.join(folder, "mono_44100.wav"), dtype="float32")
    from_file = predictor.predict(paths=[os.path.join(folder, "mono_44100.wav")])[0]
    assert predictor.predict(wav=wav_44k, sr=sr) == pytest.approx(from_file, abs=1e-6)
    stereo = torch.from_numpy(np.stack([wav_44k, wav_44k]))  # [channels, samples], torchaudio's order
    assert predictor.predict(wav=stereo, sr=sr) == pytest.approx(from_file, abs=1e-6)
    both = predictor.predict(wav=[wav_44k, stereo], sr=sr)
    assert isinstance(both, list) and len(both) == 2
    with pytest.raises(PredictionError, match="empty"):
        predictor.predict(paths=[readable[0], bad[0]])
    short = tmp_path / "short.wav"
    sf.write(str(short), np.zeros(50, dtype="float32"), 16000)  # shorter than the upstream's first frame
    scores = predictor.predict(paths=[str(short), readable[0], bad[1]], on_error="nan")
    assert math.isnan(scores[0]) and math.isfinite(scores[1]) and math.isnan(scores[2])
    with pytest.raises(ValueError, match="sr="):
        predictor.predict(wav=wav_44k)
    analysis = predictor.analyze(wav_44k, sr)
    assert analysis["pred"].item() == pytest.approx(from_file, abs=1e-6)
    assert analysis["processed"].shape[-1] == 256 and analysis["hidden_states"][-1].shape[0] == 1


# ---- the command itself ------------------------------------------------------------------------------------


def test_module_entry_point_and_console_script(models, mixed_folder):
    from importlib.metadata import entry_points

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("distilmos-predict") == "distilmos.predictor.cli:main"
    folder, readable, _ = mixed_folder
    result = subprocess.run(
        [sys.executable, "-m", "distilmos.predictor", "score", models["ssl_mos"], readable[1], "--device", "cpu", "-q"],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[0] == "wav_path,pred" and readable[1] in result.stdout
