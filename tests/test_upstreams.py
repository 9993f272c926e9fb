import hashlib
import sys
import textwrap

import pytest
import torch

from distilmos.upstream.build import UpstreamSpecError, build_upstream, resolve_upstream
from distilmos.upstream.tiny import write_checkpoint


def _frames(n_samples):
    """Frames of the 320-sample conv front end (kernels 10,3,3,3,3,2,2; strides 5,2,2,2,2,2,2)."""
    n = n_samples
    for kernel, stride in [(10, 5)] + [(3, 2)] * 4 + [(2, 2)] * 2:
        n = (n - kernel) // stride + 1
    return n


@pytest.mark.parametrize("arch", ["wavlm", "hubert", "wav2vec2"])
def test_tiny_checkpoint_loads_through_s3prl_hub(tiny_ckpts, arch):
    upstream = build_upstream(f"{arch}_local", ckpt=tiny_ckpts[arch]).eval()
    wavs = [torch.randn(16000), torch.randn(8000)]
    with torch.no_grad():
        hidden = upstream(wavs)["hidden_states"]
    assert len(hidden) == 3 + 1  # pre-transformer features + 3 transformer layers
    for h in hidden:
        assert h.shape == (2, _frames(16000), 64)
    assert upstream.get_downsample_rates("hidden_states") == 320


def test_base_size_has_base_architecture(tmp_path):
    from distilmos.upstream.tiny import build_checkpoint

    ckpt = build_checkpoint("wavlm", "base")
    n_params = sum(v.numel() for v in ckpt["model"].values())
    assert 90e6 < n_params < 100e6  # WavLM Base: 94.7M parameters
    assert ckpt["cfg"]["encoder_layers"] == 12 and ckpt["cfg"]["encoder_embed_dim"] == 768


def test_tiny_checkpoints_are_seeded(tmp_path):
    digest = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()  # noqa: E731
    a = write_checkpoint(str(tmp_path / "a.pt"), "hubert", seed=3)
    b = write_checkpoint(str(tmp_path / "b.pt"), "hubert", seed=3)
    c = write_checkpoint(str(tmp_path / "c.pt"), "hubert", seed=4)
    assert torch.equal(
        torch.load(a)["model_weight"]["encoder.layers.0.fc1.weight"],
        torch.load(b)["model_weight"]["encoder.layers.0.fc1.weight"],
    )
    assert digest(a) != digest(c)


def test_user_callable_upstream(tmp_path, monkeypatch):
    (tmp_path / "my_upstreams.py").write_text(
        textwrap.dedent("""
        import torch

        class Frames(torch.nn.Module):
            def __init__(self, dim):
                super().__init__()
                self.proj = torch.nn.Linear(160, dim)

            def get_downsample_rates(self, key):
                return 160

            def forward(self, wavs):
                frames = [w[: len(w) // 160 * 160].view(-1, 160) for w in wavs]
                x = torch.nn.utils.rnn.pad_sequence(frames, batch_first=True)
                h1 = self.proj(x)
                return {"hidden_states": [h1, h1.tanh()]}

        def frames(ckpt=None, dim=8):
            return Frames(dim)

        def not_an_upstream():
            return object()
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_upstreams", None)
    upstream = build_upstream("my_upstreams:frames", ckpt="ignored")
    hidden = upstream([torch.randn(1600)])["hidden_states"]
    assert len(hidden) == 2 and hidden[0].shape == (1, 10, 8)
    with pytest.raises(UpstreamSpecError, match="not an s3prl-style upstream"):
        build_upstream("my_upstreams:not_an_upstream")
    with pytest.raises(UpstreamSpecError, match="no callable 'nope'"):
        resolve_upstream("my_upstreams:nope")
    with pytest.raises(UpstreamSpecError, match="cannot import module 'no_such_pkg.mod'"):
        resolve_upstream("no_such_pkg.mod:fn")


def test_unknown_name_lists_closest_names():
    with pytest.raises(UpstreamSpecError) as info:
        resolve_upstream("wavlm_lage")
    assert "wavlm_large" in str(info.value) and "module:callable" in str(info.value)


def test_local_upstream_needs_checkpoint(tmp_path):
    with pytest.raises(UpstreamSpecError, match="-k PATH"):
        build_upstream("wavlm_local", ckpt=str(tmp_path / "missing.pt"))


# ---- the toolkit's own upstreams: LFCC and utterance embeddings ------------------------------------------------


def test_lfcc_upstream_mirrors_the_mfcc_upstream():
    from distilmos.upstream.build import hub_names
    from distilmos.upstream.padding_exact import frame_counts

    assert "lfcc" in hub_names()
    lfcc, mfcc = build_upstream("lfcc").eval(), build_upstream("mfcc").eval()
    wavs = [torch.randn(16000), torch.randn(9123)]
    with torch.no_grad():
        ours, theirs = lfcc(wavs)["hidden_states"], mfcc(wavs)["hidden_states"]
    assert len(ours) == 1 and ours[0].shape[-1] == 39 == theirs[0].shape[-1]
    # the same framing as s3prl's mfcc (25 ms windows every 10 ms, whole windows only)
    assert frame_counts(lfcc, [16000, 9123]) == [98, 55] == [(n - 400) // 160 + 1 for n in (16000, 9123)]
    assert ours[0].shape[1] == theirs[0].shape[1] == 98
    assert lfcc.get_downsample_rates("hidden_states") == mfcc.get_downsample_rates("hidden_states") == 160
    # per-utterance CMVN over the utterance's own frames
    torch.testing.assert_close(ours[0][0].mean(0), torch.zeros(39), atol=1e-4, rtol=0)
    torch.testing.assert_close(ours[0][0].std(0, unbiased=False), torch.ones(39), atol=1e-3, rtol=0)


def test_lfcc_features_do_not_depend_on_the_batch():
    lfcc = build_upstream("lfcc").eval()
    short, long = torch.randn(7000), torch.randn(20000)
    with torch.no_grad():
        alone = lfcc([short])["hidden_states"][0][0]
        batched = lfcc([long, short])["hidden_states"][0][1]
        silent, tiny = lfcc([torch.zeros(8000), torch.randn(399)])["hidden_states"][0]
    assert torch.equal(batched[: len(alone)], alone) and batched[len(alone) :].abs().sum() == 0
    assert torch.equal(silent, torch.zeros_like(silent))  # constant dimensions normalise to 0, never NaN
    assert torch.equal(tiny, torch.zeros_like(tiny))  # shorter than one window: no frame


def test_toolkit_upstreams_join_s3prl_hub():
    from s3prl import hub

    from distilmos.train.plugin import register_upstreams

    register_upstreams()
    assert {"lfcc", "utterance_embedding", "ge2e_dvector"} <= set(hub.options())
    assert hub.lfcc(ckpt=None, model_config=None, refresh=False).get_downsample_rates("hidden_states") == 160


@pytest.fixture
def embedders(tmp_path, monkeypatch):
    """A module ``my_embedders`` of embedder factories, good and bad."""
    (tmp_path / "my_embedders.py").write_text(
        textwrap.dedent("""
        import numpy as np
        import torch

        class Tiny(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.proj = torch.nn.Linear(2, 12)

            def forward(self, wav):
                return self.proj(torch.stack([wav.mean(), wav.std()]))

        def tiny():
            return Tiny()

        def as_numpy():
            return lambda wav: np.full(5, float(len(wav)), dtype=np.float64)

        def frames():
            return lambda wav: torch.zeros(3, 4)

        def nan():
            return lambda wav: torch.full((4,), float("nan"))

        def by_length():
            return lambda wav: torch.zeros(len(wav) // 1000)

        NOT_CALLABLE = 3

        def not_an_embedder():
            return 3
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_embedders", None)


def test_utterance_embedding_is_one_frame_per_utterance(embedders):
    from distilmos.upstream.padding_exact import frame_counts

    upstream = build_upstream("utterance_embedding", ckpt="my_embedders:tiny")
    wavs = [torch.randn(16000), torch.randn(3000)]
    out = upstream(wavs)
    assert out["hidden_states"][0].shape == (2, 1, 12)
    assert torch.allclose(out["hidden_states"][0][1, 0], upstream.embedder(wavs[1]))
    assert frame_counts(upstream, [16000, 3000, 10**8, 0]) == [1, 1, 1, 0]
    assert sum(p.numel() for p in upstream.parameters()) == 2 * 12 + 12  # the embedder's weights travel with it
    vectors = build_upstream("utterance_embedding", ckpt="my_embedders:as_numpy")([torch.randn(800)])
    assert vectors["last_hidden_state"].dtype == torch.float32 and vectors["last_hidden_state"][0, 0, 0] == 800


@pytest.mark.parametrize(
    "ckpt,message",
    [
        (None, "needs -k package.module:factory"),
        ("my_embedders:nope", "no callable 'nope'"),
        ("no_such_pkg.mod:fn", "cannot import module 'no_such_pkg.mod'"),
        ("my_embedders:not_an_embedder", "not callable"),
    ],
)
def test_utterance_embedding_spec_errors(embedders, ckpt, message):
    from distilmos.upstream.utterance import EmbeddingError

    with pytest.raises(EmbeddingError, match=message):
        build_upstream("utterance_embedding", ckpt=ckpt)


@pytest.mark.parametrize(
    "factory,message",
    [("frames", r"shape \(3, 4\).*one 1-D vector"), ("nan", "non-finite"), ("by_length", "different sizes")],
)
def test_utterance_embedding_output_errors(embedders, factory, message):
    from distilmos.upstream.utterance import EmbeddingError

    upstream = build_upstream("utterance_embedding", ckpt=f"my_embedders:{factory}")
    with pytest.raises(EmbeddingError, match=message):
        upstream([torch.randn(4000), torch.randn(2000)])


def test_token_extraction_refuses_an_utterance_embedding(embedders):
    from upstream_tokens.extract import FeatureExtractor, TokenExtractionError

    with pytest.raises(TokenExtractionError, match="one vector per utterance.*without --feature_cache"):
        FeatureExtractor(build_upstream("utterance_embedding", ckpt="my_embedders:tiny"))


def test_ge2e_dvector_without_resemblyzer_says_how_to_install(monkeypatch):
    from distilmos.upstream.utterance import EmbeddingError

    monkeypatch.setitem(sys.modules, "resemblyzer", None)  # import resemblyzer -> ImportError
    with pytest.raises(EmbeddingError, match=r"needs the resemblyzer package.*pip install '\.\[speaker_embedding\]'"):
        build_upstream("ge2e_dvector")


def test_ge2e_dvector_follows_resemblyzers_recipe(monkeypatch):
    """The adaptor on a stand-in of Resemblyzer's API: its preprocessing, partial utterances averaged and
    L2-normalised, silence kept finite."""
    import types

    import numpy as np

    calls = []

    class VoiceEncoder(torch.nn.Module):
        def __init__(self, device=None, verbose=True):
            super().__init__()
            self.linear = torch.nn.Linear(4, 3)

        @staticmethod
        def compute_partial_slices(n_samples, rate, min_coverage):
            calls.append(("slices", n_samples, rate, min_coverage))
            n = max(1, n_samples // 1600)
            return [slice(i * 1600, (i + 1) * 1600) for i in range(n)], [slice(i * 10, (i + 1) * 10) for i in range(n)]

        def forward(self, mels):
            raw = torch.relu(self.linear(mels.mean(1)))
            return raw / raw.norm(dim=1, keepdim=True)  # NaN for an all-zero row, as Resemblyzer's

    def preprocess_wav(wav):
        calls.append(("preprocess", len(wav)))
        return wav[: len(wav) // 2]

    def wav_to_mel_spectrogram(wav):
        return np.abs(wav[: len(wav) // 160 * 160].reshape(-1, 160)[:, :4]).astype(np.float32)

    fake = types.ModuleType("resemblyzer")
    fake.VoiceEncoder = VoiceEncoder
    fake.audio = types.SimpleNamespace(preprocess_wav=preprocess_wav, wav_to_mel_spectrogram=wav_to_mel_spectrogram)
    monkeypatch.setitem(sys.modules, "resemblyzer", fake)
    upstream = build_upstream("ge2e_dvector")
    x = upstream([torch.randn(16000), torch.zeros(8000)])["hidden_states"][0]
    assert x.shape == (2, 1, 3) and torch.isfinite(x).all()
    assert torch.allclose(x[0, 0].norm(), torch.tensor(1.0))
    assert calls[:2] == [("preprocess", 16000), ("slices", 8000, 1.3, 0.75)]  # the trimmed waveform is embedded
    assert ("preprocess", 8000) not in calls  # a silent waveform skips the preprocessing that would NaN it


def test_ge2e_dvector_embeds_offline_with_resemblyzer():
    pytest.importorskip("resemblyzer")
    upstream = build_upstream("ge2e_dvector").eval()
    t = torch.arange(32000) / 16000
    voiced = 0.1 * torch.sin(2 * torch.pi * 140 * t) * (1 + torch.sin(2 * torch.pi * 3 * t))
    with torch.no_grad():
        x = upstream([voiced, torch.zeros(16000)])["hidden_states"][0]
    assert x.shape == (2, 1, 256) and torch.isfinite(x).all()
    assert torch.allclose(x[0, 0].norm(), torch.tensor(1.0), atol=1e-4)
