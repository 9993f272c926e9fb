"""Utterance embeddings (one vector per utterance: x-vector-style speaker embeddings) as s3prl-style upstreams.

SALF-MOS's Table III also trains its head on X-vectors. The toolkit's reading of how the head consumes one
vector per utterance: **as a sequence of one frame**. The upstream's ``hidden_states`` are
``[batch, 1, dim]``; SALF-MOS's convolutions run along the feature axis of each frame (the reading of
:mod:`distilmos.models.salf_mos`), so the embedding's ``dim`` values are the one-channel signal its blocks
convolve, exactly as a wav2vec frame's 768 values are, and the mean over valid frames is the identity. Any
other head gets the same one-frame sequence. (Repeating the vector once per 10 ms would give the same
prediction in eval mode but weigh each utterance by its duration in the training-time BatchNorm statistics.)

The one frame is declared as a "front end" whose stride is longer than any utterance
(``padding_exact_convs = ((1, ONE_FRAME),)``: ``(samples - 1) // ONE_FRAME + 1`` = 1 frame for any
non-empty waveform), so the runner's featurizer and the predictor keep exactly one frame per utterance.
There are no frames to cluster or cache: token extraction and the feature cache refuse such an upstream.

Two ways in:

- ``-u utterance_embedding -k package.module:factory``: ``factory()`` is called once and returns the
  embedder, ``embedder(wav) -> vector``: a 1-D 16 kHz float32 waveform in, a 1-D tensor (or array) of a
  fixed size out. An ``nn.Module`` embedder moves with the upstream and its weights go into checkpoints
  and predictor files.
- ``-u ge2e_dvector``: Resemblyzer's pretrained GE2E speaker encoder (:mod:`.ge2e`), an optional extra.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn

from ..errors import ToolkitError
from .callable_spec import import_callable

#: the stride of the one-frame "front end": longer than any utterance (37 hours at 16 kHz)
ONE_FRAME = 2**31


class EmbeddingError(ToolkitError, ValueError):
    """An embedder that cannot be loaded or gives no usable vector; the message names it and the fix."""


class UtteranceEmbeddingUpstream(nn.Module):
    """``forward(wavs) -> {"hidden_states": [x], "last_hidden_state": x}``, ``x [batch, 1, dim]``: each
    waveform's embedding as a one-frame sequence (see the module docstring)."""

    padding_exact_convs = ((1, ONE_FRAME),)

    def __init__(self, embedder: Callable[[torch.Tensor], object], name: str = "embedder"):
        super().__init__()
        if not callable(embedder):
            raise EmbeddingError(
                f"{name}: the factory returned {type(embedder).__name__}, which is not callable; "
                "it must return embedder(wav) -> vector"
            )
        self.embedder = embedder  # registered as a submodule when it is an nn.Module
        self.name = name

    def get_downsample_rates(self, key: str = "hidden_states") -> int:
        return ONE_FRAME

    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        """The embedding of one waveform, a 1-D float32 tensor on the waveform's device."""
        out = self.embedder(wav)
        vector = out if torch.is_tensor(out) else torch.as_tensor(np.asarray(out))
        if vector.dim() != 1 or vector.numel() == 0:
            raise EmbeddingError(
                f"{self.name}: returned shape {tuple(vector.shape)} for one waveform; an utterance "
                "embedding is one 1-D vector per waveform"
            )
        if not torch.isfinite(vector).all():
            raise EmbeddingError(
                f"{self.name}: returned a non-finite value (NaN or inf) for a waveform of {wav.numel()} samples"
            )
        return vector.to(device=wav.device, dtype=torch.float32)

    def forward(self, wavs: list[torch.Tensor]):
        vectors = [self.embed(w) for w in wavs]
        sizes = {v.numel() for v in vectors}
        if len(sizes) != 1:
            raise EmbeddingError(f"{self.name}: embeddings of different sizes {sorted(sizes)} in one batch")
        x = torch.stack(vectors).unsqueeze(1)
        return {"hidden_states": [x], "last_hidden_state": x}


def load_factory(spec: str) -> Callable[[], object]:
    """The callable ``package.module:factory`` names, or an :class:`EmbeddingError` that says what to give."""
    if not spec or ":" not in spec:
        raise EmbeddingError(
            f"upstream 'utterance_embedding' needs -k package.module:factory (the embedder's factory), got {spec!r}"
        )
    return import_callable(spec, "utterance embedding", EmbeddingError)


def utterance_embedding(ckpt=None, model_config=None, refresh=False, **kwargs) -> UtteranceEmbeddingUpstream:
    """Any utterance embedding: ``ckpt`` is ``package.module:factory`` (see the module docstring)."""
    return UtteranceEmbeddingUpstream(load_factory(ckpt)(), name=f"utterance embedding {ckpt!r}")


class RandomEmbedder(nn.Module):
    """A seeded random utterance embedding for tests and offline demos: the log power spectrum (25 ms frames
    every 10 ms) averaged over the utterance, through a random ``Linear(201 -> dim)`` and ``tanh``."""

    def __init__(self, dim: int = 32, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.proj = nn.Linear(201, dim)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(dim, 201, generator=generator) / 201**0.5)
            self.proj.bias.copy_(torch.randn(dim, generator=generator) * 0.1)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        wav = wav.float()
        if wav.numel() < 400:
            wav = nn.functional.pad(wav, (0, 400 - wav.numel()))
        frames = wav.unfold(0, 400, 160) * torch.hann_window(400, device=wav.device)
        power = torch.fft.rfft(frames).abs().pow(2).mean(dim=0)
        return torch.tanh(self.proj(torch.log(power + 1e-6)))


def random_embedder(dim: int = 32, seed: int = 0) -> RandomEmbedder:
    """The factory of :class:`RandomEmbedder`:
    ``-u utterance_embedding -k distilmos.upstream.utterance:random_embedder``."""
    return RandomEmbedder(dim, seed)
