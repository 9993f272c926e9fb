"""Compact predictors (distilmos.compress, egs/compress): degradations, pseudo-labels, students, pruning.

Kept small: tiny clips, the smallest student as the teacher where any predictor file will do, one
tiny WavLM for pruning. Together these run in well under a minute on two CPU cores.
"""

import csv
import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from distilmos.compress import degrade, pseudo_label, train_student
from distilmos.models import student


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory):
    """Six short clean clips (two rates, one stereo), one silent, one unreadable, one too short."""
    root = tmp_path_factory.mktemp("clean")
    rng = np.random.default_rng(0)
    for i in range(6):
        sr = 16000 if i % 2 == 0 else 22050
        t = np.arange(int(1.2 * sr)) / sr
        wav = 0.3 * np.sin(2 * np.pi * (120 + 30 * i) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        wav = wav + 0.01 * rng.standard_normal(len(t))
        if i == 3:
            wav = np.stack([wav, 0.5 * wav], axis=1)
        sf.write(root / f"clean{i}.wav", wav.astype(np.float32), sr)
    sf.write(root / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    sf.write(root / "short.wav", 0.1 * np.ones(800, dtype=np.float32), 16000)
    (root / "broken.wav").write_bytes(b"RIFF not really")
    return str(root)


def _config(copies=2):
    config = degrade.load_config(
        os.path.join(os.path.dirname(__file__), "..", "egs", "compress", "conf", "degrade.yaml")
    )
    config["copies"] = copies
    # every degradation on, so each one is exercised and recorded (a short reverb keeps the test fast)
    for cfg in config["chain"].values():
        cfg["p"] = 1.0
    config["chain"]["reverb"]["rt60_s"] = [0.2, 0.3]
    return config


@pytest.fixture(scope="module")
def pool(clean_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pool")
    summary = degrade.degrade_pool([clean_dir], str(out), _config(), seed=3, progress=False)
    return str(out), summary


def _records(folder):
    with open(os.path.join(folder, "degradations.jsonl"), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_degradations_are_recorded_and_bad_clips_skipped(pool):
    folder, summary = pool
    assert summary["written"] == 12  # 6 usable clips x 2 copies
    reasons = "\n".join(summary["skipped"])
    assert (
        "silent.wav: silent" in reasons and "short.wav: too short" in reasons and "broken.wav: cannot read" in reasons
    )
    with open(os.path.join(folder, "skipped.txt"), encoding="utf-8") as handle:
        assert len(handle.read().splitlines()) == 3
    records = _records(folder)
    names = {d["name"] for r in records for d in r["degradations"]}
    assert set(degrade.DEGRADATIONS) <= names
    noise = next(d for d in records[0]["degradations"] if d["name"] == "noise")
    assert 0 <= noise["snr_db"] <= 40 and "colour_exponent" in noise  # no noise_dir: generated coloured noise
    for record in records:
        wav, sr = sf.read(record["wav_path"])
        assert sr == 16000 and wav.ndim == 1 and np.isfinite(wav).all() and np.abs(wav).max() <= 1.0


def test_degradations_reproducible_from_seed(clean_dir, pool, tmp_path):
    folder, _ = pool
    config = _config()
    # the same seed on a subset: identical files and records (a clip's randomness is its own)
    again = degrade.degrade_pool(
        [os.path.join(clean_dir, "clean1.wav")], str(tmp_path / "a"), config, seed=3, progress=False
    )
    first = {r["sample_id"]: r for r in _records(folder)}
    for record in _records(str(tmp_path / "a")):
        assert record["degradations"] == first[record["sample_id"]]["degradations"]
        assert np.array_equal(sf.read(record["wav_path"])[0], sf.read(first[record["sample_id"]]["wav_path"])[0])
    assert again["written"] == 2
    other = degrade.degrade_pool(
        [os.path.join(clean_dir, "clean1.wav")], str(tmp_path / "b"), config, seed=4, progress=False
    )
    assert other["written"] == 2
    assert _records(str(tmp_path / "b"))[0]["degradations"] != first["clean1_d0"]["degradations"]


def test_unknown_degradation_is_a_config_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("chain:\n  noize: {p: 0.5}\n")
    with pytest.raises(degrade.ConfigError, match="noize"):
        degrade.load_config(str(path))


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    """Any predictor file can be a teacher: an untrained xs student (fast)."""
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("teacher") / "teacher.pt")
    config = train_student.load_config(None, {"size": "xs"})
    train_student.export_student(student.build("xs").eval(), path, size="xs", config=config, facts={}, history=[])
    return path


def test_pseudo_labels_killed_hard_resume_without_rescoring(pool, teacher_file, tmp_path, monkeypatch):
    """kill -9 of the command after some chunks, then a torn line as a kill in mid-write leaves: the rerun
    scores exactly the files not yet saved, and every file ends with one score."""
    import signal
    import subprocess
    import sys
    import time

    from distilmos.predictor.predictor import Predictor

    folder, _ = pool
    pool_csv, out = os.path.join(folder, "pool.csv"), str(tmp_path / "pseudo.csv")
    partial = out + ".partial.jsonl"
    # the command itself, each chunk slowed down so that the kill lands mid-run however fast the machine is
    slowed = (
        "import sys, time\n"
        "from distilmos.compress import pseudo_label\n"
        "from distilmos.predictor.predictor import Predictor\n"
        "score = Predictor.score_files\n"
        "Predictor.score_files = lambda self, paths, **kw: time.sleep(0.3) or score(self, paths, **kw)\n"
        "sys.exit(pseudo_label.main(sys.argv[1:]))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", slowed, "--teacher", teacher_file, "--pool", pool_csv, "--out", out, "--chunk", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not (os.path.isfile(partial) and open(partial).read().count("\n") >= 3):
        assert process.poll() is None and time.time() < deadline, "the command ended before it could be killed"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = pseudo_label.read_partial(partial)
    rows = pseudo_label.read_pool(pool_csv)
    assert 3 <= len(saved) < len(rows) and not os.path.exists(out)
    with open(partial, "a", encoding="utf-8") as handle:
        handle.write('{"sample_id": "torn", "pr')  # a write cut short
    scored = []
    original = Predictor.score_files
    monkeypatch.setattr(
        Predictor, "score_files", lambda self, paths, **kw: scored.extend(paths) or original(self, paths, **kw)
    )
    pseudo_label.pseudo_label(teacher_file, pool_csv, out, chunk=4, progress=False)
    id_of = {r["wav_path"]: r["sample_id"] for r in rows}
    assert len(scored) == len(rows) - len(saved) and not {id_of[p] for p in scored} & set(saved)
    with open(out, newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == len([r for r in rows if os.path.isfile(r["wav_path"])])
    assert len(pseudo_label.read_partial(partial)) == len(rows)  # the torn line is gone, nothing after it lost


def test_pseudo_labels_resume_without_rescoring(pool, teacher_file, tmp_path, monkeypatch):
    from distilmos.fileio import sha256_file
    from distilmos.predictor.predictor import Predictor

    folder, _ = pool
    pool_csv = os.path.join(folder, "pool.csv")
    # one bad file in the pool: reported and left out, never fatal
    with open(pool_csv, "a", encoding="utf-8") as handle:
        handle.write("ghost,clean,wav/ghost.wav,nowhere\n")
    scored = []
    original = Predictor.score_files

    def counting(self, paths, **kwargs):
        scored.extend(paths)
        return original(self, paths, **kwargs)

    monkeypatch.setattr(Predictor, "score_files", counting)
    out = str(tmp_path / "pseudo.csv")

    class Killed(Exception):
        pass

    def kill_after_first(n):
        raise Killed()

    with pytest.raises(Killed):
        pseudo_label.pseudo_label(teacher_file, pool_csv, out, chunk=5, progress=False, on_chunk=kill_after_first)
    assert len(scored) == 5 and not os.path.exists(out)
    first = list(scored)
    scored.clear()
    sidecar = pseudo_label.pseudo_label(teacher_file, pool_csv, out, chunk=5, progress=False)
    assert len(scored) == 13 - 5 and not set(scored) & set(first)  # only what was not done
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and all(np.isfinite(float(r["score"])) for r in rows)
    assert sidecar["teacher_sha256"] == sha256_file(teacher_file) and sidecar["teacher"] == os.path.abspath(
        teacher_file
    )
    assert len(sidecar["failed"]) == 1 and "ghost.wav" in sidecar["failed"][0]
    with open(out + ".teacher.json", encoding="utf-8") as handle:
        assert json.load(handle)["teacher_sha256"] == sidecar["teacher_sha256"]
    scored.clear()
    pseudo_label.pseudo_label(teacher_file, pool_csv, out, chunk=5, progress=False)
    assert scored == []  # all done: nothing rescored, the list is rewritten from the saved predictions


@pytest.mark.parametrize("size", list(student.SIZES))
def test_student_sizes_have_their_parameter_counts(size):
    assert student.count_parameters(student.build(size)) == student.PARAMETERS[size]


def test_student_sizes_span_two_orders_of_magnitude():
    counts = sorted(student.PARAMETERS.values())
    assert len(counts) >= 4 and counts[-1] / counts[0] >= 100


def test_student_predictor_file_scores_any_rate_and_channels(teacher_file, tmp_path):
    from distilmos.predictor import load
    from distilmos.predictor.cli import main as predict_main

    blob = torch.load(teacher_file, weights_only=True)
    assert blob["upstream"]["kind"] == "waveform" and blob["downstream"]["name"] == "student"
    predictor = load(teacher_file, device="cpu")
    rng = np.random.default_rng(1)
    mono16 = (0.1 * rng.standard_normal(24000)).astype(np.float32)
    paths = []
    for name, sr, channels in (("a", 16000, 1), ("b", 44100, 2), ("c", 8000, 3)):
        wav = (0.1 * rng.standard_normal((int(1.3 * sr), channels))).astype(np.float32)
        paths.append(str(tmp_path / f"{name}.wav"))
        sf.write(paths[-1], wav, sr)
    scores = predictor.predict(paths=paths)
    assert len(scores) == 3 and all(np.isfinite(scores))
    # batched == one by one: the student masks everything beyond each utterance
    alone = [predictor.predict(paths=[p])[0] for p in paths]
    assert np.allclose(scores, alone, atol=1e-5)
    assert np.isfinite(predictor.predict(wav=mono16, sr=16000))
    assert (
        predict_main(["score", teacher_file, "--quiet", "--device", "cpu", "-o", str(tmp_path / "s.csv"), *paths]) == 0
    )


def _student_step(pad: int, size: str = "s") -> torch.nn.Module:
    """A student after one training step on the same two clips (1 s and 1.5 s), padded by ``pad`` more samples."""
    torch.manual_seed(0)
    model = student.build(size, dropout=0.0).train()
    generator = torch.Generator().manual_seed(1)
    clips = [0.1 * torch.randn(16000, generator=generator), 0.1 * torch.randn(24000, generator=generator)]
    wavs = torch.nn.functional.pad(torch.nn.utils.rnn.pad_sequence(clips, batch_first=True), (0, pad))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    pred = model(wavs, torch.tensor([16000, 24000]))["pred"]
    torch.nn.functional.mse_loss(pred, torch.tensor([2.0, 4.0])).backward()
    optimizer.step()
    return model


def test_student_batch_statistics_ignore_padding():
    """Padded frames stay out of the BatchNorm statistics (the convolution's bias makes them non-zero before
    the norm): running mean and variance, and the weights after the step, are those of the unpadded batch."""
    tight, padded = _student_step(0), _student_step(32000)
    running = [k for k in tight.state_dict() if k.endswith(("running_mean", "running_var"))]
    assert len(running) == 2 * len(student.SIZES["s"]["channels"])
    for key, value in tight.state_dict().items():
        torch.testing.assert_close(padded.state_dict()[key], value, atol=1e-5, rtol=1e-4, msg=key)
    assert "framing" not in tight.state_dict()  # the first sizes' files keep their keys


def test_student_framing_windows_long_clips_and_normalises_their_peak():
    """The released student's framing (the dmos size's, on a small model here): a clip longer than the window
    is the mean of its evenly spread windows, each scored alone; the level does not matter; a state dict
    rebuilds the framing."""
    model = student.build("xs", n_fft=320, segment=16000, segment_hop=4000, peak_normalise=True).eval()
    kwargs = student.StudentMOSModel.kwargs_from_state(model.state_dict())
    framing = (kwargs["n_fft"], kwargs["segment"], kwargs["segment_hop"], kwargs["peak_normalise"])
    assert framing == (320, 16000, 4000, True)
    assert student.StudentMOSModel(**kwargs).load_state_dict(model.state_dict()) is not None
    assert student.window_starts(9000, 16000, 4000) == [0]
    assert student.window_starts(30000, 16000, 4000) == [0, 3500, 7000, 10500, 14000]
    generator = torch.Generator().manual_seed(0)
    long, short = 0.3 * torch.randn(30000, generator=generator), 0.05 * torch.randn(9000, generator=generator)
    with torch.no_grad():
        batch = model(torch.nn.utils.rnn.pad_sequence([long, short], batch_first=True), torch.tensor([30000, 9000]))
        windows = [
            model(long[None, s : s + 16000], torch.tensor([16000]))["pred"] for s in (0, 3500, 7000, 10500, 14000)
        ]
        alone = model(short[None], torch.tensor([9000]))["pred"]
        louder = model(4 * short[None], torch.tensor([9000]))["pred"]
    torch.testing.assert_close(batch["pred"][0], torch.cat(windows).mean(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch["pred"][1:], alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(louder, alone, atol=1e-5, rtol=1e-5)


def test_dmos_student_is_configured_like_the_released_one():
    config = student.SIZES["dmos"]
    assert (config["n_fft"], config["segment"], config["segment_hop"], config["peak_normalise"]) == (
        320,
        122880,
        16000,
        True,
    )  # distillmos 0.9.1: 20 ms window, 7.68 s windows at most 1 s apart
    assert abs(student.PARAMETERS["dmos"] - 4_133_226) / 4_133_226 < 0.01  # the released student's count
    assert max(v for k, v in student.PARAMETERS.items() if k != "dmos") < student.PARAMETERS["dmos"]


def test_student_trains_on_pseudo_and_labelled_mix(pool, teacher_file, tmp_path):
    folder, _ = pool
    out = str(tmp_path / "pseudo.csv")
    pseudo_label.pseudo_label(teacher_file, os.path.join(folder, "pool.csv"), out, progress=False)
    config = train_student.load_config(
        None, {"size": "xs", "steps": 4, "batch_size": 4, "eval_every": 2, "labelled_ratio": 0.5, "crop_seconds": 1.0}
    )
    _model, history, facts = train_student.train_student(config, pseudo=out, labelled=out, val=out, progress=False)
    assert [h["step"] for h in history] == [2, 4]
    assert facts["labelled_ratio"] == 0.5 and facts["pseudo"]["teacher"]["path"] == os.path.abspath(teacher_file)
    with pytest.raises(train_student.ConfigError, match="labelled_ratio"):
        train_student.load_config(None, {"labelled_ratio": 2})


def _teacher_file(kind: str, ckpt: str, path: str) -> str:
    """A DistilMOS predictor file on a tiny ``kind`` upstream (random expert weights: pruning needs no trained one)."""
    from distilmos.models.distilmos_model import DistilMOSModel
    from distilmos.predictor import upstream_entry as upstream_mod
    from distilmos.predictor.export import assemble
    from distilmos.predictor.fileformat import write_predictor
    from distilmos.predictor.pipeline import FeatureSelector

    model, configs = upstream_mod.build_for_export(f"{kind}_local", ckpt, None)
    selector = FeatureSelector("hidden_states", None, False, 320, 64, n_layers=len(model.model.encoder.layers) + 1)
    torch.manual_seed(0)
    state = {f"model.{k}": v for k, v in DistilMOSModel(64, hidden_dim=32).state_dict().items()}
    blob, _ = assemble(model, (f"{kind}_local", ckpt, None), configs, selector, "distilmos", state)
    blob["card"] = {"upstream": {"name": f"{kind}_local"}, "downstream": {"expert": "distilmos"}}
    write_predictor(blob, path)
    return path


@pytest.fixture(scope="module", params=["wavlm", "hubert"])
def prunable_teacher(request, tiny_ckpts, tmp_path_factory):
    """``(kind, predictor file)``: WavLM (heads are never pruned) and HuBERT (heads are)."""
    path = str(tmp_path_factory.mktemp(f"{request.param}_teacher") / "teacher.pt")
    return request.param, _teacher_file(request.param, tiny_ckpts[request.param], path)


def test_pruned_upstreams_are_really_smaller_and_load(prunable_teacher, pool, teacher_file, tmp_path):
    from distilmos.compress import prune
    from distilmos.predictor import load
    from distilmos.upstream.padding_exact import is_padding_exact

    kind, teacher = prunable_teacher
    folder, _ = pool
    labelled = str(tmp_path / "labelled.csv")
    pseudo_label.pseudo_label(teacher_file, os.path.join(folder, "pool.csv"), labelled, progress=False)
    config = {"batch_size": 2, "crop_seconds": 1.0, "importance_batches": 2, "finetune_steps": 2, "eval_every": 2}
    summaries = prune.prune(
        teacher, labelled, str(tmp_path / "pruned"), [0.75, 0.5, 0.25, 0.1], val=labelled, config=config, progress=False
    )
    before = summaries[0]["parameters_before"]
    sizes = [s["parameters"] for s in summaries]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] < before
    head_sizes = [s["head_parameters"] for s in summaries]
    assert head_sizes == sorted(head_sizes, reverse=True) and head_sizes[0] < summaries[0]["head_parameters_before"]
    weights_key, cfg_key = ("model", "cfg") if kind == "wavlm" else ("model_weight", "model_cfg")
    for summary in summaries:
        blob = torch.load(summary["path"], weights_only=True)  # plain tensors and values only
        entry = blob["upstream"]
        cfg, weights = entry["checkpoint"][cfg_key], entry["checkpoint"][weights_key]
        assert (
            cfg["encoder_layers"] == len(summary["kept_layers"]) and cfg["encoder_ffn_embed_dim"] == summary["ffn_dim"]
        )
        assert weights["encoder.layers.0.fc1.weight"].shape == (summary["ffn_dim"], 64)
        assert f"encoder.layers.{cfg['encoder_layers']}.fc1.weight" not in weights
        # every front-end convolution but the last is narrower, in the saved architecture and the weights
        widths = [w for w, _, _ in eval(cfg["conv_feature_layers"])]
        assert widths == summary["conv_widths"] and widths[-1] == 64 and max(widths[:-1]) < 64
        assert weights["feature_extractor.conv_layers.1.0.weight"].shape == (widths[1], widths[0], 3)
        if kind == "wavlm":  # s3prl's WavLM attention cannot hold fewer heads
            assert "attention_heads" not in entry and summary["heads"] == [4] * cfg["encoder_layers"]
        else:
            assert entry["attention_heads"] == summary["heads"] and max(summary["heads"]) < 4
            assert weights["encoder.layers.0.self_attn.q_proj.weight"].shape == (16 * summary["heads"][0], 64)
            assert weights["encoder.layers.0.self_attn.out_proj.weight"].shape == (64, 16 * summary["heads"][0])
        assert blob["featurizer"]["config"]["n_layers"] == cfg["encoder_layers"] + 1
        # the head shrinks too, and its file entry rebuilds it from the narrower weights
        kwargs = blob["downstream"]["kwargs"]
        assert (kwargs["hidden_dim"], kwargs.get("blstm_dim", kwargs["hidden_dim"])) == (
            summary["head_hidden_dim"],
            summary["head_blstm_dim"],
        )
        assert (
            summary["head_hidden_dim"] < 32
            and summary["head_parameters"] <= summary["fraction"] * summary["head_parameters_before"]
            or summary["head_hidden_dim"] == 1
        )
        # a reachable target is met; below reach (the tiny model's positional convolution and projections
        # are a large share of it) the smallest architecture is written, and says so
        smallest = summary["ffn_dim"] == 1 and len(summary["kept_layers"]) == 1
        assert summary["parameters"] <= summary["fraction"] * before or smallest
        predictor = load(summary["path"], device="cpu")
        assert sum(p.numel() for p in predictor.pipeline.upstream.parameters()) == summary["parameters"]
        assert sum(p.numel() for p in predictor.pipeline.downstream.parameters()) == summary["head_parameters"]
        assert is_padding_exact(predictor.pipeline.upstream)  # rebuilt by s3prl's loader, then patched
        wav = (0.1 * np.random.default_rng(0).standard_normal((30000, 2))).astype(np.float32)
        assert np.isfinite(predictor.predict(wav=wav, sr=22050))


@pytest.mark.parametrize("kind", ["hubert", "wav2vec2"])
def test_pruning_removes_exactly_the_groups_it_drops(kind, tmp_path):
    """Removing heads, FFN channels and front-end channels equals silencing them in the unpruned model:
    the pruned model's hidden states match the original's with the dropped groups' outgoing weights zeroed
    (GroupNorm front end, whose per-channel statistics make a channel's removal exact). So the kept groups,
    their order and the rebuild of a head-pruned file are right."""
    from distilmos.compress.structure import Structure, plan_sizes, pruned_entry, random_scores
    from distilmos.predictor import upstream_entry as upstream_mod
    from distilmos.upstream.tiny import write_checkpoint

    ckpt = write_checkpoint(str(tmp_path / "up.pt"), kind, frontend="group_norm")
    built, configs = upstream_mod.build_for_export(f"{kind}_local", ckpt, None)
    entry = upstream_mod.make_entry(built, f"{kind}_local", ckpt, None, configs)
    original = upstream_mod.rebuild(entry)
    structure = Structure(original, kind)
    scores = random_scores(structure)
    plan = plan_sizes(structure, scores, [0.5], ("ffn_channels", "attention_heads", "conv_channels"))[0]
    pruned = upstream_mod.rebuild(pruned_entry(entry, structure, plan, scores))
    assert len(pruned.model.encoder.layers) == len(structure.layers) and min(plan["heads"]) < 4

    def dropped(score, keep):
        return sorted(set(range(len(score))) - set(torch.topk(score, keep).indices.tolist()))

    with torch.no_grad():
        for i, layer in enumerate(original.model.encoder.layers):
            layer.fc2.weight[:, dropped(scores["ffn_channels"][i], plan["ffn_dim"])] = 0
            for h in dropped(scores["attention_heads"][i], plan["heads"][i]):
                layer.self_attn.out_proj.weight[:, h * 16 : (h + 1) * 16] = 0
        for i in structure.prunable_convs:
            structure.blocks[i + 1][0].weight[:, dropped(scores["conv_channels"][i], plan["conv_widths"][i])] = 0
        generator = torch.Generator().manual_seed(1)
        wavs = [torch.randn(16000, generator=generator), torch.randn(7000, generator=generator)]
        want, got = original(wavs)["hidden_states"], pruned(wavs)["hidden_states"]
    assert len(want) == len(got)
    for a, b in zip(want, got):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
    assert sum(p.numel() for p in pruned.parameters()) == plan["parameters"]


def test_every_group_gets_an_importance_front_end_included(prunable_teacher, pool, teacher_file, tmp_path):
    """s3prl runs the front end without gradients; pruning must not rank its channels blind."""
    from distilmos.compress import prune
    from distilmos.compress.structure import Structure
    from distilmos.predictor.fileformat import read_predictor
    from distilmos.predictor.predictor import build_pipeline

    kind, teacher = prunable_teacher
    folder, _ = pool
    labelled = str(tmp_path / "labelled.csv")
    pseudo_label.pseudo_label(teacher_file, os.path.join(folder, "pool.csv"), labelled, progress=False)
    pipeline = build_pipeline(read_predictor(teacher))
    structure = Structure(pipeline.upstream, kind)
    store = prune._store(labelled)
    scores = prune.importance(
        pipeline,
        structure,
        *store,
        prune.load_config(None, {"importance_batches": 1, "batch_size": 2, "crop_seconds": 1.0}),
        progress=False,
    )
    assert all(bool((s > 0).all()) for s in scores["conv_channels"])
    assert bool((scores["ffn_channels"] > 0).all()) and all(bool((h > 0).all()) for h in scores["attention_heads"])
    assert pipeline.upstream.model.feature_grad_mult == 0.0  # s3prl's own setting, back in place


def test_head_pruning_changes_its_size_and_scores(prunable_teacher, pool, teacher_file, tmp_path):
    """The DistilMOS head alone: fewer parameters, other scores (before any fine-tuning), a file whose
    head is rebuilt at the pruned widths; the upstream is left as it was."""
    from distilmos.compress import prune
    from distilmos.models.distilmos_model import DistilMOSModel
    from distilmos.predictor import load

    kind, teacher = prunable_teacher
    folder, _ = pool
    labelled = str(tmp_path / "labelled.csv")
    pseudo_label.pseudo_label(teacher_file, os.path.join(folder, "pool.csv"), labelled, progress=False)
    config = {
        "batch_size": 2,
        "crop_seconds": 1.0,
        "importance_batches": 2,
        "finetune_steps": 0,
        "groups": "head_channels,blstm_units",
    }
    summaries = prune.prune(teacher, labelled, str(tmp_path / "pruned"), [0.5, 0.1], config=config, progress=False)
    wavs = [str(r["wav_path"]) for r in train_student.read_list(labelled)[:4]]
    before = load(teacher, device="cpu")
    for summary in summaries:
        assert summary["head_parameters"] <= summary["fraction"] * summary["head_parameters_before"]
        assert summary["parameters"] == summary["parameters_before"] and "kept_layers" not in summary
        blob = torch.load(summary["path"], weights_only=True)
        state, kwargs = blob["downstream"]["state_dict"], blob["downstream"]["kwargs"]
        assert DistilMOSModel.kwargs_from_state(state) == kwargs and kwargs["hidden_dim"] == summary["head_hidden_dim"]
        assert state["cnn_blstm.blstm.weight_hh_l0_reverse"].shape == (
            4 * summary["head_blstm_dim"],
            summary["head_blstm_dim"],
        )
        after = load(summary["path"], device="cpu")
        assert sum(p.numel() for p in after.pipeline.downstream.parameters()) == summary["head_parameters"]
        assert not np.allclose(after.predict(paths=wavs), before.predict(paths=wavs), atol=1e-4)
    assert summaries[1]["head_parameters"] < summaries[0]["head_parameters"]


def test_removing_blstm_units_equals_silencing_them():
    """A BLSTM unit whose output nothing reads (its recurrent column and its column of the Linear after the
    BLSTM zeroed) changes nothing: removing exactly the dropped units of each direction gives the same output."""
    from distilmos.compress import head
    from distilmos.models.distilmos_model import DistilMOSModel

    torch.manual_seed(0)
    model = DistilMOSModel(24, hidden_dim=16).eval()
    structure = head.HeadStructure(model)
    scores = head.new_head_scores(structure)
    scores["blstm_units"] = torch.rand(2, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    plan = head.plan_head(structure, 0.6, ("blstm_units",))
    assert plan["hidden_dim"] == 16 and 1 < plan["blstm_dim"] < 16
    state = head.pruned_head_state(structure, plan, scores)
    pruned = DistilMOSModel(**DistilMOSModel.kwargs_from_state(state))
    pruned.load_state_dict(state)
    pruned.eval()
    with torch.no_grad():
        for direction, suffix in enumerate(("", "_reverse")):
            kept = torch.topk(scores["blstm_units"][direction], plan["blstm_dim"]).indices.tolist()
            dropped = sorted(set(range(16)) - set(kept))
            getattr(model.cnn_blstm.blstm, f"weight_hh_l0{suffix}")[:, dropped] = 0
            model.cnn_blstm.linear.weight[:, [16 * direction + u for u in dropped]] = 0
        features, lengths = torch.randn(2, 30, 24), torch.tensor([30, 17])
        torch.testing.assert_close(pruned(features, lengths)["pred"], model(features, lengths)["pred"])
    assert sum(p.numel() for p in pruned.parameters()) == plan["parameters"] < structure.total


def test_pruning_says_what_it_cannot_prune(teacher_file, tmp_path, capsys):
    from distilmos.compress import prune

    # a student: a waveform upstream and no DistilMOS head
    with pytest.raises(prune.PruneError, match="not an embedded WavLM"):
        prune.prune(teacher_file, "unused.csv", str(tmp_path), [0.5], config={"groups": "layers,head_channels"})
    assert "not a DistilMOS head" in capsys.readouterr().err
    with pytest.raises(prune.PruneError, match="nothing to prune"):
        prune.prune(teacher_file, "unused.csv", str(tmp_path), [0.5], config={"groups": "blstm_units"})


def test_pruning_groups_can_be_chosen():
    from distilmos.compress import prune

    assert prune.load_config(None, {"groups": "layers,ffn_channels"})["groups"] == ["layers", "ffn_channels"]
    assert prune.load_config(None, {})["groups"][-2:] == ["head_channels", "blstm_units"]
    with pytest.raises(prune.ConfigError, match="heads_of_state"):
        prune.load_config(None, {"groups": "layers,heads_of_state"})


def test_evaluation_reports_in_domain_and_out_of_domain(pool, teacher_file, tmp_path):
    """The compression table holds each in-domain list and every test set of a MOS-Bench manifest (prepared
    by the benchmark's own step from a roots file), and the mean over the out-of-domain ones."""

    from distilmos.compress import evaluate
    from distilmos.corpora.benchmark_sets import prepare_sets
    from distilmos.standins import make_mosbench

    make_mosbench(str(tmp_path / "corpora"), seed=0, corpora=["singmos", "tmhint_qi"], utts=2)
    roots = tmp_path / "roots.yaml"
    roots.write_text("singmos: corpora/singmos\ntmhint_qi: corpora/tmhint_qi\n")
    manifest = str(tmp_path / "sets.json")
    prepare_sets(str(roots), str(tmp_path / "data"), manifest)
    folder, _ = pool
    labelled = str(tmp_path / "labelled.csv")
    pseudo_label.pseudo_label(teacher_file, os.path.join(folder, "pool.csv"), labelled, progress=False)
    out = str(tmp_path / "eval")
    assert (
        evaluate.main(
            [
                "--models",
                f"student_xs={teacher_file}",
                f"baseline_xs={teacher_file}",
                "--tests",
                f"pool={labelled}",
                "--mosbench",
                manifest,
                "--out_dir",
                out,
                "--no_reference",
            ]
        )
        == 0
    )
    with open(os.path.join(out, "table.json"), encoding="utf-8") as handle:
        table = json.load(handle)
    row = table[0]
    ood = [row["singmos_test/utt_SRCC"], row["tmhint_qi_test/utt_SRCC"]]
    assert np.isclose(row["ood_mean/utt_SRCC"], np.mean(ood)) and row["pool/utt_SRCC"] > 0.999  # its own labels
    with open(os.path.join(out, "table.md"), encoding="utf-8") as handle:
        header = handle.readline()
    for column in ("pool/utt_SRCC", "pool/sys_SRCC", "ood_mean/utt_SRCC", "ood_mean/sys_SRCC"):
        assert column in header
    with open(os.path.join(out, "ood.md"), encoding="utf-8") as handle:
        header = handle.readline()
    assert "singmos_test/utt_SRCC" in header and "tmhint_qi_test/utt_SRCC" in header
    assert os.path.getsize(os.path.join(out, "srcc_vs_params.png")) > 0
    assert os.path.isfile(os.path.join(out, "student_xs", "metrics_tmhint_qi_test.json"))
    # a list named both ways, and a broken manifest, are errors that say so
    with pytest.raises(evaluate.ToolkitError, match="both in-domain and out-of-domain"):
        evaluate.evaluate(
            {"student_xs": teacher_file}, {"pool": labelled}, out, reference=False, ood={"pool": labelled}
        )
    (tmp_path / "bad.json").write_text("[]")
    assert (
        evaluate.main(
            [
                "--models",
                f"x={teacher_file}",
                "--tests",
                f"pool={labelled}",
                "--mosbench",
                str(tmp_path / "bad.json"),
                "--out_dir",
                out,
            ]
        )
        == 2
    )
