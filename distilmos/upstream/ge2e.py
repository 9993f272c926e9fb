"""Resemblyzer's pretrained GE2E speaker encoder as an utterance embedding (``-u ge2e_dvector``).

The paper's X-vector row needs a pretrained speaker-embedding network. Resemblyzer (``pip install
resemblyzer``, or this toolkit's extra: ``pip install '.[speaker_embedding]'``) ships its pretrained
weights inside its wheel (a 3-layer LSTM over 40 mel bands, 1.4 M parameters, the speaker encoder of the
Real-Time Voice Cloning project trained with the GE2E loss of Wan et al., 2018; Apache 2.0), so it runs
offline (speechbrain's x-vector, like the other pretrained x-vectors, downloads its weights from a model
hub at run time). It is a d-vector, not a TDNN x-vector: the toolkit's stand-in for the paper's X-vector
input, a 256-dim L2-normalised speaker embedding.

Each waveform is embedded as Resemblyzer documents it: its ``preprocess_wav`` (volume raised to -30 dBFS,
long silences trimmed by WebRTC VAD; skipped for a silent waveform, which it would turn into NaN, and
undone when the VAD keeps nothing), then ``embed_utterance``'s partial utterances (1.6 s windows, 1.3 per
second, 40 mel bands) averaged and L2-normalised. The network runs on the upstream's device; the mel
spectrogram (librosa) on the CPU. A waveform the encoder maps to the zero vector embeds to zeros.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from .utterance import EmbeddingError, UtteranceEmbeddingUpstream

INSTALL = "pip install '.[speaker_embedding]' in the toolkit's checkout (or pip install resemblyzer)"


def _resemblyzer():
    try:
        import resemblyzer
    except ImportError as exc:
        raise EmbeddingError(
            f"upstream 'ge2e_dvector' needs the resemblyzer package, which ships the pretrained "
            f"GE2E speaker encoder: {INSTALL} ({exc})"
        ) from exc
    return resemblyzer


class GE2EEmbedder(nn.Module):
    """``embedder(wav) -> [256]``: Resemblyzer's ``VoiceEncoder`` on one 16 kHz waveform."""

    def __init__(self):
        super().__init__()
        resemblyzer = _resemblyzer()
        self._audio = resemblyzer.audio
        self.encoder = resemblyzer.VoiceEncoder(device="cpu", verbose=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = wav.detach().float().cpu().numpy()
        if np.any(x):
            trimmed = self._audio.preprocess_wav(x)
            if len(trimmed):
                x = trimmed.astype(np.float32)
        wav_slices, mel_slices = self.encoder.compute_partial_slices(len(x), rate=1.3, min_coverage=0.75)
        x = np.pad(x, (0, max(0, wav_slices[-1].stop - len(x))))
        mel = self._audio.wav_to_mel_spectrogram(x)
        mels = torch.from_numpy(np.stack([mel[s] for s in mel_slices]))
        device = next(self.encoder.parameters()).device
        partial = torch.nan_to_num(self.encoder(mels.to(device)))  # an all-zero partial divides 0 by 0
        mean = partial.mean(dim=0)
        norm = mean.norm()
        return mean / norm if norm > 0 else mean


def ge2e_dvector(ckpt=None, model_config=None, refresh=False, **kwargs) -> UtteranceEmbeddingUpstream:
    """Resemblyzer's GE2E d-vector (256-dim), one frame per utterance; the weights come with the package."""
    return UtteranceEmbeddingUpstream(GE2EEmbedder(), name="ge2e_dvector")
