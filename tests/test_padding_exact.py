"""The padding-exact upstream forward: a padded batch gives every utterance the frames it gets alone, for
WavLM, HuBERT and wav2vec 2.0 with the Base (GroupNorm) and Large (LayerNorm) front ends; the featurizer,
the predictor and token extraction cut and batch by it."""

import csv
import os
import shutil

import numpy as np
import pytest
import torch
from downstream_helpers import DOWNSTREAM, train_argv

from distilmos.data.batching import STRICT_MAX_PAD
from distilmos.models.ssl_mos import SSLMOSModel
from distilmos.predictor.pipeline import FeatureSelector, PredictorPipeline
from distilmos.predictor.predictor import Predictor
from distilmos.upstream import padding_exact
from distilmos.upstream.build import build_upstream
from distilmos.upstream.tiny import ARCHS, FRONTENDS, build_checkpoint, write_checkpoint

# 1 s and lengths padded by 0-60 % of it in a batch
LENGTHS = [16000, 15000, 12345, 10000, 8321, 6400]
TOL = 1e-5


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frontends")
    return {
        (arch, fe): write_checkpoint(str(folder / f"{arch}_{fe}.pt"), arch, "tiny", 0, None, fe)
        for arch in ARCHS
        for fe in FRONTENDS
    }


def waves(lengths=LENGTHS, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [0.1 * torch.randn(n, generator=generator) for n in lengths]


def largest_gap(upstream, wavs):
    """Largest difference over every valid frame of every layer between the batch and each one alone."""
    with torch.no_grad():
        batched = upstream(wavs)["hidden_states"]
        worst = 0.0
        for i, wav in enumerate(wavs):
            alone = upstream([wav])["hidden_states"]
            frames = alone[0].shape[1]
            worst = max(worst, max((a[0] - b[i, :frames]).abs().max().item() for a, b in zip(alone, batched)))
    return worst


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("arch", ARCHS)
def test_batched_hidden_states_equal_one_by_one(ckpts, arch, frontend):
    upstream = build_upstream(f"{arch}_local", ckpts[arch, frontend]).eval()
    assert padding_exact.is_padding_exact(upstream)
    wavs = waves()
    assert largest_gap(upstream, wavs) <= TOL
    with torch.no_grad():
        alone = [upstream([w])["hidden_states"][-1].shape[1] for w in wavs]
    assert padding_exact.frame_counts(upstream, LENGTHS) == alone


@pytest.mark.parametrize("arch", ARCHS)
def test_plain_forward_depends_on_padding(ckpts, arch):
    """What the patch fixes: s3prl's own forward of a Base front end moves valid frames with padding."""
    plain = build_upstream(f"{arch}_local", ckpts[arch, "group_norm"], exact=False).eval()
    assert not padding_exact.is_padding_exact(plain)
    assert largest_gap(plain, waves()) > 1e-2


def test_patch_keeps_weights_keys_and_is_idempotent(ckpts):
    plain = build_upstream("wavlm_local", ckpts["wavlm", "group_norm"], exact=False)
    state = {k: v.clone() for k, v in plain.state_dict().items()}
    assert padding_exact.make_padding_exact(plain) and padding_exact.make_padding_exact(plain)
    patched = plain.state_dict()
    assert list(patched) == list(state) and all(torch.equal(patched[k], state[k]) for k in state)
    norms = [m for m in plain.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 1 and isinstance(norms[0], padding_exact.MaskedGroupNorm)


def test_other_upstreams_are_left_as_they_are():
    class Custom(torch.nn.Module):
        def forward(self, wavs):
            return {"hidden_states": [torch.zeros(len(wavs), 3, 2)]}

        def get_downsample_rates(self, key):
            return 320

    custom = Custom()
    assert not padding_exact.make_padding_exact(custom)
    assert padding_exact.frame_counts(custom, [16000]) is None and "forward" not in vars(custom)


def test_frame_formula():
    base = ((10, 5),) + ((3, 2),) * 4 + ((2, 2),) * 2
    assert [padding_exact.frames_after(base, n) for n in (399, 400, 719, 720, 16000)] == [0, 1, 1, 2, 49]
    lengths = torch.tensor([399, 400, 16000])
    assert padding_exact.frames_after(base, lengths).tolist() == [0, 1, 49]


def test_masked_group_norm_ignores_padding():
    norm = torch.nn.GroupNorm(4, 4)
    torch.nn.init.normal_(norm.weight)
    masked = padding_exact.MaskedGroupNorm(norm)
    x = torch.randn(2, 4, 30)
    masked.lengths = torch.tensor([30, 17])
    out = masked(x)
    assert torch.allclose(out[1, :, :17], norm(x[1:, :, :17])[0], atol=1e-6)
    assert torch.allclose(out[0], norm(x[:1])[0], atol=1e-6) and out[1, :, 17:].abs().max() == 0
    masked.lengths = None
    assert torch.allclose(masked(x), norm(x), atol=1e-6)


def test_s3prl_featurizer_keeps_exact_counts(ckpts):
    from s3prl.upstream.interfaces import Featurizer

    upstream = build_upstream("wav2vec2_local", ckpts["wav2vec2", "group_norm"]).eval()
    featurizer = Featurizer(upstream=upstream, upstream_device="cpu")
    assert padding_exact.cut_featurizer(featurizer, upstream)
    wavs = waves()
    with torch.no_grad():
        features = featurizer(wavs, upstream(wavs))
    assert [len(f) for f in features] == padding_exact.frame_counts(upstream, LENGTHS)
    assert [round(n / 320) for n in LENGTHS] != [len(f) for f in features]  # s3prl's own rule differs


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("arch", ARCHS)
def test_predictor_batch_16_equals_batch_1(ckpts, arch, frontend, tmp_path):
    """Scores of a predictor of either front end: batched without a padding cap, as one by one."""
    import soundfile as sf

    upstream = build_upstream(f"{arch}_local", ckpts[arch, frontend])
    torch.manual_seed(0)
    selector = FeatureSelector(n_layers=4, output_dim=64)
    with torch.no_grad():
        selector.weights.copy_(torch.randn(4))
    pipeline = PredictorPipeline(upstream, selector, SSLMOSModel(upstream_dim=64)).eval()
    paths = []
    for k, wav in enumerate(waves(LENGTHS * 3, seed=1)):
        paths.append(str(tmp_path / f"{k}.wav"))
        sf.write(paths[-1], wav.numpy(), 16000, subtype="FLOAT")
    batched = Predictor(pipeline, {}, device="cpu", batch_size=16)
    assert batched.max_pad is None
    alone = Predictor(pipeline, {}, device="cpu", batch_size=1)
    np.testing.assert_allclose(batched.predict(paths=paths), alone.predict(paths=paths), atol=TOL, rtol=0)


@pytest.fixture(scope="module")
def token_corpus(tmp_path_factory):
    from test_tokens import write_corpus

    return write_corpus(str(tmp_path_factory.mktemp("token_corpus")))


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("arch", ARCHS)
def test_token_dump_in_large_batches_equals_one_by_one(ckpts, token_corpus, arch, frontend, tmp_path):
    from upstream_tokens.dump import dump_split
    from upstream_tokens.extract import Batching, read_list
    from upstream_tokens.fit import fit_store
    from upstream_tokens.store import TokenStore

    corpus = token_corpus
    ckpt = ckpts[arch, frontend]
    store = str(tmp_path / "store")
    fit_store(
        corpus,
        f"{arch}_local",
        ckpt,
        store,
        n_clusters=8,
        batch_size=16,
        seed=0,
        progress=False,
        batching=Batching(max_batch_seconds=100.0, max_batch_utts=64),
    )
    assert TokenStore(store).meta["padding_exact"] is True
    assert TokenStore(store).meta["fit_batching"]["max_pad"] is None  # auto: no cap for a padding-exact upstream
    one_by_one = str(tmp_path / "one_by_one")
    shutil.copytree(store, one_by_one)
    dump_split(corpus, store, "val", batching=Batching(max_batch_seconds=100.0, max_batch_utts=64), progress=False)
    dump_split(corpus, one_by_one, "val", batching=Batching(max_batch_utts=1), progress=False)
    a, b = TokenStore(store), TokenStore(one_by_one)
    utterances, lengths = read_list(corpus)
    assert a.summary["dump"]["val"]["n_batches"] == 1 and min(lengths) < 0.4 * max(lengths)  # > 60 % padding
    assert b.summary["dump"]["val"]["n_batches"] == len(utterances)
    assert all(torch.equal(a.tokens(u.sample_id), b.tokens(u.sample_id)) for u in utterances)


def test_tiny_upstream_frontends():
    for frontend, mode in (("group_norm", "default"), ("layer_norm", "layer_norm")):
        cfg = build_checkpoint("wavlm", "tiny", frontend=frontend)["cfg"]
        assert cfg["extractor_mode"] == mode and cfg["layer_norm_first"] == (frontend == "layer_norm")
    with pytest.raises(ValueError, match="unknown frontend"):
        build_checkpoint("hubert", "tiny", frontend="batch_norm")
    assert STRICT_MAX_PAD == 0.02


# ---- `run_downstream.py -m evaluate` and `distilmos-predict score`: batch 16 as batch 1 -----------------

# a test split padded by 0-60 % in one batch of 16
EVAL_LENGTHS = [16000, 15100, 14000, 13000, 12345, 11500, 10700, 10000, 9200, 8321, 7300, 6400]


def write_split(folder, split, lengths, seed):
    """``<folder>/<split>.csv`` (three systems) and its noise wavs under ``<folder>/wav``."""
    import soundfile as sf

    os.makedirs(os.path.join(folder, "wav"), exist_ok=True)
    rows = ["sample_id,system_id,wav_path,score"]
    for k, wav in enumerate(waves(lengths, seed)):
        name = f"{split}{k:02d}"
        sf.write(os.path.join(folder, "wav", f"{name}.wav"), wav.numpy(), 16000, subtype="FLOAT")
        rows.append(f"{name},sys{k % 3},wav/{name}.wav,{1 + (7 * k + seed) % 5}")
    with open(os.path.join(folder, f"{split}.csv"), "w") as handle:
        handle.write("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("exact_data"))
    write_split(folder, "train", LENGTHS + LENGTHS[:2], 1)
    write_split(folder, "val", LENGTHS[:4], 2)
    write_split(folder, "test", EVAL_LENGTHS, 3)
    return folder


@pytest.fixture(scope="module")
def trained(ckpts, data_dir, tmp_path_factory):
    """``{arch: checkpoint}``: DistilMOS without tokens (weighted sum of every hidden state, frozen upstream)
    trained 2 steps on the GroupNorm upstream. Its featurizer and downstream fit the LayerNorm upstream of
    the same architecture too (same layers and dims), so one run serves both front ends."""
    from distilmos.train.runner import run

    out = {}
    for arch in ARCHS:
        expdir = str(tmp_path_factory.mktemp(f"exact_{arch}"))
        overrides = {
            "config.downstream_expert.datarc.data_dir": data_dir,
            "config.downstream_expert.datarc.num_workers": 0,
            "config.downstream_expert.datarc.train_batch_size": 4,
            "config.runner.total_steps": 2,
            "config.runner.log_step": 2,
        }
        upstream, ckpt = f"{arch}_local", ckpts[arch, "group_norm"]
        argv = train_argv(ckpt, expdir, "distilmos", "-v", "no_token", overrides=overrides, upstream=upstream)
        run([DOWNSTREAM], argv)
        out[arch] = os.path.join(expdir, "states-2.ckpt")
    return out


@pytest.fixture
def eval_batches(monkeypatch):
    """The padding cap and the batches of each evaluation loader the experts build."""
    from distilmos.train import expert_base

    seen, real = [], expert_base.eval_loader

    def spy(dataset, batch_size, max_seconds, num_workers, max_pad=None):
        loader = real(dataset, batch_size, max_seconds, num_workers, max_pad)
        seen.append((max_pad, [[dataset.utterances[i].num_samples for i in b] for b in loader.batch_sampler]))
        return loader

    monkeypatch.setattr(expert_base, "eval_loader", spy)
    return seen


def evaluate(checkpoint, batch_size, *overrides):
    """``-m evaluate -t test`` predictions ``{sample_id: pred}``."""
    from distilmos.train.runner import run

    run(
        [DOWNSTREAM],
        [
            "-m",
            "evaluate",
            "-e",
            checkpoint,
            "-t",
            "test",
            "--device",
            "cpu",
            "-o",
            ",,".join([f"config.downstream_expert.datarc.eval_batch_size={batch_size}", *overrides]),
        ],
    )
    with open(os.path.join(os.path.dirname(checkpoint), "predictions_test.csv")) as handle:
        return {row["sample_id"]: float(row["pred"]) for row in csv.DictReader(handle)}


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("arch", ARCHS)
def test_runner_evaluate_batch_16_equals_batch_1(trained, ckpts, eval_batches, arch, frontend):
    ckpt = f"args.upstream_ckpt={ckpts[arch, frontend]}"
    batched = evaluate(trained[arch], 16, ckpt)
    alone = evaluate(trained[arch], 1, ckpt)
    assert batched.keys() == alone.keys() and len(alone) == len(EVAL_LENGTHS)
    assert max(abs(batched[k] - alone[k]) for k in alone) <= TOL
    (cap, batches), (_, singles) = eval_batches
    assert cap is None and batches == [EVAL_LENGTHS]  # no cap: one batch, padded by up to 60 %
    assert len(singles) == len(EVAL_LENGTHS)


class PlainUpstream(torch.nn.Module):
    """A ``module:callable`` upstream (s3prl's own WavLM forward, wrapped): no padding-exact forward."""

    def __init__(self, ckpt):
        super().__init__()
        self.inner = build_upstream("wavlm_local", ckpt, exact=False)

    def forward(self, wavs):
        return self.inner(wavs)

    def get_downsample_rates(self, key):
        return self.inner.get_downsample_rates(key)


def plain_upstream(ckpt=None):
    return PlainUpstream(ckpt)


def test_runner_evaluate_keeps_the_cap_without_an_exact_forward(trained, ckpts, eval_batches, capsys):
    """An upstream without the exact forward: `auto` caps padding at 2 %, and the runner says so."""
    preds = evaluate(trained["wavlm"], 16, "args.upstream=test_padding_exact:plain_upstream")
    assert len(preds) == len(EVAL_LENGTHS)
    ((cap, batches),) = eval_batches
    assert cap == STRICT_MAX_PAD and all(b[0] - b[-1] <= STRICT_MAX_PAD * b[0] for b in batches)
    assert len(batches) > 1
    err = capsys.readouterr().err
    assert "no padding-exact forward" in err and "keep a 0.02 padding cap (datarc.eval_max_pad auto)" in err


def test_eval_max_pad_setting(tmp_path):
    from distilmos.errors import ConfigError
    from distilmos.train.expert_base import MOSExpert

    def cap(*value, exact=False):
        datarc = {"eval_max_pad": value[0]} if value else {}
        return MOSExpert(
            8, {"datarc": datarc}, str(tmp_path), upstream_padding_exact=exact, plugin_runner=True
        ).eval_max_pad()

    assert cap() == STRICT_MAX_PAD and cap(exact=True) is None  # auto by default
    assert cap("auto") == STRICT_MAX_PAD and cap("auto", exact=True) is None
    assert cap("none") is None and cap(None) is None and cap(0) == 0.0 and cap("0.1", exact=True) == 0.1
    for bad in ("lots", -0.1, True):
        with pytest.raises(ConfigError, match="eval_max_pad takes auto, none or a fraction"):
            cap(bad)


def test_cli_score_batch_16_equals_batch_1(trained, data_dir, tmp_path):
    """`distilmos-predict score --batch_size 16` (no cap, one batch) writes the scores of `--batch_size 1`."""
    from distilmos.predictor import export
    from distilmos.predictor.cli import main

    model = str(tmp_path / "model.pt")
    export(trained["hubert"], model)
    scores = {}
    for batch_size in (16, 1):
        out = str(tmp_path / f"scores{batch_size}.csv")
        assert (
            main(
                [
                    "score",
                    model,
                    os.path.join(data_dir, "test.csv"),
                    "-o",
                    out,
                    "--batch_size",
                    str(batch_size),
                    "--device",
                    "cpu",
                    "--quiet",
                ]
            )
            == 0
        )
        with open(out) as handle:
            scores[batch_size] = {row["wav_path"]: float(row["pred"]) for row in csv.DictReader(handle)}
    assert scores[16].keys() == scores[1].keys() and len(scores[1]) == len(EVAL_LENGTHS)
    assert max(abs(scores[16][k] - scores[1][k]) for k in scores[1]) <= TOL


def test_predictor_and_token_extraction_say_when_they_keep_the_cap(ckpts, capsys):
    from upstream_tokens.extract import Batching

    pipeline = PredictorPipeline(
        PlainUpstream(ckpts["wavlm", "group_norm"]),
        FeatureSelector(n_layers=4, output_dim=64),
        SSLMOSModel(upstream_dim=64),
    ).eval()
    assert Predictor(pipeline, {}, device="cpu").max_pad == STRICT_MAX_PAD
    assert Batching().resolved(False).max_pad == STRICT_MAX_PAD
    err = capsys.readouterr().err.splitlines()
    assert [line.split("]")[0] for line in err if "no padding-exact forward" in line] == [
        "[distilmos-predict",
        "[upstream_tokens",
    ]
    Predictor(pipeline, {}, device="cpu", max_pad=0.0)  # a cap asked for: nothing to explain
    assert Batching().resolved(True).max_pad is None
    assert "padding-exact" not in capsys.readouterr().err
