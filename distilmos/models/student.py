"""The compact student of the distillation recipe (``egs/compress``): waveform -> MOS with no SSL upstream.

After Stahl & Gamper (2025) and their ``distillmos`` package (read for its shapes; this is our own code):

1. compressed complex STFT: ``X -> |X|^c * X / |X|`` (c = 0.3), real and imaginary parts as two input
   channels; Hann window of ``n_fft`` points (512 by default, 320 = 20 ms as in the released student),
   10 ms hop, no centring, so a frame only ever covers its own utterance's samples;
2. a 2-D conv stack over (frequency, time): Conv2d 3x3 (stride 2 along frequency, 1 along time) ->
   BatchNorm2d -> GELU per block; the frequency axis is then flattened into a linear projection;
3. a small pre-LN transformer encoder over frames (no positional encoding: the convolutions give each
   frame its local context, and quality is judged over the whole clip);
4. attention pooling over valid frames (one learned score per frame, softmax) -> Linear -> MOS.

The model sits where every expert's model sits (``forward(features, lengths) -> {"pred"}``): its
"features" are the 16 kHz waveform itself, ``[batch, samples, 1]`` with valid sample counts, which the
predictor file's ``waveform`` upstream (:class:`distilmos.predictor.upstream_entry.WaveformUpstream`) hands it.
Every frame beyond an utterance's own count is zeroed after each layer, left out of the BatchNorm batch
statistics (:class:`MaskedBatchNorm2d`: the convolution's bias makes padded positions non-zero before the
norm, and a 1 s clip padded by 2 s would otherwise shift a running variance by 0.02) and masked in
attention and pooling, so a padded batch gives each utterance its one-by-one score (to float rounding)
and trains with the statistics of its valid frames.

Optional framing of the released student (``segment`` > 0, the ``dmos`` size): a clip longer than
``segment`` samples is scored in windows of that length whose starts are spread evenly from its start to
its end at most ``segment_hop`` apart, and the windows' predictions are averaged; ``peak_normalise``
divides each window by its peak first (as the released student does: its level then carries no quality).
The released student zero-pads a shorter clip to the window length and sees the zeros; here a shorter
clip is one window of its own length (the padding is masked like any padding).

Sizes (:data:`SIZES`, parameter counts in :data:`PARAMETERS`) span more than two orders of magnitude;
``dmos`` is configured like the released Distill-MOS student (``distillmos`` 0.9.1: conv channels 64, 64,
128, 256, 256, 256, a 200-wide transformer of 7 layers and 8 heads, 20 ms window, 10 ms hop, peak-normalised
7.68 s windows 1 s apart at most): 4.13 M parameters as the released 4.13 M, its FFN 448 wide instead of
400 making up for our narrower projection (our convolutions pad the frequency axis, so 3 bins remain
where the released student's unpadded ones leave 4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .distilmos_model import MaskedBatchNorm1d

N_FFT = 512
HOP = 160
COMPRESS = 0.3
#: window length and largest hop of the released student's fixed-length windows (samples at 16 kHz)
SEGMENT, SEGMENT_HOP = 122880, 16000

#: the student family: conv channels per block, transformer width, heads, layers, feed-forward width (and,
#: for ``dmos``, the released student's framing)
SIZES: dict[str, dict] = {
    "xs": {"channels": (4, 8), "d_model": 16, "n_heads": 2, "n_layers": 1, "ffn_dim": 32},
    "s": {"channels": (8, 16, 16), "d_model": 48, "n_heads": 4, "n_layers": 2, "ffn_dim": 96},
    "m": {"channels": (16, 32, 32, 64), "d_model": 96, "n_heads": 4, "n_layers": 3, "ffn_dim": 192},
    "l": {"channels": (32, 64, 64, 128, 128), "d_model": 192, "n_heads": 8, "n_layers": 4, "ffn_dim": 384},
    "dmos": {
        "channels": (64, 64, 128, 256, 256, 256),
        "d_model": 200,
        "n_heads": 8,
        "n_layers": 7,
        "ffn_dim": 448,
        "n_fft": 320,
        "segment": SEGMENT,
        "segment_hop": SEGMENT_HOP,
        "peak_normalise": True,
    },
}

#: parameters of each size (checked by the tests; printed by ``python -m distilmos.models.student``)
PARAMETERS: dict[str, int] = {"xs": 11022, "s": 67226, "m": 362258, "l": 1688546, "dmos": 4134114}

#: (n_fft, hop, segment, segment_hop, peak_normalise) of a model whose state dict holds no ``framing``
DEFAULT_FRAMING = (N_FFT, HOP, 0, SEGMENT_HOP, False)


def frame_counts(samples: torch.Tensor, n_fft: int = N_FFT, hop: int = HOP) -> torch.Tensor:
    """STFT frames of utterances of ``samples`` samples alone (one frame for a clip shorter than a window)."""
    return ((samples - n_fft).clamp(min=0) // hop + 1).long()


def window_starts(length: int, segment: int, hop: int) -> list[int]:
    """Starts of the fixed-length windows of a clip of ``length`` samples: one at 0 when it fits, else
    evenly spread from 0 to ``length - segment``, at most ``hop`` apart (as the released student spreads them)."""
    over = length - segment
    if over <= 0:
        return [0]
    count = math.ceil(over / hop) + 1
    return [int(i / (count - 1) * over) for i in range(count)]


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

    def __init__(
        self,
        channels: Sequence[int] = SIZES["s"]["channels"],
        d_model: int = 48,
        n_heads: int = 4,
        n_layers: int = 2,
        ffn_dim: int = 96,
        dropout: float = 0.1,
        n_fft: int = N_FFT,
        hop: int = HOP,
        segment: int = 0,
        segment_hop: int = SEGMENT_HOP,
        peak_normalise: bool = False,
    ):
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        self.d_model, self.n_heads = int(d_model), int(n_heads)
        self.n_layers, self.ffn_dim = int(n_layers), int(ffn_dim)
        self.n_fft, self.hop, self.segment, self.segment_hop = int(n_fft), int(hop), int(segment), int(segment_hop)
        self.peak_normalise = bool(peak_normalise)
        if (self.segment and self.segment < self.n_fft) or self.segment_hop < 1:
            raise ValueError(
                f"student framing: segment {segment} must hold a window ({n_fft}) and segment_hop "
                f"{segment_hop} must be positive"
            )
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        # the head count is in no weight's shape: kept as a buffer so a state dict rebuilds the model alone
        self.register_buffer("heads", torch.tensor(self.n_heads))
        framing = (self.n_fft, self.hop, self.segment, self.segment_hop, self.peak_normalise)
        if framing != DEFAULT_FRAMING:  # so is the framing; absent (default) in the files of the first sizes
            self.register_buffer("framing", torch.tensor([int(v) for v in framing]))
        blocks, freq, c_in = [], self.n_fft // 2 + 1, 2
        for c_out in self.channels:
            blocks.append(
                nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=(2, 1), padding=1), MaskedBatchNorm2d(c_out), nn.GELU())
            )
            freq, c_in = (freq - 1) // 2 + 1, c_out
        self.convs = nn.ModuleList(blocks)
        self.proj = nn.Linear(c_in * freq, self.d_model)
        layer = nn.TransformerEncoderLayer(
            self.d_model, self.n_heads, self.ffn_dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
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
        kwargs = {
            "channels": channels,
            "d_model": d_model,
            "n_heads": int(state["heads"]),
            "n_layers": n_layers,
            "ffn_dim": int(state["encoder.layers.0.linear1.weight"].shape[0]),
        }
        if "framing" in state:
            n_fft, hop, segment, segment_hop, peak = (int(v) for v in state["framing"])
            kwargs.update(n_fft=n_fft, hop=hop, segment=segment, segment_hop=segment_hop, peak_normalise=bool(peak))
        return kwargs

    def spectrum(self, wavs: torch.Tensor) -> torch.Tensor:
        """``[B, 2, freq, frames]``: the compressed complex STFT (real, imaginary)."""
        if wavs.size(1) < self.n_fft:
            wavs = F.pad(wavs, (0, self.n_fft - wavs.size(1)))
        spec = torch.stft(wavs, self.n_fft, self.hop, window=self.window, center=False, return_complex=True)
        magnitude = spec.abs().clamp_min(1e-8)
        spec = spec * magnitude.pow(COMPRESS - 1.0)
        return torch.stack([spec.real, spec.imag], dim=1)

    def windows(self, wavs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(windows [N, samples], their lengths [N], their utterance [N])``: the fixed-length windows of
        every utterance (module docstring), or the utterances themselves when the model has no framing."""
        if not self.segment:
            return wavs, lengths, torch.arange(len(wavs), device=wavs.device)
        pieces, sizes, owner = [], [], []
        for index, length in enumerate(lengths.tolist()):
            for start in window_starts(int(length), self.segment, self.segment_hop):
                size = min(int(length), self.segment)
                pieces.append(wavs[index, start : start + size])
                sizes.append(size)
                owner.append(index)
        device = wavs.device
        return (
            nn.utils.rnn.pad_sequence(pieces, batch_first=True),
            torch.tensor(sizes, device=device),
            torch.tensor(owner, device=device),
        )

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        wavs = features.squeeze(-1) if features.dim() == 3 else features
        wavs, lengths = wavs.float(), lengths.to(wavs.device)
        pieces, sizes, owner = self.windows(wavs, lengths)
        if self.peak_normalise:
            valid = torch.arange(pieces.size(1), device=pieces.device)[None, :] < sizes[:, None]
            pieces = pieces / (pieces.abs().masked_fill(~valid, 0.0).amax(dim=1, keepdim=True) + 1e-8)
        pred, counts = self.score(pieces, sizes)
        if not self.segment:
            return {"pred": pred, "frames": counts}
        # the mean over each utterance's windows
        total = pred.new_zeros(len(wavs)).index_add_(0, owner, pred)
        n = pred.new_zeros(len(wavs)).index_add_(0, owner, torch.ones_like(pred))
        return {"pred": total / n, "frames": counts.new_zeros(len(wavs)).index_add_(0, owner, counts)}

    def score(self, wavs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pred [B], frame counts [B])`` of padded waveforms ``[B, samples]`` of ``lengths`` samples."""
        x = self.spectrum(wavs)
        counts = frame_counts(lengths, self.n_fft, self.hop)
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
        return self.head(pooled).squeeze(-1), counts


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
