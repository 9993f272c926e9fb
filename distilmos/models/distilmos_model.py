"""DistilMOS networks (Yang et al., ICASSP 2026, Sec. 2).

Inference path (:class:`DistilMOSModel`): projector Linear(D->256) -> Feature Processor (3 x [Linear ->
Conv1d -> BatchNorm -> GELU]) -> CNN-BLSTM (Conv1d -> BLSTM -> Linear -> GELU, + Conv1d output,
LayerNorm) -> frame Linear(256->1) -> mean over valid frames.

Training-only heads on the Feature Processor output: :class:`LayerHeads` (one 3-layer MLP per target
layer), classifying k-means tokens (DistilMOS) or regressing embeddings (the MSE-distillation ablation).

Every layer is padding-invariant: padded frames are zeroed before each convolution, excluded from the
BatchNorm statistics, packed away from the BLSTM and from the mean, so the same utterance gets the same
output (and loss) whatever else is in its batch.
"""

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .masking import masked_mean, valid_mask


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm over channels whose batch statistics use valid frames only (``x: [batch, C, frames]``)."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # noqa: D102
        m = mask.unsqueeze(1).to(x.dtype)
        if self.training:
            count = m.sum().clamp_min(1.0)
            mean = (x * m).sum((0, 2)) / count
            var = ((x - mean[None, :, None]) ** 2 * m).sum((0, 2)) / count
            with torch.no_grad():
                unbiased = var * count / (count - 1).clamp_min(1.0)
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
                self.num_batches_tracked += 1
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean[None, :, None]) * torch.rsqrt(var[None, :, None] + self.eps)
        return (y * self.weight[None, :, None] + self.bias[None, :, None]) * m


class ProcessorBlock(nn.Module):
    """Linear -> Conv1d (stride 1, same padding) -> BatchNorm1d -> GELU.

    The convolution has no bias by default: the BatchNorm after it subtracts any constant per channel, so
    a bias would change nothing but get a gradient of pure float noise, which Adam scales up to full-size
    steps (two runs whose inputs differ by float rounding then drift apart by ~1e-4 after a few steps).
    ``conv_bias=True`` rebuilds checkpoints that have one.
    """

    def __init__(self, dim: int, kernel: int, conv_bias: bool = False):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"Feature Processor kernels must be odd for same padding, got {kernel}")
        self.linear = nn.Linear(dim, dim)
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, bias=conv_bias)
        self.norm = MaskedBatchNorm1d(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # noqa: D102
        m = mask.unsqueeze(-1).to(x.dtype)
        h = self.conv((self.linear(x) * m).transpose(1, 2))
        return F.gelu(self.norm(h, mask)).transpose(1, 2) * m


class FeatureProcessor(nn.Module):
    """Stacked :class:`ProcessorBlock` s, one per kernel size."""

    def __init__(self, dim: int, kernels: Sequence[int], conv_bias: bool = False):
        super().__init__()
        self.blocks = nn.ModuleList(ProcessorBlock(dim, k, conv_bias) for k in kernels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # noqa: D102
        for block in self.blocks:
            x = block(x, mask)
        return x


class CNNBLSTM(nn.Module):
    """Conv1d -> BLSTM -> concat -> Linear -> GELU, + residual from the Conv1d output -> LayerNorm.

    The BLSTM has ``blstm_dim`` units per direction (``dim`` unless pruned)."""

    def __init__(self, dim: int, kernel: int = 3, blstm_dim: int | None = None):
        super().__init__()
        blstm_dim = dim if blstm_dim is None else blstm_dim
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)
        self.blstm = nn.LSTM(dim, blstm_dim, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(2 * blstm_dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # noqa: D102
        m = mask.unsqueeze(-1).to(x.dtype)
        conv = self.conv((x * m).transpose(1, 2)).transpose(1, 2) * m
        packed = pack_padded_sequence(conv, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.blstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        return self.norm(F.gelu(self.linear(out)) + conv) * m


class DistilMOSModel(nn.Module):
    """The inference path: featurizer output ``[batch, frames, upstream_dim]`` -> utterance MOS.

    ``blstm_dim``: BLSTM units per direction, ``hidden_dim`` when None (the paper's model; a structurally
    pruned head, :mod:`distilmos.compress.head`, has fewer)."""

    @staticmethod
    def kwargs_from_state(state: dict[str, torch.Tensor]) -> dict:
        """The constructor arguments that built the weights ``state`` (read off their shapes)."""
        hidden_dim, upstream_dim = state["projector.weight"].shape
        kernels: list[int] = []
        while f"feature_processor.blocks.{len(kernels)}.conv.weight" in state:
            kernels.append(int(state[f"feature_processor.blocks.{len(kernels)}.conv.weight"].shape[-1]))
        kwargs = {
            "upstream_dim": int(upstream_dim),
            "hidden_dim": int(hidden_dim),
            "kernels": kernels,
            "blstm_conv_kernel": int(state["cnn_blstm.conv.weight"].shape[-1]),
            "conv_bias": "feature_processor.blocks.0.conv.bias" in state,
        }
        blstm_dim = int(state["cnn_blstm.blstm.weight_hh_l0"].shape[1])
        if blstm_dim != hidden_dim:  # only a pruned head says it: the files of the paper's model stay as they were
            kwargs["blstm_dim"] = blstm_dim
        return kwargs

    def __init__(
        self,
        upstream_dim: int,
        hidden_dim: int = 256,
        kernels: Sequence[int] = (5, 3, 3),
        blstm_conv_kernel: int = 3,
        conv_bias: bool = False,
        blstm_dim: int | None = None,
    ):
        super().__init__()
        self.projector = nn.Linear(upstream_dim, hidden_dim)
        self.feature_processor = FeatureProcessor(hidden_dim, kernels, conv_bias)
        self.cnn_blstm = CNNBLSTM(hidden_dim, blstm_conv_kernel, blstm_dim)
        self.frame_head = nn.Linear(hidden_dim, 1)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return ``pred`` [batch], the Feature Processor output ``processed`` [batch, frames, hidden]
        (input of the training heads, and of the CCA analysis), the frame ``mask`` and the CNN-BLSTM output's
        mean over valid frames ``utterance`` [batch, hidden] (``pred`` is the frame head of it, as the head is
        linear; the uncertainty option reads it)."""
        mask = valid_mask(lengths, features.size(1))
        processed = self.feature_processor(self.projector(features), mask)
        hidden = self.cnn_blstm(processed, lengths, mask)
        frames = self.frame_head(hidden).squeeze(-1)
        return {
            "pred": masked_mean(frames.unsqueeze(-1), mask).squeeze(-1),
            "processed": processed,
            "mask": mask,
            "utterance": masked_mean(hidden, mask),
        }


class MLP(nn.Sequential):
    """``n_layers`` Linear layers with GELU between them: in -> hidden ... -> out."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, n_layers: int = 3):
        dims = [in_dim] + [hidden_dim] * (n_layers - 1) + [out_dim]
        layers: list[nn.Module] = []
        for i in range(n_layers):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < n_layers - 1:
                layers.append(nn.GELU())
        super().__init__(*layers)


class LayerHeads(nn.Module):
    """One MLP per target layer of the pretrained upstream; training only, never on the inference path."""

    def __init__(self, n_heads: int, in_dim: int, hidden_dim: int, out_dim: int, n_layers: int = 3):
        super().__init__()
        self.heads = nn.ModuleList(MLP(in_dim, hidden_dim, out_dim, n_layers) for _ in range(n_heads))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # noqa: D102
        return [head(x) for head in self.heads]
