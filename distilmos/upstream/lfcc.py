"""LFCC features as an s3prl-style upstream (``-u lfcc``), the counterpart of s3prl's ``mfcc``.

SALF-MOS's Table III trains its head on LFCC features without giving their settings. The toolkit's
reading mirrors s3prl's ``mfcc`` upstream (Kaldi MFCC through ``torchaudio.compliance.kaldi``, deltas,
per-utterance CMVN), with linear instead of mel filters (torchaudio's :class:`~torchaudio.transforms.LFCC`):

- 16 kHz input, frames of 25 ms (400 samples, a Hann window and a 400-point FFT) every 10 ms (160
  samples), only whole frames: ``(samples - 400) // 160 + 1`` frames, the count the ``mfcc`` upstream
  gives (Kaldi's ``snip_edges``);
- 23 linear triangular filters over 0-8 kHz (the number of mel bins of Kaldi's MFCC), natural log of the
  filter energies (``log_lf``), 13 cepstral coefficients (orthonormal DCT-II, the first one kept);
- first and second deltas (window 5, as the ``mfcc`` upstream): 39 dimensions;
- per-utterance mean and variance normalisation of every dimension over the utterance's frames (a
  dimension constant over the utterance, as in silence, becomes 0).

Kaldi's pre-emphasis, DC removal and dither are left out (torchaudio's LFCC has none of them); its cepstral
liftering would be undone by the per-dimension normalisation. Each utterance is computed alone, so a
batch's padding never changes its features: the upstream declares its framing (``padding_exact_convs``)
and the runner, the predictor and the feature cache cut each utterance at its exact frame count.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torchaudio
from torch.nn.utils.rnn import pad_sequence

from distilmos.data.audio import SAMPLE_RATE

WIN_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms
N_FILTER = 23
N_LFCC = 13
DELTA_ORDER = 2
DELTA_WIN = 5
CMVN_EPS = 1e-10  # s3prl's mfcc upstream's
# A dimension whose spread is within float rounding of its mean is constant (silence, one frame): it
# normalises to 0, where dividing the rounding noise by its own tiny std would give values of 10^4.
CONSTANT_RTOL = 1e-5


class LFCCUpstream(nn.Module):
    """``forward(wavs) -> {"hidden_states": [lfcc], "last_hidden_state": lfcc}``, ``lfcc [batch, frames, 39]``
    (see the module docstring for the settings)."""

    #: (kernel, stride) of the framing: :mod:`distilmos.upstream.padding_exact` counts each utterance's frames with it
    padding_exact_convs = ((WIN_LENGTH, HOP_LENGTH),)

    def __init__(
        self, n_filter: int = N_FILTER, n_lfcc: int = N_LFCC, delta_order: int = DELTA_ORDER, cmvn: bool = True
    ):
        super().__init__()
        self.lfcc = torchaudio.transforms.LFCC(
            sample_rate=SAMPLE_RATE,
            n_filter=n_filter,
            n_lfcc=n_lfcc,
            log_lf=True,
            speckwargs={"n_fft": WIN_LENGTH, "win_length": WIN_LENGTH, "hop_length": HOP_LENGTH, "center": False},
        )
        self.delta = torchaudio.transforms.ComputeDeltas(win_length=DELTA_WIN)
        self.delta_order = delta_order
        self.cmvn = cmvn
        self.output_dim = n_lfcc * (1 + delta_order)

    def get_downsample_rates(self, key: str = "hidden_states") -> int:
        return HOP_LENGTH

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """``[frames, output_dim]`` of one 16 kHz waveform (no frame when it is shorter than one window)."""
        if wav.numel() < WIN_LENGTH:
            return wav.new_zeros(0, self.output_dim)
        x = self.lfcc(wav.float())  # [n_lfcc, frames]
        stack = [x]
        for _ in range(self.delta_order):
            stack.append(self.delta(stack[-1]))
        x = torch.cat(stack, dim=0).transpose(0, 1)  # [frames, output_dim]
        if self.cmvn:
            mean = x.mean(dim=0, keepdim=True)
            std = x.std(dim=0, unbiased=False, keepdim=True)  # the population std: one frame gives 0, not NaN
            varies = std > CONSTANT_RTOL * (1 + mean.abs())
            x = torch.where(varies, (x - mean) / (CMVN_EPS + std), torch.zeros_like(x))
        return x

    def forward(self, wavs):
        padded = pad_sequence([self.features(w) for w in wavs], batch_first=True)
        return {"hidden_states": [padded], "last_hidden_state": padded}


def lfcc(ckpt=None, model_config=None, refresh=False, **kwargs) -> LFCCUpstream:
    """LFCC features (39-dim, 10 ms hop); no weights, so ``ckpt`` and ``model_config`` are not used."""
    return LFCCUpstream()
