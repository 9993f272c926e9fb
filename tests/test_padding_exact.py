"""The padding-exact upstream forward: a padded batch gives every utterance the frames it gets alone, for
WavLM, HuBERT and wav2vec 2.0 with the Base (GroupNorm) and Large (LayerNorm) front ends; the featurizer,
the predictor and token extraction cut and batch by it."""
import shutil

import numpy as np
import pytest
import torch

from distilmos import padding_exact
from distilmos.batching import STRICT_MAX_PAD
from distilmos.models.ssl_mos import SSLMOSModel
from distilmos.predictor.pipeline import FeatureSelector, PredictorPipeline
from distilmos.predictor.predictor import Predictor
from distilmos.tiny_upstream import ARCHS, FRONTENDS, build_checkpoint, write_checkpoint
from distilmos.upstreams import build_upstream

# 1 s and lengths padded by 0-60 % of it in a batch
LENGTHS = [16000, 15000, 12345, 10000, 8321, 6400]
TOL = 1e-5


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frontends")
    return {(arch, fe): write_checkpoint(str(folder / f"{arch}_{fe}.pt"), arch, "tiny", 0, None, fe)
            for arch in ARCHS for fe in FRONTENDS}


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


@pytest.mark.parametrize("arch", ARCHS)
def test_predictor_batch_16_equals_batch_1(ckpts, arch, tmp_path):
    """Scores of a Base-front-end predictor: batched without a padding cap, as one by one."""
    import soundfile as sf

    upstream = build_upstream(f"{arch}_local", ckpts[arch, "group_norm"])
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


def test_token_dump_in_large_batches_equals_one_by_one(ckpts, tmp_path):
    from upstream_tokens.dump import dump_split
    from upstream_tokens.extract import Batching, read_list
    from upstream_tokens.fit import fit_store
    from upstream_tokens.store import TokenStore

    from test_tokens import write_corpus

    corpus = write_corpus(str(tmp_path / "corpus"))
    ckpt = ckpts["wavlm", "group_norm"]
    store = str(tmp_path / "store")
    fit_store(corpus, "wavlm_local", ckpt, store, n_clusters=8, batch_size=16, seed=0, progress=False,
              batching=Batching(max_batch_seconds=100.0, max_batch_utts=64))
    assert TokenStore(store).meta["padding_exact"] is True
    assert TokenStore(store).meta["fit_batching"]["max_pad"] is None  # auto: no cap for WavLM
    one_by_one = str(tmp_path / "one_by_one")
    shutil.copytree(store, one_by_one)
    dump_split(corpus, store, "val", batching=Batching(max_batch_seconds=100.0, max_batch_utts=64), progress=False)
    dump_split(corpus, one_by_one, "val", batching=Batching(max_batch_utts=1), progress=False)
    a, b = TokenStore(store), TokenStore(one_by_one)
    utterances, _ = read_list(corpus)
    assert all(torch.equal(a.tokens(u.sample_id), b.tokens(u.sample_id)) for u in utterances)


def test_tiny_upstream_frontends():
    for frontend, mode in (("group_norm", "default"), ("layer_norm", "layer_norm")):
        cfg = build_checkpoint("wavlm", "tiny", frontend=frontend)["cfg"]
        assert cfg["extractor_mode"] == mode and cfg["layer_norm_first"] == (frontend == "layer_norm")
    with pytest.raises(ValueError, match="unknown frontend"):
        build_checkpoint("hubert", "tiny", frontend="batch_norm")
    assert STRICT_MAX_PAD == 0.02
