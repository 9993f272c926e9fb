"""The DistilMOS head as the authors' released code builds it (github BaleYang/DistilMOS, ``model/predictor.py``
and ``model/modules.py``), for the checkpoints they publish (Hugging Face ``BaleYang/DistilMOS``).

Their code differs from the paper, and so from :class:`distilmos.models.distilmos_model.DistilMOSModel`:

1. the layers are weighed by 1.5-entmax, over the transformer layers 1..N only (not the front end's output),
   and the weighted sum goes through an output Linear(D->D) (``weighted_sum.out_proj``); the weighting is
   the predictor file's featurizer (``weighting: entmax15``, ``first_layer: 1``), the Linear is
   :attr:`DistilMOSAuthorsModel.out_proj`;
2. the projector is a 1x1 convolution (D->H) (``feature_processor.proj_in``);
3. each Feature Processor block is a depthwise-separable convolution (depthwise Conv1d with kernel k and
   stride s, no bias -> pointwise 1x1 Conv1d, no bias) -> BatchNorm -> GELU, and a LayerNorm follows
   the blocks;
4. the token predictors (training only, not kept here) are ReLU MLPs;
5. their batched forward lets padding move a score (see below).

The CNN-BLSTM decoder is the paper's (Conv1d k=3 -> BLSTM -> Linear -> GELU, + the Conv1d output ->
LayerNorm); its dropout is inactive at inference and its BatchNorm (``decoder.batch_norm``) is never used
by their forward, so neither is kept. The submodules carry the authors' names.

Padding: for an utterance alone this module computes what their forward computes. In a padded batch their
head does not: the projector's bias, and each block's BatchNorm and GELU, make padded frames non-zero,
and the depthwise convolutions and the decoder's convolution read them across each utterance's end.
Here padded frames are zeroed before every convolution and frame counts follow each convolution's
formula, so every utterance of a batch gets its score alone, whatever else is in the batch.

An inference model: BatchNorm runs on its running statistics (eval mode).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .masking import masked_mean, valid_mask


def _zero_padding(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``x [batch, channels, frames]`` with every frame from ``lengths[b]`` on set to zero."""
    return x * valid_mask(lengths, x.size(-1)).unsqueeze(1).to(x.dtype)


class SeparableBlock(nn.Module):
    """Depthwise Conv1d (kernel, stride, padding ``(kernel - 1) // 2``, no bias) -> pointwise Conv1d (no bias)
    -> BatchNorm1d -> GELU (the authors' ``DSBlock``)."""

    def __init__(self, in_dim: int, out_dim: int, kernel: int, stride: int):
        super().__init__()
        self.dw = nn.Conv1d(in_dim, in_dim, kernel, stride=stride, padding=(kernel - 1) // 2, groups=in_dim, bias=False)
        self.pw = nn.Conv1d(in_dim, out_dim, 1, bias=False)
        self.bn = nn.BatchNorm1d(out_dim)

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames the depthwise convolution gives an utterance of ``lengths`` frames alone."""
        (kernel,), (stride,), (padding,) = self.dw.kernel_size, self.dw.stride, self.dw.padding
        return (torch.div(lengths + 2 * padding - kernel, stride, rounding_mode="floor") + 1).clamp_min(0)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [batch, in_dim, frames]`` (padding zero) -> ``([batch, out_dim, frames'], lengths')``."""
        lengths = self.out_lengths(lengths)
        return _zero_padding(F.gelu(self.bn(self.pw(self.dw(x)))), lengths), lengths


class SeparableFeatureProcessor(nn.Module):
    """1x1 Conv1d projector (``proj_in``, to ``mid_dim``) -> :class:`SeparableBlock` s with ``dims[i]`` output
    channels -> LayerNorm (``ln``).

    The strides are no weight's shape, so they are kept as a buffer (``strides``): the state dict alone
    rebuilds the module (:meth:`DistilMOSAuthorsModel.kwargs_from_state`).
    """

    def __init__(self, in_dim: int, mid_dim: int, dims: list[int], kernels: list[int], strides: list[int]):
        super().__init__()
        if not len(dims) == len(kernels) == len(strides) or not dims:
            raise ValueError(f"need one channel count, kernel and stride per block, got {dims}, {kernels}, {strides}")
        self.proj_in = nn.Conv1d(in_dim, mid_dim, 1)
        ins = [mid_dim] + dims[:-1]
        self.blocks = nn.ModuleList(SeparableBlock(*args) for args in zip(ins, dims, kernels, strides))
        self.ln = nn.LayerNorm(dims[-1])
        self.register_buffer("strides", torch.tensor(strides, dtype=torch.long))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [batch, frames, in_dim]`` -> ``([batch, frames', dims[-1]], lengths')``."""
        h = _zero_padding(self.proj_in(x.transpose(1, 2)), lengths)
        for block in self.blocks:
            h, lengths = block(h, lengths)
        return self.ln(h.transpose(1, 2)), lengths


class CNNBLSTMDecoder(nn.Module):
    """Conv1d (k=3) -> BLSTM -> Linear -> GELU, + the Conv1d output -> LayerNorm (the authors' decoder)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.cnn = nn.Conv1d(dim, dim, 3, padding=1)
        self.bilstm = nn.LSTM(dim, hidden_dim, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(2 * hidden_dim, dim)
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``x [batch, frames, dim]`` -> ``[batch, frames, dim]`` (padded frames meaningless)."""
        conv = self.cnn(_zero_padding(x.transpose(1, 2), lengths)).transpose(1, 2)
        # an utterance shorter than one frame is run as one frame, as the authors' code does
        packed = pack_padded_sequence(conv, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.bilstm(packed)[0], batch_first=True, total_length=x.size(1))
        return self.layer_norm(F.gelu(self.linear(out)) + conv)


class DistilMOSAuthorsModel(nn.Module):
    """The inference path of the authors' head: entmax-weighted sum of layers 1..N (done by the featurizer)
    ``[batch, frames, upstream_dim]`` -> ``out_proj`` -> Feature Processor -> decoder -> frame Linear -> mean."""

    @staticmethod
    def kwargs_from_state(state: dict[str, torch.Tensor]) -> dict:
        """The constructor arguments that built the weights ``state`` (read off their shapes and ``strides``)."""
        dims, kernels = [], []
        while f"feature_processor.blocks.{len(dims)}.pw.weight" in state:
            i = len(dims)
            dims.append(int(state[f"feature_processor.blocks.{i}.pw.weight"].shape[0]))
            kernels.append(int(state[f"feature_processor.blocks.{i}.dw.weight"].shape[-1]))
        return {
            "upstream_dim": int(state["out_proj.weight"].shape[1]),
            "mid_dim": int(state["feature_processor.proj_in.weight"].shape[0]),
            "dims": dims,
            "kernels": kernels,
            "strides": [int(s) for s in state["feature_processor.strides"]],
            "lstm_dim": int(state["decoder.bilstm.weight_hh_l0"].shape[1]),
        }

    def __init__(
        self,
        upstream_dim: int,
        mid_dim: int = 256,
        dims: list[int] = (256, 256, 256),
        kernels: list[int] = (5, 3, 3),
        strides: list[int] = (1, 1, 1),
        lstm_dim: int = 256,
    ):
        super().__init__()
        dims, kernels, strides = list(dims), list(kernels), list(strides)
        self.out_proj = nn.Linear(upstream_dim, upstream_dim)
        self.feature_processor = SeparableFeatureProcessor(upstream_dim, mid_dim, dims, kernels, strides)
        self.decoder = CNNBLSTMDecoder(dims[-1], lstm_dim)
        self.linear = nn.Linear(dims[-1], 1)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return ``pred`` [batch], the Feature Processor output ``processed`` [batch, frames', hidden] and
        its frame ``mask``."""
        processed, lengths = self.feature_processor(self.out_proj(features), lengths)
        mask = valid_mask(lengths, processed.size(1))
        frames = self.linear(self.decoder(processed, lengths))
        return {"pred": masked_mean(frames, mask).squeeze(-1), "processed": processed, "mask": mask}
