"""The compact student of the distillation recipe (``egs/compress``): waveform -> MOS with no SSL upstream.

After Stahl & Gamper (2025) and their ``distillmos`` package (read for its shapes; this is our own code):

1. compressed complex STFT: ``X -> |X|^c * X / |X|`` (c = 0.3), real and imaginary parts as two input
   channels; 512-point Hann window, 10 ms hop, no centring, so a frame only ever covers its own
   utterance's samples;
2. a 2-D conv stack over (frequency, time): Conv2d 3x3 (stride 2 along frequency, 1 along time) ->
   BatchNorm2d -> GELU per block; the frequency axis is then flattened into a linear projection;
3. a small pre-LN transformer encoder over frames (no positional encoding: the convolutions give each
   frame its local context, and quality is judged over the whole clip);
4. attention pooling over valid frames (one learned score per frame, softmax) -> Linear -> MOS.

The model sits where every expert's model sits (``forward(features, lengths) -> {"pred"}``): its
"features" are the 16 kHz waveform itself, ``[batch, samples, 1]`` with valid sample counts, which the
predictor file's ``waveform`` upstream (:class:`distilmos.predictor.upstream.WaveformUpstream`) hands it.
Every frame beyond an utterance's own count is zeroed after each layer, left out of the BatchNorm batch
statistics (:class:`MaskedBatchNorm2d`: the convolution's bias makes padded positions non-zero before the
norm, and a 1 s clip padded by 2 s would otherwise shift a running variance by 0.02) and masked in
attention and pooling, so a padded batch gives each utterance its one-by-one score (to float rounding)
and trains with the statistics of its valid frames.

Sizes (:data:`SIZES`, parameter counts in :data:`PARAMETERS`) span more than two orders of magnitude.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .distilmos import MaskedBatchNorm1d

N_FFT = 512
HOP = 160
COMPRESS = 0.3

#: the student family: conv channels per block, transformer width, heads, layers, feed-forward width
SIZES: dict[str, dict] = {
    "xs": {"channels": (4, 8), "d_model": 16, "n_heads": 2, "n_layers": 1, "ffn_dim": 32},
    "s": {"channels": (8, 16, 16), "d_model": 48, "n_heads": 4, "n_layers": 2, "ffn_dim": 96},
    "m": {"channels": (16, 32, 32, 64), "d_model": 96, "n_heads": 4, "n_layers": 3, "ffn_dim": 192},
    "l": {"channels": (32, 64, 64, 128, 128), "d_model": 192, "n_heads": 8, "n_layers": 4, "ffn_dim": 384},
}

#: parameters of each size (checked by the tests; printed by ``python -m distilmos.models.student``)
PARAMETERS: dict[str, int] = {"xs": 11022, "s": 67226, "m": 362258, "l": 1688546}


def frame_counts(samples: torch.Tensor) -> torch.Tensor:
    """STFT frames of utterances of ``samples`` samples alone (one frame for a clip shorter than a window)."""
    return ((samples - N_FFT).clamp(min=0) // HOP + 1).long()


class MaskedBatchNorm2d(MaskedBatchNorm1d):
    """BatchNorm2d over ``x [batch, C, freq, frames]`` whose batch statistics use valid frames only
    (``valid [batch, frames]``); padded positions come out zero. The weights and buffers are those of
    :class:`torch.nn.BatchNorm2d`, so a state dict of either loads into the other."""

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:  # noqa: D102
        batch, channels, freq, frames = x.shape
        mask = valid[:, None, :].expand(batch, freq, frames).reshape(batch, freq * frames)
        return super().forward(x.reshape(batch, channels, freq * frames), mask).view_as(x)


class StudentMOSModel(nn.Module):
    """See the module docstring. ``forward(wavs [B, T] or [B, T, 1], lengths [B] in samples) -> {"pred"}``."""

    def __init__(self, channels: Sequence[int] = SIZES["s"]["channels"], d_model: int = 48, n_heads: int = 4,
                 n_layers: int = 2, ffn_dim: int = 96, dropout: float = 0.1):
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        self.d_model, self.n_heads, self.n_layers, self.ffn_dim = int(d_model), int(n_heads), int(n_layers), int(ffn_dim)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
        # the head count is in no weight's shape: kept as a buffer so a state dict rebuilds the model alone
        self.register_buffer("heads", torch.tensor(self.n_heads))
        blocks, freq, c_in = [], N_FFT // 2 + 1, 2
        for c_out in self.channels:
            blocks.append(nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=(2, 1), padding=1),
                                        MaskedBatchNorm2d(c_out), nn.GELU()))
            freq, c_in = (freq - 1) // 2 + 1, c_out
        self.convs = nn.ModuleList(blocks)
        self.proj = nn.Linear(c_in * freq, self.d_model)
        layer = nn.TransformerEncoderLayer(self.d_model, self.n_heads, self.ffn_dim, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, self.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(self.d_model)
        self.pool_score = nn.Linear(self.d_model, 1)
        self.head = nn.Linear(self.d_model, 1)
        nn.init.constant_(self.head.bias, 3.0)  # start at mid-scale MOS: early steps learn ranking, not offset

    @staticmethod
    def kwargs_from_state(state: dict[str, torch.Tensor]) -> dict:
        """Constructor arguments that built ``state`` (read off the weights' shapes)."""
        channels = []
        while f"convs.{len(channels)}.0.weight" in state:
            channels.append(int(state[f"convs.{len(channels)}.0.weight"].shape[0]))
        n_layers = len({k.split(".")[2] for k in state if k.startswith("encoder.layers.")})
        d_model = int(state["proj.weight"].shape[0])
        return {"channels": channels, "d_model": d_model, "n_heads": int(state["heads"]), "n_layers": n_layers,
                "ffn_dim": int(state["encoder.layers.0.linear1.weight"].shape[0])}

    def spectrum(self, wavs: torch.Tensor) -> torch.Tensor:
        """``[B, 2, freq, frames]``: the compressed complex STFT (real, imaginary)."""
        if wavs.size(1) < N_FFT:
            wavs = F.pad(wavs, (0, N_FFT - wavs.size(1)))
        spec = torch.stft(wavs, N_FFT, HOP, window=self.window, center=False, return_complex=True)
        magnitude = spec.abs().clamp_min(1e-8)
        spec = spec * magnitude.pow(COMPRESS - 1.0)
        return torch.stack([spec.real, spec.imag], dim=1)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        wavs = features.squeeze(-1) if features.dim() == 3 else features
        x = self.spectrum(wavs.float())
        counts = frame_counts(lengths.to(x.device))
        valid = torch.arange(x.size(-1), device=x.device)[None, :] < counts[:, None]  # [B, frames]
        x = x * valid[:, None, None, :].to(x.dtype)
        for conv, norm, act in self.convs:
            # the norm zeroes padded frames (GELU keeps them zero): the next 3x3 kernel must see zeros there
            x = act(norm(conv(x), valid))
        batch, channels, freq, frames = x.shape
        x = self.proj(x.permute(0, 3, 1, 2).reshape(batch, frames, channels * freq))
        x = self.encoder(x, src_key_padding_mask=~valid)
        x = self.norm(x)
        scores = self.pool_score(x).squeeze(-1).masked_fill(~valid, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        pooled = torch.einsum("bt,btd->bd", weights, x.masked_fill(~valid[..., None], 0.0))
        return {"pred": self.head(pooled).squeeze(-1), "frames": counts}


def build(size: str, **overrides) -> StudentMOSModel:
    """A student of a named size (:data:`SIZES`), with any constructor argument overridden."""
    if size not in SIZES:
        raise ValueError(f"unknown student size {size!r}; choose from {', '.join(SIZES)}")
    return StudentMOSModel(**dict(SIZES[size], **overrides))


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


if __name__ == "__main__":
    for name in SIZES:
        print(f"{name}\t{count_parameters(build(name))}")
