"""Listener-aware training and uncertainty (modelrc.listener, modelrc.uncertainty): the mean listener is what
inference and export use, an unseen listener is the mean listener, the std is positive and exported, scoring
writes pred_std, the calibration numbers equal a recomputation with scipy, and the config keys are checked."""

import csv
import os
import re
from collections import defaultdict

import numpy as np
import pytest
import torch
from downstream_helpers import import_expert_module
from scipy import stats

from distilmos.errors import ConfigError
from distilmos.eval.calibration import calibration_bins, plot_calibration
from distilmos.eval.metrics import uncertainty_metrics
from distilmos.models.distilmos_model import DistilMOSModel
from distilmos.models.rating_head import RatingHead
from distilmos.models.ssl_mos import SSLMOSModel
from distilmos.predictor import downstreams

DIM = 8


def _expert(data_dir, expdir, listener=True, uncertainty=True, **modelrc):
    mod = import_expert_module("distilmos")
    rc = {"hidden_dim": 16, "uncertainty": uncertainty, **modelrc}
    if listener is not None:
        rc["listener"] = {"enabled": listener, "dim": 4} if isinstance(listener, bool) else listener
    config = {"datarc": {"data_dir": data_dir, "train_batch_size": 4}, "modelrc": rc}
    torch.manual_seed(0)
    return mod.DownstreamExpert(DIM, config, str(expdir), downstream_variant="no_token")


def _batch(expert, split="train"):
    wavs, batch = next(iter(expert.get_dataloader(split)))
    generator = torch.Generator().manual_seed(0)
    features = [torch.randn(max(1, len(w) // 320), DIM, generator=generator) for w in wavs]
    return features, batch


def test_training_step_fits_the_mean_and_every_listener(demo_data, tmp_path):
    expert = _expert(demo_data["bvcc"], tmp_path)
    assert isinstance(expert.model, RatingHead) and len(expert.listener_ids) > 8
    features, batch = _batch(expert)
    assert batch.ratings and all(len(r) == 8 for r in batch.ratings)  # the generated BVCC: 8 ratings each
    records = defaultdict(list)
    loss = expert("train", features, batch, records)
    loss.backward()
    assert set(records) == {"mos_mse", "mos_nll", "listener_nll", "loss"}
    expected = records["mos_mse"][0] + records["mos_nll"][0] + records["listener_nll"][0]
    assert records["loss"][0] == pytest.approx(expected, rel=1e-5)
    # the listeners rated in the batch get gradients, the others none
    rated = {expert.listener_ids[name] for ratings in batch.ratings for name, _ in ratings}
    grad = expert.listener_table.weight.grad.abs().sum(1)
    assert all(grad[i] > 0 for i in rated) and all(grad[i] == 0 for i in set(range(len(grad))) - rated)
    assert expert.model.mean_listener.grad.abs().sum() > 0


def test_ratings_per_step_trains_on_a_new_draw_of_each_utterances_ratings(demo_data, tmp_path, monkeypatch):
    expert = _expert(demo_data["bvcc"], tmp_path, listener={"enabled": True, "dim": 4, "ratings_per_step": 2})
    features, batch = _batch(expert)
    drawn = []
    real_forward = expert.model.forward

    def forward(x, lengths, listener=None):
        drawn.append(listener[len(batch.sample_ids) :].detach().clone())  # the listener rows' embeddings
        return real_forward(x, lengths, listener=listener)

    monkeypatch.setattr(expert.model, "forward", forward)
    torch.manual_seed(1)
    _, _, first = expert._listener_forward(*_padded(features), batch)
    expert._listener_forward(*_padded(features), batch)  # the next step
    torch.manual_seed(1)
    _, _, again = expert._listener_forward(*_padded(features), batch)
    assert len(first) == 2 * len(batch.sample_ids)  # 2 of each utterance's 8 ratings, not 8
    ratings = [[score for _, score in r] for r in batch.ratings]
    # grouped by utterance, each row one of that utterance's own ratings
    assert all(min(abs(float(s) - x) for x in ratings[i // 2]) < 1e-6 for i, s in enumerate(first))
    assert torch.equal(first, again) and torch.equal(drawn[0], drawn[2])  # the seeded generator decides
    assert not torch.equal(drawn[0], drawn[1])  # a new draw every step
    expert.listener_rc["ratings_per_step"] = 0
    _, _, every = expert._listener_forward(*_padded(features), batch)
    assert len(every) == sum(len(r) for r in batch.ratings) == 8 * len(batch.sample_ids)


def _padded(features):
    return torch.nn.utils.rnn.pad_sequence(features, batch_first=True), torch.tensor([len(f) for f in features])


def test_inference_is_the_mean_listener_and_ignores_the_listener_table(demo_data, tmp_path):
    expert = _expert(demo_data["bvcc"], tmp_path).eval()
    with torch.no_grad():
        expert.model.mean_listener.normal_()  # a trained mean listener: not the zero it starts at
    features, batch = _batch(expert, "val")
    padded = torch.nn.utils.rnn.pad_sequence(features, batch_first=True)
    lengths = torch.tensor([len(f) for f in features])

    def evaluate():
        records = defaultdict(list)
        expert("val", features, batch, records)
        return torch.tensor(records["pred"]), torch.tensor(records["std"])

    pred, std = evaluate()
    with torch.no_grad():
        mean = expert.model(padded, lengths, listener=expert.model.mean_listener.expand(len(features), -1))
        other = expert.model(padded, lengths, listener=expert.listener_table.weight[: len(features)])
    torch.testing.assert_close(pred, mean["pred"])
    torch.testing.assert_close(std, mean["std"])
    assert not torch.allclose(pred, other["pred"])  # the listener embedding does change the prediction
    with torch.no_grad():
        expert.listener_table.weight.normal_()
    torch.testing.assert_close(evaluate()[0], pred)
    assert (std > 0).all()


def test_unseen_listener_is_the_mean_listener(demo_data, tmp_path):
    expert = _expert(demo_data["bvcc"], tmp_path)
    known = next(iter(expert.listener_ids))
    emb = expert.listener_embeddings(["no such listener", known])
    torch.testing.assert_close(emb[0], expert.model.mean_listener)
    torch.testing.assert_close(emb[1], expert.listener_table.weight[expert.listener_ids[known]])


@pytest.mark.parametrize("base", [lambda: DistilMOSModel(DIM, 16), lambda: SSLMOSModel(DIM)])
@pytest.mark.parametrize("listener_dim,utterance", [(4, True), (0, True), (4, False)])
def test_wrapped_models_export_and_rebuild_from_their_weights(base, listener_dim, utterance):
    torch.manual_seed(0)
    inner = base()
    utterance_dim = (16 if isinstance(inner, DistilMOSModel) else DIM) if utterance else 0
    model = RatingHead(inner, listener_dim, utterance_dim, DIM).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    name = "distilmos" if isinstance(inner, DistilMOSModel) else "ssl_mos"
    entry, dropped = downstreams.make_entry(name, {f"model.{k}": v for k, v in model.state_dict().items()})
    assert entry["class_name"] == "RatingHead" and not dropped and "listener_table.weight" not in entry["state_dict"]
    rebuilt = downstreams.build(entry)
    features, lengths = torch.randn(3, 11, DIM), torch.tensor([11, 7, 4])
    with torch.no_grad():
        want, got = model(features, lengths), rebuilt(features, lengths)
    torch.testing.assert_close(got["pred"], want["pred"])
    assert ("std" in got) == utterance
    if utterance:
        torch.testing.assert_close(got["std"], want["std"])
        assert (got["std"] > 0).all()


def test_a_plain_model_is_not_wrapped(demo_data, tmp_path):
    expert = _expert(demo_data["bvcc"], tmp_path, listener=None, uncertainty=False)
    assert type(expert.model) is DistilMOSModel
    entry, _ = downstreams.make_entry("distilmos", {f"model.{k}": v for k, v in expert.model.state_dict().items()})
    assert entry["class_name"] == "DistilMOSModel"


def test_uncertainty_metrics_and_calibration_equal_scipy(tmp_path):
    rng = np.random.default_rng(0)
    true = rng.uniform(1, 5, 53)
    std = rng.uniform(0.1, 1.0, 53)
    pred = true + rng.normal(0, std)
    got = uncertainty_metrics(true, pred, std)
    err = np.abs(pred - true)
    assert got["std_err_LCC"] == pytest.approx(stats.pearsonr(std, err)[0], abs=1e-12)
    assert got["std_err_SRCC"] == pytest.approx(stats.spearmanr(std, err)[0], abs=1e-12)
    assert got["std_err_SRCC"] > 0.3  # errors drawn with the std: they must correlate
    bins = calibration_bins(true, pred, std, n_bins=5)
    assert [n for _, _, n in bins] == [11, 11, 11, 10, 10]
    # scipy's binned statistics over the same equal-count bins (by rank of std)
    ranks = stats.rankdata(std, method="ordinal") - 1
    edges = np.cumsum([0] + [n for _, _, n in bins]) - 0.5
    mean_std = stats.binned_statistic(ranks, std, "mean", bins=edges).statistic
    mse = stats.binned_statistic(ranks, (pred - true) ** 2, "mean", bins=edges).statistic
    np.testing.assert_allclose([s for s, _, _ in bins], mean_std, rtol=1e-12)
    np.testing.assert_allclose([r for _, r, _ in bins], np.sqrt(mse), rtol=1e-12)
    path = plot_calibration(bins, str(tmp_path / "calibration.png"), "test")
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "modelrc,message",
    [
        ({"listener": {"enabeld": True}}, "unknown key in downstream_expert.modelrc.listener: 'enabeld' (did you mean"),
        ({"listener": {"enabled": True, "dim": 0}}, "modelrc.listener.dim: 0 is not a whole number >= 1"),
        ({"listener": {"enabled": True, "ratings_per_step": 1.5}}, "ratings_per_step: 1.5 is not a whole number"),
        ({"listener": {"enabled": True, "ratings_per_step": -1}}, "ratings_per_step: -1 is not a whole number >= 0"),
        ({"listener": {"enabled": True, "weight": -0.5}}, "modelrc.listener.weight: -0.5 is not a number >= 0"),
        ({"listener": {"enabled": "yes"}}, "modelrc.listener.enabled: 'yes' is not true or false"),
        ({"uncertainty": "true"}, "modelrc.uncertainty: 'true' is not true or false"),
        ({"uncertanity": True}, "'uncertanity' (did you mean 'uncertainty'?)"),
    ],
)
def test_rating_option_keys_are_checked(demo_data, tmp_path, modelrc, message):
    mod = import_expert_module("distilmos")
    config = {"datarc": {"data_dir": demo_data["bvcc"], "train_batch_size": 4}, "modelrc": modelrc}
    with pytest.raises(ConfigError, match=re.escape(message)):
        mod.DownstreamExpert(DIM, config, str(tmp_path), downstream_variant="no_token")


def test_listener_training_without_a_listener_list_says_how_to_get_one(demo_data, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "val"):
        with open(os.path.join(demo_data["bvcc"], f"{split}.csv")) as src, open(data / f"{split}.csv", "w") as dst:
            rows = list(csv.reader(src))
            base = demo_data["bvcc"]
            header, body = rows[0], rows[1:]
            index = header.index("wav_path")
            csv.writer(dst, lineterminator="\n").writerows(
                [header] + [r[:index] + [os.path.join(base, r[index])] + r[index + 1 :] for r in body]
            )
    with pytest.raises(ConfigError, match=r"train_listeners.csv: no such file.*\[listeners\]"):
        _expert(str(data), tmp_path)


@pytest.fixture(scope="module")
def trained(demo_data, tiny_ckpts, tmp_path_factory):
    """A DistilMOS (no_token) trained 4 steps listener-aware with uncertainty, its evaluation and export."""
    from conftest import REPO

    from distilmos.predictor import export
    from distilmos.train.runner import run

    root = tmp_path_factory.mktemp("listener_exp")
    expdir = str(root / "exp")
    overrides = {
        "config.downstream_expert.datarc.data_dir": demo_data["bvcc"],
        "config.downstream_expert.datarc.train_batch_size": 4,
        "config.downstream_expert.datarc.eval_batch_size": 8,
        "config.downstream_expert.datarc.num_workers": 0,
        "config.downstream_expert.modelrc.hidden_dim": 32,
        "config.downstream_expert.modelrc.listener.enabled": True,
        "config.downstream_expert.modelrc.uncertainty": True,
        "config.runner.total_steps": 4,
        "config.runner.eval_step": 2,
        "config.runner.save_step": 2,
        "config.runner.log_step": 2,
    }
    common = ["--device", "cpu", "-o", ",,".join(f"{k}={v}" for k, v in overrides.items())]
    downstream = os.path.join(REPO, "downstream")
    run([downstream], ["-m", "train", "-u", "wavlm_local", "-k", tiny_ckpts["wavlm"], "-d", "distilmos"]
        + ["-v", "no_token", "-f", "-p", expdir] + common)  # fmt: skip
    ckpt = os.path.join(expdir, "best-states-val.ckpt")
    run([downstream], ["-m", "evaluate", "-e", ckpt, "-t", "val", "--device", "cpu", "-o",
        "config.downstream_expert.datarc.eval_batch_size=1"])  # fmt: skip
    model = str(root / "model.pt")
    export(ckpt, model)
    return expdir, model


def test_evaluation_writes_std_metrics_and_calibration(trained):
    expdir, _ = trained
    with open(os.path.join(expdir, "predictions_val.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["sample_id", "system_id", "score", "pred", "pred_std"]
    assert all(float(r["pred_std"]) > 0 for r in rows)
    import json

    with open(os.path.join(expdir, "metrics_val.json")) as handle:
        metrics = json.load(handle)
    # (after 4 steps the stds differ in their 7th decimal: the written columns tie, so compare the mean only)
    assert metrics["std_mean"] == pytest.approx(np.mean([float(r["pred_std"]) for r in rows]), abs=1e-5)
    assert {"std_err_LCC", "std_err_SRCC"} <= set(metrics)
    assert os.path.isfile(os.path.join(expdir, "calibration_val.png"))


def test_exported_model_scores_with_std_like_the_runner(trained, demo_data, tmp_path, capsys):
    from distilmos.predictor import load
    from distilmos.predictor.cli import main as cli_main

    expdir, model = trained
    predictor = load(model, device="cpu", batch_size=1)
    assert predictor.has_std and predictor.pipeline.downstream.listener_dim == 32
    with open(os.path.join(expdir, "predictions_val.csv"), newline="") as handle:
        runner = {r["sample_id"]: (float(r["pred"]), float(r["pred_std"])) for r in csv.DictReader(handle)}
    val = os.path.join(demo_data["bvcc"], "val.csv")
    with open(val, newline="") as handle:
        utts = list(csv.DictReader(handle))
    results = predictor.score_files([u["wav_path"] for u in utts])
    for utt, result in zip(utts, results):
        assert result.pred == pytest.approx(runner[utt["sample_id"]][0], abs=1e-5)
        assert result.std == pytest.approx(runner[utt["sample_id"]][1], abs=1e-5) and result.std > 0
    out, metrics = tmp_path / "scores.csv", tmp_path / "metrics.json"
    assert cli_main(["score", model, val, "-o", str(out), "--metrics", str(metrics), "--device", "cpu", "-q"]) == 0
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["wav_path", "pred", "pred_std", "score"]
    assert [float(r["pred_std"]) for r in rows] == pytest.approx([r.std for r in results], abs=1e-5)
    assert "predicted std vs |error|" in capsys.readouterr().err
    assert (tmp_path / "metrics_calibration.png").is_file()
    import json

    assert "std_err_SRCC" in json.loads(metrics.read_text())


def test_table_rows_keep_listener_runs_apart_from_plain_ones(tmp_path):
    import json

    from conftest import load_script

    make_table = load_script("egs/bvcc/local/make_table.py", "make_table_listeners")
    expdirs = []
    for name, listener in (("plain", False), ("listener", True)):
        expdir = tmp_path / name
        expdir.mkdir()
        info = {"upstream": "wavlm_large", "variant": "distilmos", "seed": 0, "listener": listener}
        (expdir / "info.json").write_text(json.dumps(info))
        (expdir / "metrics_test.json").write_text(json.dumps({"utt_SRCC": 0.5 + listener / 10}))
        expdirs.append(str(expdir))
    runs = make_table.collect(expdirs)
    assert sorted(model for _, model in runs) == ["DistilMOS (ours)", "DistilMOS (ours) + listener"]


@pytest.mark.parametrize("jsonl", [False, True])
def test_a_row_with_pred_std_reads_back_its_key_prediction_and_std(jsonl):
    """A resumed or merged output matches its rows to the inputs by path and true score: with the
    ``pred_std`` column before ``score``, the score is still found, and the std comes back for the metrics."""
    from distilmos.predictor.inputs import Entry
    from distilmos.predictor.predictor import FileResult
    from distilmos.predictor.streaming import ScoreFormat

    fmt = ScoreFormat(jsonl=jsonl, with_score=True, with_std=True)
    entry = Entry("a,b.wav", 3.5, "sys1")
    record = fmt.row(entry, FileResult(0, entry.wav_path, pred=3.25, std=0.5))
    assert fmt.parse(record) == (fmt.entry_key(entry), 3.25, 0.5)
    if not jsonl:
        assert fmt.header() == b"wav_path,pred,pred_std,score\n"
    plain = ScoreFormat(jsonl=jsonl, with_score=True)
    assert "pred_std" not in plain.columns() and plain.parse(plain.row(entry, FileResult(0, "x", pred=3.0)))[2] is None
