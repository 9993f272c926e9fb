import hashlib
import sys
import textwrap

import pytest
import torch

from distilmos.tiny_upstream import write_checkpoint
from distilmos.upstreams import UpstreamSpecError, build_upstream, resolve_upstream


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
    from distilmos.tiny_upstream import build_checkpoint

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
