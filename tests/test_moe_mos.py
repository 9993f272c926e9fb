"""MoE-MOS: the mixture-of-experts network, its regularisers, the three-stage schedule (also across a
resume), the expert's losses with unknown systems, training and evaluation through run_downstream.py,
the exported predictor with its system posterior, and the ablation script's dry run."""

import json
import math
import os
from collections import defaultdict

import pytest
import torch
import torch.nn as nn
from downstream_helpers import DOWNSTREAM, evaluate, import_expert_module, train_argv
from recipe_helpers import dry_run, options_of

from distilmos.data.dataset import MOSBatch
from distilmos.models.moe_mos import MoEMOSModel, gate_entropy, load_balance_loss, sparsity_loss
from distilmos.train.moe_schedule import StageSchedule
from distilmos.train.runner import run as run_downstream_main

CLASSES = ["sysA", "sysB", "sysC"]


def _model(n_experts=4, dim=12, seed=0):
    torch.manual_seed(seed)
    return MoEMOSModel(dim, n_experts=n_experts, hidden_dim=16, class_names=CLASSES).eval()


# ---- the network ------------------------------------------------------------------------------------
def test_gates_sum_to_one_and_outputs_have_their_shapes():
    model = _model(n_experts=5)
    out = model(torch.randn(3, 20, 12), torch.tensor([20, 7, 1]))
    assert out["pred"].shape == (3,) and out["system_logits"].shape == (3, 3) and out["gates"].shape == (3, 5)
    assert torch.allclose(out["gates"].sum(-1), torch.ones(3), atol=1e-6)
    assert (out["gates"] >= 0).all()


def test_one_expert_is_a_plain_mlp_head():
    model = _model(n_experts=1)
    feats, lengths = torch.randn(2, 9, 12), torch.tensor([9, 4])
    out = model(feats, lengths)
    assert torch.equal(out["gates"], torch.ones(2, 1))
    pooled = torch.stack([feats[0, :9].mean(0), feats[1, :4].mean(0)])
    mlp = nn.Sequential(model.experts[0], model.mos_head)  # no gate in the path at all
    assert torch.allclose(out["pred"], mlp(pooled).squeeze(-1), atol=1e-6)
    assert load_balance_loss(out["gates"]) == 0 and sparsity_loss(out["gates"]) == 0


def test_padding_does_not_change_any_output():
    model = _model()
    lengths = [50, 45, 35, 20]  # 0%, 10%, 30% and 60% padding in a batch of 50 frames
    feats = [torch.randn(n, 12) for n in lengths]
    batch = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    together = model(batch, torch.tensor(lengths))
    for i, f in enumerate(feats):
        alone = model(f[None], torch.tensor([len(f)]))
        for key in ("pred", "system_logits", "gates"):
            assert torch.allclose(together[key][i], alone[key][0], atol=1e-5), key


def test_kwargs_from_state_rebuilds_the_model_with_its_class_names():
    model = _model(n_experts=3)
    kwargs = MoEMOSModel.kwargs_from_state(model.state_dict())
    assert kwargs == {"upstream_dim": 12, "hidden_dim": 16, "n_experts": 3, "class_names": CLASSES}
    rebuilt = MoEMOSModel(**kwargs)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    assert rebuilt.class_names == CLASSES


def test_regularisers_tell_a_collapsed_gate_from_a_balanced_one():
    collapsed = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 4)
    balanced_sparse = torch.eye(4)  # each utterance one expert, every expert used equally
    uniform = torch.full((4, 4), 0.25)
    assert load_balance_loss(collapsed).item() == pytest.approx(1.0)
    assert load_balance_loss(balanced_sparse).item() == pytest.approx(0.0)
    assert sparsity_loss(balanced_sparse).item() == pytest.approx(0.0, abs=1e-6)
    assert sparsity_loss(uniform).item() == pytest.approx(1.0)
    assert gate_entropy(uniform)[0].item() == pytest.approx(math.log(4))


# ---- the schedule -----------------------------------------------------------------------------------
def test_schedule_stages_weights_and_lr():
    schedule = StageSchedule(1000)  # defaults: stages at 20% and 70%
    base = 1e-4
    first = schedule.at(0)
    assert (first.stage, first.mos_weight, first.cls_weight) == (1, 0.0, 1.0)
    assert base * first.lr_scale == pytest.approx(1e-4)
    assert schedule.at(199).stage == 1 and schedule.at(200).stage == 2
    start2, end2 = schedule.at(200), schedule.at(699)
    assert (start2.mos_weight, start2.cls_weight) == pytest.approx((0.3, 0.7))
    assert (end2.mos_weight, end2.cls_weight) == pytest.approx((0.7, 0.3))
    mid = schedule.at(200 + 499 // 2)
    assert mid.mos_weight == pytest.approx(0.5, abs=2e-3)  # linear in between
    start3 = schedule.at(700)
    assert (start3.stage, start3.mos_weight, start3.cls_weight) == (3, 0.9, 0.1)
    assert base * start3.lr_scale == pytest.approx(1e-5)
    # cosine within a stage: peak at its start, min_lr_ratio of the peak at its end, halfway in the middle
    assert base * schedule.at(999).lr_scale == pytest.approx(1e-6)
    assert schedule.at(99).lr_scale < schedule.at(0).lr_scale
    assert schedule.at_global_step(701) == schedule.at(700)


def test_schedule_config_errors_name_the_key():
    from distilmos.errors import ConfigError

    with pytest.raises(ConfigError, match="stages"):
        StageSchedule(100, stages=[0.8, 0.3])
    with pytest.raises(ConfigError, match="lr_scale"):
        StageSchedule(100, lr_scale=[1.0, 0.1])
    with pytest.raises(ConfigError, match="pct_start"):
        StageSchedule.from_config({"name": "MoEStageLR", "pct_start": 0.3}, 100)


def test_the_lr_scheduler_follows_the_schedule_and_resumes_exactly():
    from distilmos.train.schedulers import get_MoEStageLR

    def fresh():
        optimizer = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1e-4)
        return optimizer, get_MoEStageLR(optimizer, 20, stages=[0.25, 0.5])

    schedule = StageSchedule(20, stages=[0.25, 0.5])
    optimizer, scheduler = fresh()
    lrs = []
    for step in range(20):
        lrs.append(optimizer.param_groups[0]["lr"])  # the lr step `step` runs at
        optimizer.step()
        scheduler.step()
        if step == 8:
            saved = (scheduler.state_dict(), optimizer.state_dict())
    assert lrs == pytest.approx([1e-4 * schedule.at(k).lr_scale for k in range(20)])
    # a resumed scheduler (state restored as the runner restores it) continues the same sequence
    optimizer, scheduler = fresh()
    optimizer.load_state_dict(saved[1])
    scheduler.load_state_dict(saved[0])
    for group, state in zip(optimizer.param_groups, saved[1]["param_groups"]):
        group.update({k: v for k, v in state.items() if k != "params"})
    assert optimizer.param_groups[0]["lr"] == pytest.approx(lrs[9])


# ---- the expert -------------------------------------------------------------------------------------
@pytest.fixture
def expert(demo_data, tmp_path):
    module = import_expert_module("moe_mos")
    return module.DownstreamExpert(
        16,
        {"datarc": {"data_dir": demo_data["bvcc"], "num_workers": 0}, "modelrc": {"n_experts": 3}},
        str(tmp_path),
        runner={"total_steps": 10, "eval_dataloaders": ["val"]},
        scheduler={"name": "MoEStageLR", "stages": [0.2, 0.6]},
    )


def test_unknown_systems_give_no_classification_loss(expert):
    known = expert.model.class_names[0]
    feats = [torch.randn(8, 16), torch.randn(5, 16)]
    expert.train()
    # a batch of unseen systems only: no classification loss, no crash
    records = defaultdict(list)
    batch = MOSBatch(scores=torch.tensor([3.0, 2.0]), systems=["never_seen", "nor_this"], sample_ids=["a", "b"])
    loss = expert("train", feats, batch, records, global_step=1)
    assert torch.isfinite(loss) and records["cls_loss"] == [0.0]
    # a mixed batch: the classification loss is that of the known utterance alone
    expert.model.eval()  # no dropout, so that the loss can be recomputed below
    records = defaultdict(list)
    batch = MOSBatch(scores=torch.tensor([3.0, 2.0]), systems=[known, "never_seen"], sample_ids=["a", "b"])
    expert("train", feats, batch, records, global_step=1)
    out = expert.model(torch.nn.utils.rnn.pad_sequence(feats, batch_first=True), torch.tensor([8, 5]))
    expected = nn.functional.cross_entropy(out["system_logits"][:1], torch.tensor([0]))
    assert records["cls_loss"][0] == pytest.approx(expected.item(), rel=1e-5)
    # evaluation over unseen systems: accuracy undefined, not a crash
    expert.eval()
    records = defaultdict(list)
    expert("test", feats, MOSBatch(scores=torch.tensor([3.0, 2.0]), systems=["x", "y"], sample_ids=["a", "b"]), records)
    metrics = expert.extra_metrics("test", records, 0)
    assert math.isnan(metrics["sys_acc"]) and metrics["sys_acc_n"] == 0
    assert sum(metrics[f"expert_usage_{i}"] for i in range(3)) == pytest.approx(1.0)


def test_loss_weights_follow_the_stage(expert):
    expert.train()
    feats = [torch.randn(6, 16)]
    batch = MOSBatch(scores=torch.tensor([3.0]), systems=[expert.model.class_names[0]], sample_ids=["a"])
    seen = {}
    for step in (1, 3, 6, 7, 10):
        records = defaultdict(list)
        expert("train", feats, batch, records, global_step=step)
        seen[step] = (records["stage"][0], records["mos_weight"][0], records["cls_weight"][0])
    assert seen[1] == (1.0, 0.0, 1.0)
    assert seen[3] == pytest.approx((2.0, 0.3, 0.7)) and seen[6] == pytest.approx((2.0, 0.7, 0.3))
    assert seen[7] == pytest.approx((3.0, 0.9, 0.1)) and seen[10] == pytest.approx((3.0, 0.9, 0.1))


def test_no_best_checkpoint_from_the_classification_pre_training(expert, tmp_path):
    """A validation of stage 1 (MOS weight 0: an untrained MOS head) never becomes the best checkpoint, however
    it ranks; from the first step that trains MOS on, the usual selection by validation SRCC."""
    from tensorboardX import SummaryWriter

    assert [expert.selectable(step) for step in (1, 2, 3, 10)] == [False, False, True, True]
    records = {
        "score": [1.0, 2.0, 3.0, 4.0],
        "pred": [1.0, 2.0, 3.0, 4.0],
        "system": ["a", "a", "b", "b"],
        "sample_id": ["u1", "u2", "u3", "u4"],
        "gates": [[0.4, 0.3, 0.3]] * 4,
        "sys_correct": [],
    }
    logger = SummaryWriter(str(tmp_path / "tb"))
    assert expert.log_records("val", dict(records), logger, 2) == []  # a perfect ranking, in stage 1
    assert expert.log_records("val", dict(records), logger, 3) == ["best-states-val.ckpt"]


def test_a_collapsed_gate_is_named_at_validation(expert, capsys):
    records = {"gates": [[0.95, 0.03, 0.02]] * 4, "sys_correct": [1.0, 0.0]}
    metrics = expert.extra_metrics("val", records, 500)
    assert metrics["expert_usage_0"] == pytest.approx(0.95) and metrics["sys_acc"] == 0.5
    assert "WARNING: expert 0 takes 95.0%" in capsys.readouterr().out
    expert.extra_metrics("val", {"gates": [[0.5, 0.3, 0.2]] * 4, "sys_correct": []}, 500)
    assert "WARNING" not in capsys.readouterr().out


# ---- through run_downstream.py ----------------------------------------------------------------------
def _argv(expdir, ckpt, data_dir, steps=4, resume=False, **overrides):
    values = {
        "downstream_expert.datarc.data_dir": data_dir,
        "downstream_expert.datarc.num_workers": 0,
        "downstream_expert.datarc.train_batch_size": 4,
        "downstream_expert.datarc.eval_batch_size": 8,
        "downstream_expert.modelrc.hidden_dim": 32,
        "downstream_expert.modelrc.n_experts": 3,
        "runner.total_steps": steps,
        "runner.eval_step": 2,
        "runner.save_step": 2,
        "runner.log_step": 1,
        "scheduler.stages": [0.25, 0.5],
    }
    values.update(overrides)
    config = {f"config.{k}": v for k, v in values.items()}
    return train_argv(ckpt, expdir, "moe_mos", *(["-a"] if resume else []), overrides=config)


def _log(expdir, split):
    with open(os.path.join(str(expdir), "log.jsonl")) as handle:
        return [r for r in map(json.loads, handle) if r["split"] == split]


@pytest.fixture(scope="module")
def trained(tiny_ckpts, demo_data, tmp_path_factory):
    """A MoE-MOS run of 4 steps on the frozen tiny WavLM, and its predictor file."""
    from distilmos.predictor import export

    expdir = tmp_path_factory.mktemp("moe_exp")
    run_downstream_main([DOWNSTREAM], _argv(expdir, tiny_ckpts["wavlm"], demo_data["bvcc"]))
    model = str(tmp_path_factory.mktemp("moe_model") / "moe.pt")
    export(os.path.join(str(expdir), "best-states-val.ckpt"), model)  # checks the rebuild within 1e-5
    return expdir, model


def test_train_and_evaluate_log_expert_usage(trained, demo_data):
    expdir, _ = trained
    ckpt = torch.load(os.path.join(str(expdir), "best-states-val.ckpt"), map_location="cpu", weights_only=True)
    assert "Upstream" not in ckpt  # frozen by default
    train_systems = sorted(
        {line.split(",")[1] for line in open(os.path.join(demo_data["bvcc"], "train.csv")).read().splitlines()[1:]}
    )
    assert (
        MoEMOSModel.kwargs_from_state({k[6:]: v for k, v in ckpt["Downstream"].items() if k.startswith("model.")})[
            "class_names"
        ]
        == train_systems
    )
    val = _log(expdir, "val")
    assert [r["step"] for r in val] == [2, 4]
    for record in val:
        usage = [record[f"expert_usage_{i}"] for i in range(3)]
        assert sum(usage) == pytest.approx(1.0) and 0 <= record["gate_entropy"] <= math.log(3) + 1e-9
        assert 0 <= record["sys_acc"] <= 1 and record["sys_acc_n"] > 0
    run_downstream_main(
        [DOWNSTREAM],
        ["-m", "evaluate", "-e", os.path.join(str(expdir), "best-states-val.ckpt"), "-t", "test", "--device", "cpu"],
    )
    with open(os.path.join(str(expdir), "metrics_test.json")) as handle:
        metrics = json.load(handle)
    assert math.isfinite(metrics["utt_SRCC"]) and "expert_usage_0" in metrics and "sys_acc" in metrics


def test_schedule_through_the_runner_survives_a_stop_and_resume(tmp_path, tiny_ckpts, demo_data, monkeypatch):
    """Eight steps with stages at 25% and 50%, stopped (SIGTERM) after step 3 and resumed: every step
    trains at the schedule's learning rate and loss weights."""
    import signal

    from distilmos.train.preemption import EXIT_PREEMPTED

    lrs = []
    step = torch.optim.AdamW.step

    def recording_step(self, *args, **kwargs):
        lrs.append(self.param_groups[0]["lr"])
        if len(lrs) == 3:  # the signal arrives while step 3 is in flight
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    argv = _argv(tmp_path, tiny_ckpts["wavlm"], demo_data["bvcc"], steps=8, **{"runner.eval_step": 4})
    with pytest.raises(SystemExit) as stopped:
        run_downstream_main([DOWNSTREAM], argv)
    assert stopped.value.code == EXIT_PREEMPTED and len(lrs) == 3
    run_downstream_main([DOWNSTREAM], argv + ["-a"])
    schedule = StageSchedule(8, stages=[0.25, 0.5])
    assert lrs == pytest.approx([1e-4 * schedule.at(k).lr_scale for k in range(8)], rel=1e-6)
    train = {r["step"]: r for r in _log(tmp_path, "train")}
    assert sorted(train) == list(range(1, 9))
    for k in range(8):
        point = schedule.at(k)
        assert (train[k + 1]["stage"], train[k + 1]["mos_weight"], train[k + 1]["cls_weight"]) == pytest.approx(
            (point.stage, point.mos_weight, point.cls_weight)
        ), f"step {k + 1}"
    assert train[8]["stage"] == 3 and lrs[-1] == pytest.approx(1e-4 * 0.1 * 0.1)  # the last step: 1e-6


# ---- the exported predictor -------------------------------------------------------------------------
def test_exported_predictor_equals_the_runner_and_gives_the_system_posterior(trained, demo_data):
    from distilmos.data.datalist import read_datalist
    from distilmos.predictor import load

    expdir, model = trained
    utts = read_datalist(os.path.join(demo_data["bvcc"], "test.csv"))
    runner, _ = evaluate(expdir, "test", batch_size=1)
    predictor = load(model, device="cpu", batch_size=1)
    paths = [u.wav_path for u in utts]
    scores = predictor.predict(paths=paths)
    assert max(abs(runner[u.sample_id] - s) for u, s in zip(utts, scores)) <= 1e-5
    with_posterior = predictor.predict(paths=paths[:3], return_posterior=True)
    classes = predictor.system_classes
    assert classes == predictor.card["downstream"]["system_classes"] and len(classes) > 1
    for (score, posterior), plain in zip(with_posterior, scores[:3]):
        assert score == pytest.approx(plain, abs=1e-6)
        assert list(posterior) == classes and sum(posterior.values()) == pytest.approx(1.0, abs=1e-5)


def test_score_command_writes_the_system_posterior(trained, demo_data, tmp_path):
    from distilmos.predictor.cli import main

    _, model = trained
    out = tmp_path / "scores.jsonl"
    assert (
        main(
            [
                "score",
                model,
                os.path.join(demo_data["bvcc"], "test.csv"),
                "--system_posterior",
                "-q",
                "--device",
                "cpu",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records and all(r["top_system"] in r["system_posterior"] for r in records)
    assert all(r["top_system_prob"] == max(r["system_posterior"].values()) for r in records)


# ---- the ablation script ----------------------------------------------------------------------------
def test_ablation_dry_run_lists_every_run_and_the_table(tmp_path):
    options = ["--bvcc_root", "/c/bvcc", "--exproot", tmp_path, "--seeds", "0 1", "--batch_size", "16"]
    commands = dry_run("bvcc/run_moe_ablation.sh", *options, "--overrides", "config.optimizer.lr=3e-4")
    runs, table = commands[:-1], commands[-1]
    assert len(runs) == 16 and all(c[0].endswith("egs/bvcc/run.sh") for c in runs)
    flags = [options_of(c) for c in runs]
    assert all(f["--variant"] == "moe_mos" and f["--batch_size"] == "16" and f["--stop_stage"] == "4" for f in flags)
    settings = {
        (
            f["--overrides"].split(",,")[0].rsplit("=", 1)[1],
            f["--overrides"].split(",,")[1].rsplit("=", 1)[1],
            f["--seed"],
        )
        for f in flags
    }
    assert settings == {(n, c, s) for n in "1248" for c in ("True", "False") for s in "01"}
    assert all(f["--overrides"].endswith(",,config.optimizer.lr=3e-4") for f in flags)
    assert len({f["--expdir"] for f in flags}) == 16
    assert table[1].endswith("local/moe_ablation.py") and table[-1] == str(tmp_path / "moe_ablation")
    assert table[table.index("--runs") + 1] == f"1:cls:{flags[0]['--expdir']}"


def test_ablation_table_and_plots_from_finished_runs(tmp_path):
    from conftest import load_script

    ablation = load_script("egs/bvcc/local/moe_ablation.py", "bvcc_moe_ablation")
    specs = []
    for n in (1, 2, 4):
        for task in ("cls", "nocls"):
            expdir = tmp_path / f"n{n}_{task}"
            expdir.mkdir()
            usage = [1.0 / n] * n
            srcc = 0.5 + 0.05 * n + (0.02 if task == "cls" else 0.0)
            (expdir / "metrics_test.json").write_text(
                json.dumps(
                    {
                        "utt_SRCC": srcc,
                        "sys_SRCC": srcc + 0.1,
                        "utt_LCC": 0.5,
                        "sys_LCC": 0.6,
                        "utt_MSE": 0.4,
                        "sys_MSE": 0.2,
                    }
                )
            )
            (expdir / "metrics_val_best.json").write_text(
                json.dumps(
                    {
                        "utt_SRCC": srcc,
                        "step": 100,
                        "sys_acc": 0.5,
                        "gate_entropy": math.log(n),
                        **{f"expert_usage_{i}": u for i, u in enumerate(usage)},
                    }
                )
            )
            specs.append(f"{n}:{task}:{expdir}")
    ablation.main(["--runs", *specs, "--out", str(tmp_path / "out" / "abl")])
    rows = list(__import__("csv").DictReader(open(tmp_path / "out" / "abl.csv")))
    assert [(r["n_experts"], r["task"]) for r in rows] == [(str(n), t) for n in (1, 2, 4) for t in ("cls", "nocls")]
    assert float(rows[-2]["test_utt_SRCC"]) == pytest.approx(0.72) and float(rows[-2]["val_top_usage"]) == 0.25
    for png in ("abl.png", "abl_usage.png"):
        assert (tmp_path / "out" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit):
        ablation.main(["--runs", f"4:cls:{tmp_path / 'missing'}", "--out", str(tmp_path / "x")])
