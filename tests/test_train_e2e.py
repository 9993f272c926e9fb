"""Training and evaluating every expert through s3prl's runner on the generated corpus (a few steps)."""

import csv
import glob
import json
import math
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from downstream_helpers import DOWNSTREAM, import_expert_module, short_run, train_argv

from distilmos.data.datalist import read_datalist, write_datalist
from distilmos.eval.metrics import METRIC_KEYS
from distilmos.train.runner import run as run_downstream_main


@pytest.fixture(scope="module")
def e2e_data(demo_data, tmp_path_factory):
    """The generated BVCC lists plus a one-frame utterance in every split."""
    out = tmp_path_factory.mktemp("e2e_data")
    short = str(out / "sysshort-utt0000001.wav")
    sf.write(short, np.random.default_rng(0).normal(0, 0.1, 560).astype("float32"), 16000)  # 1 frame
    for split in ("train", "val", "test"):
        utts = read_datalist(os.path.join(demo_data["bvcc"], f"{split}.csv"))
        extra = read_datalist(_one_row_csv(out, split, short))
        write_datalist(str(out / f"{split}.csv"), utts + extra)
    return {"bvcc": str(out), "somos_test": os.path.join(demo_data["somos"], "test.csv")}


def _one_row_csv(out, split, wav):
    path = out / f"_short_{split}.csv"
    path.write_text(f"sample_id,system_id,wav_path,score\nshort-{split},sysshort,{wav},2.5\n")
    return str(path)


@pytest.fixture(scope="module")
def token_stores(e2e_data, tiny_ckpts, tmp_path_factory):
    """Build (once per arch) a k=8 token store of the tiny upstream over the training list."""
    from upstream_tokens.dump import dump_split
    from upstream_tokens.fit import fit_store

    root = tmp_path_factory.mktemp("stores")
    built = {}

    def get(arch):
        if arch not in built:
            out = str(root / f"{arch}_k8")
            train = os.path.join(e2e_data["bvcc"], "train.csv")
            fit_store(train, f"{arch}_local", tiny_ckpts[arch], out, n_clusters=8, batch_size=64, progress=False)
            dump_split(train, out, "train", upstream_ckpt=tiny_ckpts[arch], progress=False)
            built[arch] = out
        return built[arch]

    return get


def _overrides(data, **extra):
    somos = {"config.downstream_expert.datarc.extra_eval.somos_test": data["somos_test"]}
    return short_run(data["bvcc"], **somos, **{f"config.downstream_expert.{k}": v for k, v in extra.items()})


def train(expdir, data, arch, ckpt, downstream="distilmos", config=None, extra_args=(), **overrides):
    argv = train_argv(
        ckpt, expdir, downstream, "-f", *extra_args, overrides=_overrides(data, **overrides), upstream=f"{arch}_local"
    )
    if config:
        argv += ["-c", os.path.join(DOWNSTREAM, downstream, config)]
    run_downstream_main([DOWNSTREAM], argv)


def evaluate(expdir, split):
    run_downstream_main(
        [DOWNSTREAM],
        ["-m", "evaluate", "-e", os.path.join(str(expdir), "best-states-val.ckpt"), "-t", split, "--device", "cpu"],
    )
    with open(os.path.join(str(expdir), f"metrics_{split}.json")) as handle:
        metrics = json.load(handle)
    with open(os.path.join(str(expdir), f"predictions_{split}.csv")) as handle:
        rows = list(csv.DictReader(handle))
    return metrics, rows


def _check_results(metrics, rows, n_expected):
    assert set(METRIC_KEYS) | {"n_utt", "n_sys"} <= set(metrics)
    assert metrics["n_utt"] == len(rows) == n_expected
    assert all(math.isfinite(float(r["pred"])) for r in rows)
    assert math.isfinite(metrics["utt_MSE"]) and math.isfinite(metrics["sys_MSE"])
    assert list(rows[0]) == ["sample_id", "system_id", "score", "pred"]


VARIANTS = [
    ("distilmos", "config.yaml", ()),
    ("no_token", "config_no_token.yaml", ()),
    ("mse_distill", "config_mse_distill.yaml", ()),
    ("ssl_mos", "config.yaml", ("-s", "last_hidden_state")),
]


@pytest.mark.parametrize("variant,config,extra_args", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_train_keeps_best_and_evaluates(
    tmp_path, e2e_data, tiny_ckpts, token_stores, capsys, variant, config, extra_args
):
    overrides = {"datarc.token_store": token_stores("wavlm")} if variant == "distilmos" else {}
    downstream = "ssl_mos" if variant == "ssl_mos" else "distilmos"
    train(tmp_path, e2e_data, "wavlm", tiny_ckpts["wavlm"], downstream, config, extra_args, **overrides)
    out = capsys.readouterr()
    assert "NaN" not in out.out + out.err  # the runner reports a NaN gradient norm and skips the step
    assert os.path.isfile(tmp_path / "best-states-val.ckpt") and os.path.isfile(tmp_path / "metrics_val_best.json")
    ckpt = torch.load(tmp_path / "best-states-val.ckpt", map_location="cpu", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ckpt["Downstream"].values() if v.is_floating_point())
    # told to the experts by this runner only, never saved: s3prl's own runner evaluating it does none of it
    assert not {"plugin_runner", "upstream_padding_exact"} & set(vars(ckpt["Args"]))
    n_test = len(read_datalist(os.path.join(e2e_data["bvcc"], "test.csv")))
    _check_results(*evaluate(tmp_path, "test"), n_test)
    if variant == "distilmos":
        # the SOMOS-layout zero-shot split, and the training split with the silent file and the one-frame utterance
        _check_results(*evaluate(tmp_path, "somos_test"), len(read_datalist(e2e_data["somos_test"])))
        _, rows = evaluate(tmp_path, "train")
        assert any(r["sample_id"] == "short-train" for r in rows)


@pytest.mark.parametrize("arch", ["hubert", "wav2vec2"])
def test_other_upstreams(tmp_path, e2e_data, tiny_ckpts, token_stores, arch):
    train(tmp_path, e2e_data, arch, tiny_ckpts[arch], **{"datarc.token_store": token_stores(arch)})
    _check_results(*evaluate(tmp_path, "test"), len(read_datalist(os.path.join(e2e_data["bvcc"], "test.csv"))))


def test_checkpoint_holds_no_teacher(tmp_path, e2e_data, tiny_ckpts):
    train(tmp_path, e2e_data, "wavlm", tiny_ckpts["wavlm"], config="config_mse_distill.yaml")
    ckpt = torch.load(tmp_path / "states-4.ckpt", map_location="cpu", weights_only=True)
    downstream = ckpt["Downstream"]
    assert not any("teacher" in key for key in downstream)
    is_param = lambda key: not any(b in key for b in ("running_", "num_batches", "best_score"))  # noqa: E731
    upstream_params = torch.load(tiny_ckpts["wavlm"], weights_only=True)["model"]
    n_optimised = sum(len(group["params"]) for group in ckpt["Optimizer"]["param_groups"])
    # every optimised tensor is one of the fine-tuned upstream, the featurizer or the downstream: no teacher copy
    assert n_optimised == len(upstream_params) + len(ckpt["Featurizer"]) + sum(map(is_param, downstream))
    assert any(key.startswith("heads.") for key in downstream)  # the regression heads are saved


def test_inference_path_holds_no_training_heads(e2e_data, token_stores, tiny_ckpts, tmp_path):
    expert_mod = import_expert_module("distilmos")
    store = token_stores("wavlm")
    expert = expert_mod.DownstreamExpert(
        64,
        {"variant": "distilmos", "datarc": {"data_dir": e2e_data["bvcc"], "token_store": store}, "modelrc": {}},
        str(tmp_path),
        upstream="wavlm_local",
        upstream_ckpt=tiny_ckpts["wavlm"],
    )
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    h = 256
    blocks = 3 * (h * h + h) + (5 + 3 + 3) * h * h + 3 * 2 * h  # convolutions carry no bias (a norm follows)
    cnn_blstm = (3 * h * h + h) + 2 * (4 * h * (h + h) + 8 * h) + (2 * h * h + h) + 2 * h
    assert count(expert.model) == (64 * h + h) + blocks + cnn_blstm + (h + 1)
    assert count(expert) == count(expert.model) + count(expert.heads)
    assert len(expert.heads.heads) == 3  # one per transformer layer of the tiny upstream
    called = []
    for head in expert.heads.heads:
        head.register_forward_hook(lambda *a: called.append(1))
    from collections import defaultdict

    from distilmos.data.dataset import MOSBatch

    expert.eval()
    feats = [torch.randn(7, 64), torch.randn(3, 64)]
    batch = MOSBatch(scores=torch.tensor([3.0, 2.0]), systems=["a", "b"], sample_ids=["x", "y"])
    with torch.no_grad():
        expert("test", feats, batch, defaultdict(list))
    assert not called


def test_token_store_of_another_upstream_is_refused(tmp_path, e2e_data, tiny_ckpts, token_stores):
    from upstream_tokens.store import TokenStoreError

    with pytest.raises(TokenStoreError, match="upstream"):
        train(tmp_path / "a", e2e_data, "wavlm", tiny_ckpts["wavlm"], **{"datarc.token_store": token_stores("hubert")})
    other_ckpt = str(tmp_path / "other.pt")
    shutil.copy(tiny_ckpts["hubert"], other_ckpt)
    with open(other_ckpt, "ab") as handle:
        handle.write(b"\0")  # same name, another checkpoint file
    with pytest.raises(TokenStoreError, match="sha256|checkpoint"):
        train(tmp_path / "b", e2e_data, "hubert", other_ckpt, **{"datarc.token_store": token_stores("hubert")})
    with pytest.raises(TokenStoreError, match="n_clusters|k"):
        train(
            tmp_path / "c",
            e2e_data,
            "wavlm",
            tiny_ckpts["wavlm"],
            **{"datarc.token_store": token_stores("wavlm"), "modelrc.n_clusters": 200},
        )
    with pytest.raises(TokenStoreError, match="layers"):
        train(
            tmp_path / "d",
            e2e_data,
            "wavlm",
            tiny_ckpts["wavlm"],
            **{"datarc.token_store": token_stores("wavlm"), "modelrc.target_layers": [1, 2]},
        )
    assert not glob.glob(str(tmp_path / "*" / "states-*.ckpt"))  # refused before any training step
