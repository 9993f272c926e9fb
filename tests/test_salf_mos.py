"""SALF-MOS: its parameter count, padding invariance, training through the runner (frozen upstream), early
stopping and the predictor round trip."""

import csv
import json
import os

import numpy as np
import pytest
import torch
from downstream_helpers import DOWNSTREAM, evaluate, short_run, train_argv
from recipe_helpers import dry_run

from distilmos.data.datalist import read_datalist
from distilmos.errors import ConfigError
from distilmos.eval.metrics import METRIC_KEYS
from distilmos.models.salf_mos import SALFMOSModel
from distilmos.models.salf_mos import main as count_main
from distilmos.predictor import export, load
from distilmos.registry import DATARC_DEFAULTS
from distilmos.train.runner import run as run_downstream_main


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


# ---- the model ----------------------------------------------------------------------------------------


def test_printed_count_is_the_sum_of_parameters(capsys):
    assert count_main(["--count", "--upstream_dim", "768"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    total = int(lines[-1].split()[-1].replace(",", ""))
    per_layer = sum(int(line.split()[-1].replace(",", "")) for line in lines[:-1])
    assert total == per_layer == _n_params(SALFMOSModel(768)) == 1574  # the paper's count, wav2vec 2.0 Base
    assert any(line.startswith("lfe.0") and line.rstrip().endswith("769") for line in lines)


def test_rebuilds_from_its_weights_alone():
    model = SALFMOSModel(64, channels=3, depth=3, head_bias=True)
    kwargs = SALFMOSModel.kwargs_from_state(model.state_dict())
    assert kwargs == {"upstream_dim": 64, "channels": 3, "depth": 3, "head_bias": True}
    SALFMOSModel(**kwargs).load_state_dict(model.state_dict(), strict=True)


def test_too_few_feature_dimensions_are_refused():
    with pytest.raises(ValueError, match="at least 8"):
        SALFMOSModel(7)
    SALFMOSModel(39)  # s3prl's mfcc: 39 -> 19 -> 9 -> 4


def _trained_model(dim=48, seed=0):
    """A model whose BatchNorm running statistics and weights are not at their initial values."""
    torch.manual_seed(seed)
    model = SALFMOSModel(dim)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(3, 20, dim) * 2 + 0.5, torch.tensor([20, 13, 7]))
    return model.eval()


def test_padding_does_not_change_a_prediction_in_eval_mode():
    model = _trained_model()
    torch.manual_seed(1)
    lengths = [50, 45, 35, 20]  # 0 %, 10 %, 30 % and 60 % padding in a batch of 50 frames
    utts = [torch.randn(n, 48) for n in lengths]
    batch = torch.zeros(len(utts), 50, 48)
    for i, u in enumerate(utts):
        batch[i, : len(u)] = u
    batch[1, 45:] = 100.0  # whatever sits in the padding
    with torch.no_grad():
        batched = model(batch, torch.tensor(lengths))["pred"]
        alone = torch.stack([model(u[None], torch.tensor([len(u)]))["pred"][0] for u in utts])
    assert torch.allclose(batched, alone, atol=1e-5, rtol=0), (batched, alone)


def test_batchnorm_statistics_in_training_ignore_padding():
    torch.manual_seed(2)
    lengths = torch.tensor([30, 18, 12])
    frames = torch.randn(3, 30, 48)
    longer = torch.cat([frames, torch.randn(3, 25, 48) * 50], dim=1)  # the same frames with more (junk) padding
    first, second, third = (SALFMOSModel(48).train() for _ in range(3))
    initial = {k: v.clone() for k, v in first.state_dict().items()}
    second.load_state_dict(initial)
    third.load_state_dict(initial)
    out_a = first(frames, lengths)["pred"]
    out_b = second(longer, lengths)["pred"]
    assert torch.allclose(out_a, out_b, atol=1e-6)
    # the statistics are those of the valid frames: the same frames as one unpadded utterance give them too
    valid = torch.cat([frames[i, :n] for i, n in enumerate(lengths.tolist())])[None]
    third(valid, torch.tensor([valid.size(1)]))
    for key, value in first.state_dict().items():
        if "running_" in key:
            assert torch.allclose(value, second.state_dict()[key], atol=1e-6), key
            assert torch.allclose(value, third.state_dict()[key], atol=1e-6), key
    assert not torch.allclose(first.blocks[0][1].running_mean, initial["blocks.0.1.running_mean"])


def test_readings_script_prints_the_exact_readings_at_512_768_and_1024(capsys):
    """The 1,574 reading is unique at 768 dims (and is the implemented one); at 512 dims another reading lands
    on 1,574; at 1024 none does."""
    from conftest import load_script

    readings = load_script("egs/bvcc/local/salf_readings.py", "bvcc_salf_readings")
    readings.main(["--top", "3"])
    out = capsys.readouterr().out
    assert "768 dims (wav2vec 2.0 / HuBERT / WavLM Base): 1 reading(s) of exactly 1,574 parameters:" in out
    assert "512 dims (wav2vec 1.0): 1 reading(s) of exactly 1,574 parameters:" in out
    assert "1024 dims (the Large models): 0 reading(s) of exactly 1,574 parameters; the nearest: 1,576" in out
    exact = {dim: [r._asdict() for n, r in readings.readings(dim) if n == 1574] for dim in (512, 768, 1024)}
    assert exact[768] == [
        dict(
            axis="feature",
            widths=[2] * 4,
            conv_bias=False,
            bn_affine=True,
            down="max_pool",
            lfe="shared_over_length",
            lfe_out=1,
            head_bias=False,
        )
    ]
    assert _n_params(SALFMOSModel(768)) == 1574
    assert len(exact[512]) == 1 and exact[512][0]["widths"] == [1, 2, 4, 8] and not exact[1024]


# ---- through the runner -----------------------------------------------------------------------------------


def _overrides(data_dir, **extra):
    return short_run(data_dir, **{"config.optimizer.lr": 1.0e-2, **extra})  # batches of 4, SALF-MOS's own


def _train(expdir, data_dir, ckpt, *extra_args, **overrides):
    run_downstream_main(
        [DOWNSTREAM], train_argv(ckpt, expdir, "salf_mos", *extra_args, overrides=_overrides(data_dir, **overrides))
    )


@pytest.fixture(scope="module")
def experiments(demo_data, tiny_ckpts, tmp_path_factory):
    """``{variant: expdir}``: SALF-MOS on the tiny WavLM's last layer and on its weighted layer sum, 4 steps."""
    root = tmp_path_factory.mktemp("salf_exp")
    runs = {"salf_mos": ("-s", "last_hidden_state"), "salf_mos_wsum": ()}
    for name, extra in runs.items():
        _train(root / name, demo_data["bvcc"], tiny_ckpts["wavlm"], *extra)
    return {name: str(root / name) for name in runs}


def test_trains_on_frozen_features_and_evaluates(experiments, demo_data, tiny_ckpts):
    expdir = experiments["salf_mos"]
    ckpt = torch.load(os.path.join(expdir, "best-states-val.ckpt"), map_location="cpu", weights_only=True)
    assert not ckpt.get("Upstream")  # frozen: the runner saves no upstream weights
    downstream = ckpt["Downstream"]
    model_params = sum(
        v.numel()
        for k, v in downstream.items()
        if k.startswith("model.") and not any(b in k for b in ("running_", "num_batches"))
    )
    assert model_params == _n_params(SALFMOSModel(64))  # the tiny WavLM's 64-dim features
    assert os.path.isfile(os.path.join(expdir, "metrics_val_best.json"))
    _, metrics = evaluate(expdir, "test", batch_size=8)
    assert set(METRIC_KEYS) | {"n_utt", "n_sys"} <= set(metrics)
    assert metrics["n_utt"] == len(read_datalist(os.path.join(demo_data["bvcc"], "test.csv")))
    with open(os.path.join(expdir, "predictions_test.csv")) as handle:
        assert next(csv.reader(handle)) == ["sample_id", "system_id", "score", "pred"]


def test_weighted_layer_sum_variant_learns_layer_weights(experiments):
    ckpt = torch.load(
        os.path.join(experiments["salf_mos_wsum"], "best-states-val.ckpt"), map_location="cpu", weights_only=True
    )
    assert ckpt["Featurizer"]["weights"].numel() == 4  # the tiny WavLM's hidden states: input + 3 layers


def test_fine_tuning_is_refused(tmp_path, demo_data, tiny_ckpts):
    with pytest.raises(ConfigError, match="frozen.*drop -f"):
        _train(tmp_path / "f", demo_data["bvcc"], tiny_ckpts["wavlm"], "-s", "last_hidden_state", "-f")


def test_paper_recipe_is_the_default_config():
    import yaml

    with open(os.path.join(DOWNSTREAM, "salf_mos", "config.yaml")) as handle:
        config = yaml.safe_load(handle)
    assert config["runner"]["early_stopping"] == {"patience": 20, "unit": "epoch"}
    assert config["optimizer"]["torch_optim_name"] == "SGD" and config["optimizer"]["lr"] == 1.0e-4
    assert config["downstream_expert"]["datarc"]["train_batch_size"] == 4
    assert config["downstream_expert"]["modelrc"]["loss"] == "l1"
    assert config["downstream_expert"]["datarc"].get("best_metric", DATARC_DEFAULTS["best_metric"]) == "utt_SRCC"


def test_early_stopping_stops_when_validation_does_not_improve(tmp_path, demo_data, tiny_ckpts, monkeypatch, capsys):
    """Validation SRCC falls after the first validation: the run stops `patience` validations later and the
    kept best checkpoint is the first one."""
    import distilmos.train.expert_base as expert_base

    real = expert_base.compute_metrics
    falling = iter([0.5, 0.4, 0.3, 0.2, 0.1] + [0.0] * 100)

    def worse_each_time(*args, **kwargs):
        metrics = real(*args, **kwargs)
        metrics["utt_SRCC"] = next(falling)
        return metrics

    monkeypatch.setattr(expert_base, "compute_metrics", worse_each_time)
    _train(
        tmp_path,
        demo_data["bvcc"],
        tiny_ckpts["wavlm"],
        "-s",
        "last_hidden_state",
        **{
            "config.runner.total_steps": 40,
            "config.runner.eval_step": 1,
            "config.runner.save_step": 100,
            "config.runner.early_stopping.patience": 3,
            "config.runner.early_stopping.unit": "step",
        },
    )
    steps = [json.loads(line)["step"] for line in open(tmp_path / "log.jsonl") if '"val"' in line]
    assert steps == [1, 2, 3, 4]  # improved at 1; 3 steps without improvement -> stop at 4
    assert os.path.isfile(tmp_path / "states-4.ckpt")
    best = torch.load(tmp_path / "best-states-val.ckpt", map_location="cpu", weights_only=True)
    assert best["Step"] == 1
    with open(tmp_path / "metrics_val_best.json") as handle:
        assert json.load(handle)["step"] == 1


# ---- the predictor -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["salf_mos", "salf_mos_wsum"])
def test_exported_scores_equal_runnerevaluate(experiments, demo_data, tmp_path, variant):
    expdir = experiments[variant]
    out = str(tmp_path / f"{variant}.pt")
    card = export(os.path.join(expdir, "best-states-val.ckpt"), out)
    assert card["downstream"]["expert"] == "salf_mos" and card["downstream"]["parameters"] == _n_params(
        SALFMOSModel(64)
    )
    assert card["upstream"]["fine_tuned"] is False
    # the card names the variant (told apart by -s alone) and no token store, which neither variant uses
    assert card["downstream"]["variant"] == variant and card["training_data"]["token_store"] is None
    utts = read_datalist(os.path.join(demo_data["bvcc"], "test.csv"))
    runner_preds, _ = evaluate(expdir, "test", batch_size=1)
    ours = load(out, device="cpu", batch_size=1).predict(paths=[u.wav_path for u in utts])
    gaps = [abs(runner_preds[u.sample_id] - p) for u, p in zip(utts, ours)]
    assert max(gaps) <= 1e-5, gaps


# ---- hand-crafted features and the ablation recipe -----------------------------------------------------------


@pytest.mark.parametrize("upstream,dim", [("mfcc", 39), ("fbank", 240), ("lfcc", 39)])
def test_hand_crafted_feature_upstreams(tmp_path, demo_data, upstream, dim):
    """s3prl's mfcc and fbank upstreams and the toolkit's lfcc need no weights (they load offline) and give one
    hidden state."""
    overrides = _overrides(demo_data["bvcc"], **{"config.runner.total_steps": 2})
    argv = train_argv(None, tmp_path, "salf_mos", "-s", "last_hidden_state", overrides=overrides, upstream=upstream)
    run_downstream_main([DOWNSTREAM], argv)
    ckpt = torch.load(tmp_path / "best-states-val.ckpt", map_location="cpu", weights_only=True)
    assert (
        SALFMOSModel.kwargs_from_state(
            {k[len("model.") :]: v for k, v in ckpt["Downstream"].items() if k.startswith("model.")}
        )["upstream_dim"]
        == dim
    )


@pytest.mark.parametrize(
    "upstream,ckpt,dim",
    [("lfcc", None, 39), ("utterance_embedding", "distilmos.upstream.utterance:random_embedder", 32)],
)
def test_toolkit_upstreams_train_export_and_score_as_the_runner(tmp_path, demo_data, upstream, ckpt, dim):
    """LFCC (frames) and an utterance embedding (one frame per utterance) through training, the runner's
    evaluation and the exported predictor, which rebuilds the upstream by name."""
    expdir = tmp_path / upstream
    overrides = _overrides(demo_data["bvcc"], **{"config.runner.total_steps": 2})
    argv = train_argv(ckpt, expdir, "salf_mos", "-s", "last_hidden_state", overrides=overrides, upstream=upstream)
    run_downstream_main([DOWNSTREAM], argv)
    card = export(os.path.join(expdir, "best-states-val.ckpt"), str(tmp_path / "p.pt"))
    assert card["downstream"]["parameters"] == _n_params(SALFMOSModel(dim))
    utts = read_datalist(os.path.join(demo_data["bvcc"], "test.csv"))
    runner_preds, _ = evaluate(str(expdir), "test", batch_size=4)
    # an embedding callable is code the file names: loading it takes the opt-in
    trust = ckpt is not None and ":" in ckpt
    ours = load(str(tmp_path / "p.pt"), device="cpu", batch_size=3, trust_remote_code=trust).predict(
        paths=[u.wav_path for u in utts]
    )
    assert max(abs(runner_preds[u.sample_id] - p) for u, p in zip(utts, ours)) <= 1e-5


def _ablation_dry_run(tmp_path, *args):
    commands = dry_run("bvcc/run_salf_ablation.sh", "--bvcc_root", "/c/bvcc", "--exproot", tmp_path, *args)
    return commands[:-1], commands[-1]


def _flag(command, name):
    return command[command.index(name) + 1] if name in command else None


def test_ablation_dry_run_lists_every_input_and_depth(tmp_path):
    runs, table = _ablation_dry_run(
        tmp_path,
        "--upstreams",
        "wavlm_base w=/x/m.pt",
        "--seeds",
        "0 1",
        "--batch_size",
        "8",
        "--feature_cache",
        "true",
    )
    depth = lambda c: _flag(c, "--overrides").split("=")[1]  # noqa: E731
    inputs = ("wav2vec2_base_960", "lfcc", "mfcc", "fbank", "ge2e_dvector", "wavlm_base", "w")
    assert [(_flag(c, "--upstream"), depth(c), _flag(c, "--seed")) for c in runs] == (
        [(u, "4", s) for u in inputs for s in ("0", "1")]
        + [("wav2vec2_base_960", d, s) for d in ("2", "3", "5") for s in ("0", "1")]
    )
    assert all(c[0].endswith("egs/bvcc/run.sh") and _flag(c, "--variant") == "salf_mos" for c in runs)
    assert all(_flag(c, "--batch_size") == "8" and _flag(c, "--bvcc_root") == "/c/bvcc" for c in runs)
    # the paper's split by default, in every run and every folder name
    assert all((_flag(c, "--split"), _flag(c, "--split_seed")) == ("random811", "0") for c in runs)
    assert _flag(runs[-1], "--upstream_ckpt") is None and _flag(runs[12], "--upstream_ckpt") == "/x/m.pt"
    expdirs = [_flag(c, "--expdir") for c in runs]
    assert expdirs[4] == str(tmp_path / "salf_mos_mfcc_seed0_random811_seed0") and len(set(expdirs)) == len(expdirs)
    assert expdirs[14] == str(tmp_path / "salf_mos_wav2vec2_base_960_depth2_seed0_random811_seed0")
    # the utterance embedding has no frames to cache: its run undoes --feature_cache true
    embedding = runs[8]
    assert [embedding[i + 1] for i, w in enumerate(embedding) if w == "--feature_cache"] == ["true", "false"]
    assert table[1].endswith("local/salf_ablation.py")
    assert table[table.index("--runs") + 1 : table.index("--ssl")] == [
        f"{_flag(c, '--upstream') if _flag(c, '--upstream') != 'w' else 'w_m'}:{depth(c)}:{_flag(c, '--expdir')}"
        for c in runs
    ]
    assert _flag(table, "--ssl") == "wav2vec2_base_960" and _flag(table, "--embedding") == "ge2e_dvector"
    assert _flag(table, "--out") == str(tmp_path / "salf_ablation")


def test_ablation_dry_run_split_depths_and_embedding_options(tmp_path):
    runs, table = _ablation_dry_run(
        tmp_path,
        "--split",
        "official",
        "--depths",
        "3 4",
        "--baselines",
        "lfcc",
        "--embedding",
        "utterance_embedding=my.pkg:factory",
        "--overrides",
        "x.y=1",
    )
    assert [(_flag(c, "--upstream"), _flag(c, "--upstream_ckpt"), _flag(c, "--overrides")) for c in runs] == [
        ("wav2vec2_base_960", None, "config.downstream_expert.modelrc.depth=4,,x.y=1"),
        ("lfcc", None, "config.downstream_expert.modelrc.depth=4,,x.y=1"),
        ("utterance_embedding", "my.pkg:factory", "config.downstream_expert.modelrc.depth=4,,x.y=1"),
        ("wav2vec2_base_960", None, "config.downstream_expert.modelrc.depth=3,,x.y=1"),
    ]
    assert all(_flag(c, "--split") == "official" for c in runs)
    assert [_flag(c, "--expdir") for c in runs][1:3] == [
        str(tmp_path / "salf_mos_lfcc_seed0"),
        str(tmp_path / "salf_mos_utterance_embedding_my.pkg_factory_seed0"),
    ]
    assert _flag(table, "--embedding") == "utterance_embedding_my.pkg_factory"
    _, no_embedding = _ablation_dry_run(tmp_path, "--embedding", "", "--baselines", "", "--depths", "4")
    assert len(no_embedding[no_embedding.index("--runs") + 1 : no_embedding.index("--ssl")]) == 1


def test_ablation_table_has_the_papers_rows(tmp_path):
    from conftest import load_script

    table = load_script("egs/bvcc/local/salf_ablation.py", "bvcc_salf_ablation")
    runs = []
    for tag, depth, mse, split in (
        ("wav2vec2_base_960", 4, 0.2, "random811"),
        ("mfcc", 4, 0.6, "random811"),
        ("lfcc", 4, 0.5, "random811"),
        ("ge2e_dvector", 4, 0.55, "random811"),
        ("fbank", 4, 0.58, "random811"),
        ("wav2vec2_base_960", 2, 0.3, "random811"),
        ("wav2vec2_base_960", 5, 0.25, "random811"),
    ):
        expdir = tmp_path / f"{tag}_{depth}"
        expdir.mkdir()
        (expdir / "info.json").write_text(json.dumps({"upstream": tag, "split": split, "split_seed": 0}))
        (expdir / "metrics_test.json").write_text(json.dumps({"utt_MSE": mse, "utt_SRCC": 0.5}))
        runs.append(f"{tag}:{depth}:{expdir}")
    rows = table.collect(runs, "wav2vec2_base_960", "ge2e_dvector")
    assert [(r["table"], r["input"], r["depth"]) for r in rows] == [
        ("inputs", "wav2vec", 4),
        ("inputs", "LFCC", 4),
        ("inputs", "MFCC", 4),
        ("inputs", "X-vector", 4),
        ("inputs", "fbank", 4),
        ("depths", "wav2vec", 2),
        ("depths", "wav2vec", 4),
        ("depths", "wav2vec", 5),
    ]
    assert [r["paper_MSE"] for r in rows[:5]] == [0.144, 0.43, 0.56, 0.48, None]
    text = table.markdown(rows)
    assert "| X-vector | ge2e_dvector | – | random811 (seed 0) | 0.550 | – | 0.500 |" in text
    assert "| wav2vec | 2 | – | random811 (seed 0) | 0.300 |" in text
    # seeds of one input on two splits are not averaged
    other = tmp_path / "mfcc_official"
    other.mkdir()
    (other / "info.json").write_text(json.dumps({"upstream": "mfcc"}))
    (other / "metrics_test.json").write_text(json.dumps({"utt_MSE": 0.7}))
    with pytest.raises(table.AblationError, match="different BVCC splits"):
        table.collect(runs + [f"mfcc:4:{other}"], "wav2vec2_base_960")


def test_table_has_a_salf_mos_row(tmp_path):
    from conftest import load_script

    make_table = load_script("egs/bvcc/local/make_table.py", "bvcc_make_table_salf")
    expdir = tmp_path / "salf_mos_wav2vec2_base_960_seed0"
    expdir.mkdir()
    (expdir / "info.json").write_text(json.dumps({"upstream": "wav2vec2_base_960", "variant": "salf_mos", "seed": 0}))
    (expdir / "metrics_test.json").write_text(json.dumps({"utt_SRCC": 0.5, "utt_MSE": 0.3}))
    rows = make_table.rows(make_table.collect([str(expdir)]))
    assert {(r["backbone"], r["model"]) for r in rows} == {("Wav2Vec2 Base", "SALF-MOS")}
    assert "| Wav2Vec2 Base | SALF-MOS | – | 0.500 |" in make_table.markdown(rows)


def test_ridge_yardstick_writes_expert_format_metrics(tmp_path, demo_data, tiny_ckpts):
    from conftest import load_script

    ridge = load_script("egs/demo/local/ridge_yardstick.py", "demo_ridge_yardstick")
    results = ridge.run(
        "wavlm_local", tiny_ckpts["wavlm"], "last", demo_data["bvcc"], str(tmp_path), eval_splits=["test"]
    )
    with open(tmp_path / "metrics_test.json") as handle:
        metrics = json.load(handle)
    assert set(METRIC_KEYS) | {"n_utt", "n_sys"} <= set(metrics)
    assert metrics["n_utt"] == len(read_datalist(os.path.join(demo_data["bvcc"], "test.csv")))
    assert results["test"]["utt_MSE"] == pytest.approx(metrics["utt_MSE"])
    with open(tmp_path / "info.json") as handle:
        assert json.load(handle)["variant"] == "ridge"
    with pytest.raises(ridge.YardstickError, match="--layer"):
        ridge.parse_layer("middle")


def test_ridge_yardstick_on_every_layer_reads_each_hidden_state(tmp_path, demo_data, tiny_ckpts):
    """``--layer all`` gives the mean and std of every hidden state side by side; the last block is ``last``'s."""
    from conftest import load_script

    from distilmos.upstream.build import build_upstream

    ridge = load_script("egs/demo/local/ridge_yardstick.py", "demo_ridge_yardstick")
    upstream = build_upstream("wavlm_local", tiny_ckpts["wavlm"]).eval()
    paths = [u.wav_path for u in read_datalist(os.path.join(demo_data["bvcc"], "test.csv"))][:2]
    every = ridge.utterance_features(upstream, paths, ridge.parse_layer("all"), "cpu")
    last = ridge.utterance_features(upstream, paths, ridge.parse_layer("last"), "cpu")
    n_states = len(upstream.model.encoder.layers) + 1
    assert every.shape == (2, n_states * last.shape[1])
    np.testing.assert_allclose(every[:, -last.shape[1] :], last)
