"""SALF-MOS (Agrawal et al., 2025, arXiv 2506.02082): a 1,574-parameter MOS head on frozen SSL features.

The paper's words: four double-conv blocks (Conv1d k=3 s=1 p=1 -> BatchNorm -> ReLU, twice), three
downsampling layers (k=2, s=2) between them that "compress temporal resolution", a linear latent-feature
layer (LFE) after each block, the four LFE outputs stacked, a final Linear to the MOS; 1,574 parameters on
"wav2vec embeddings". It names no wav2vec version, and leaves open which axis the convolutions run over, the
channel widths, how an LFE is taken and where time is pooled. Everything below is **the toolkit's
reading**, not the paper's words:

- **The input: wav2vec 2.0 Base, 768 dimensions** (the paper's "wav2vec" read as wav2vec 2.0; its Base size
  because the count below then fits). ``egs/bvcc/local/salf_readings.py`` counts every combination of the
  open choices: at 768 dims exactly one lands on 1,574, the one implemented here. The uniqueness holds only
  for 768-dim input: at 512 dims (wav2vec 1.0's context vectors) another reading lands on 1,574 (doubling
  widths 1-2-4-8, k=2 s=2 convolutions as the downsamplings, BatchNorm without affine, a bias on the final
  Linear), and a time-axis reading on 1,575; at 1024 dims none does.
- **Downsampling along the feature axis, not time.** The paper speaks of temporal resolution, but no
  time-axis reading comes near 1,574 on 768-dim input (the fewest is 2,337), so here the downsamplings halve
  the feature axis of each frame and time is pooled once, at the end.
- **Conv axis: the feature axis.** Each frame's D-dim feature vector is a one-channel signal of length
  D. (Convolving over time with the D features as input channels needs D*3 = 2,304 weights for a single
  output channel of the first convolution alone: the fewest parameters of any time-axis reading is
  2,337.)
- **Widths: 2 channels in every block**, convolutions without bias (each is followed by a BatchNorm,
  whose shift makes a bias redundant, as in U-Net implementations), BatchNorm with its affine scale and
  shift.
- **Downsampling: max pooling, kernel 2, stride 2** (U-Net's encoder), no weights; the feature axis
  goes D -> D/2 -> D/4 -> D/8 (floor division).
- **LFE: one Linear(L_i -> 1) per block, shared by its 2 channels**, over that block's length L_i,
  giving 2 latent features per block; the four blocks' 8 values are stacked.
- **Time: frame-wise, then the mean over valid frames** of the stacked latent features, then
  **Linear(8 -> 1) without bias** (the LFE biases already give the output any offset). An utterance
  embedding (the paper's X-vector input: one vector per utterance) is a sequence of one frame
  (:mod:`distilmos.upstream.utterance`), whose values the blocks convolve like a wav2vec frame's.

Arithmetic for D = 768 (``python -m distilmos.models.salf_mos --count --upstream_dim 768``):

    block 1     conv 1->2 (2*1*3 = 6) + conv 2->2 (2*2*3 = 12) + 2 BatchNorms (2*2*2 = 8)   =   26
    blocks 2-4  conv 2->2 (12) + conv 2->2 (12) + 2 BatchNorms (8) = 32, three times         =   96
    LFE         Linear(768->1) 769 + Linear(384->1) 385 + Linear(192->1) 193 + Linear(96->1) 97 = 1,444
    head        Linear(8->1), no bias                                                        =    8
    total                                                                                     1,574

The nearest other readings: the same with a bias on the final Linear (1,575), and 8 channels whose LFEs
are a Linear(8 -> 2) on the channel means (1,576).

Padding: the convolutions run inside a frame, so only the frames of an utterance are ever mixed, by
the final mean. The valid frames are gathered out of the padded batch before the first layer, so padded
frames never reach a convolution or a BatchNorm: in training the batch statistics are those of the
valid frames only (running statistics kept as :class:`torch.nn.BatchNorm1d` keeps them), and in eval
mode an utterance gets the same prediction whatever its batch. Time is never downsampled (the
downsampling runs over the feature axis), so frame counts stay as given.
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from distilmos.errors import reports_errors

from .masking import valid_mask


class DoubleConv(nn.Sequential):
    """(Conv1d k=3 s=1 p=1, no bias -> BatchNorm1d -> ReLU) twice, over ``[frames, channels, length]``."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__(
            nn.Conv1d(in_channels, channels, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
        )


def lfe_lengths(upstream_dim: int, depth: int) -> list[int]:
    """The feature-axis length each block's LFE sees: ``upstream_dim`` halved (floor) after each block."""
    return [upstream_dim // 2**i for i in range(depth)]


class SALFMOSModel(nn.Module):
    """Frame-wise double-conv blocks over the feature axis -> stacked LFEs -> mean over valid frames ->
    Linear -> MOS (see the module docstring for the reading of the paper and its parameter count)."""

    @staticmethod
    def kwargs_from_state(state: dict[str, torch.Tensor]) -> dict:
        """The constructor arguments that built the weights ``state`` (read off their shapes)."""
        depth = 0
        while f"lfe.{depth}.weight" in state:
            depth += 1
        return {
            "upstream_dim": int(state["lfe.0.weight"].shape[1]),
            "channels": int(state["blocks.0.0.weight"].shape[0]),
            "depth": depth,
            "head_bias": "head.bias" in state,
        }

    def __init__(self, upstream_dim: int, channels: int = 2, depth: int = 4, head_bias: bool = False):
        super().__init__()
        if depth < 1 or upstream_dim < 2 ** (depth - 1):
            raise ValueError(
                f"SALF-MOS with depth {depth} needs features of at least {2 ** (depth - 1)} dimensions "
                f"(each downsampling halves them), got {upstream_dim}"
            )
        self.blocks = nn.ModuleList(DoubleConv(1 if i == 0 else channels, channels) for i in range(depth))
        self.lfe = nn.ModuleList(nn.Linear(length, 1) for length in lfe_lengths(upstream_dim, depth))
        self.head = nn.Linear(depth * channels, 1, bias=head_bias)

    def latent(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames [n, upstream_dim]`` (valid frames only) -> stacked latent features ``[n, depth * channels]``."""
        x = frames.unsqueeze(1)  # one channel along the feature axis
        stacked = []
        for i, (block, lfe) in enumerate(zip(self.blocks, self.lfe)):
            if i > 0:
                x = F.max_pool1d(x, kernel_size=2, stride=2)
            x = block(x)
            stacked.append(lfe(x).squeeze(-1))  # [n, channels]: the LFE is shared by the channels
        return torch.cat(stacked, dim=-1)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """``features [batch, frames, upstream_dim]``, ``lengths [batch]`` -> ``pred [batch]`` and the
        utterance-level latent features ``utterance [batch, depth * channels]`` (the mean over valid frames)."""
        mask = valid_mask(lengths.to(features.device), features.size(1))
        # Padded frames are dropped here, so no layer (BatchNorm statistics included) ever sees them.
        latent = self.latent(features[mask])
        owner = torch.arange(features.size(0), device=features.device).unsqueeze(1).expand_as(mask)[mask]
        sums = latent.new_zeros(features.size(0), latent.size(1)).index_add_(0, owner, latent)
        # an utterance without frames pools to 0 (never NaN)
        pooled = sums / mask.sum(1, keepdim=True).clamp_min(1).to(latent.dtype)
        return {"pred": self.head(pooled).squeeze(-1), "utterance": pooled}


def parameter_breakdown(model: nn.Module) -> list[tuple[str, str, int]]:
    """``(module name, what it is, parameters)`` for every module that owns parameters, in order."""
    rows = []
    for name, module in model.named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if own:
            rows.append((name, _describe(module), own))
    return rows


def _describe(module: nn.Module) -> str:
    if isinstance(module, nn.Conv1d):
        bias = module.bias is not None
        return f"Conv1d({module.in_channels}->{module.out_channels}, k={module.kernel_size[0]}, bias={bias})"
    if isinstance(module, nn.BatchNorm1d):
        return f"BatchNorm1d({module.num_features})"
    if isinstance(module, nn.Linear):
        return f"Linear({module.in_features}->{module.out_features}, bias={module.bias is not None})"
    return type(module).__name__


@reports_errors(catch=ValueError)
def main(argv=None) -> int:
    """``--count``: print the parameter count of SALF-MOS on features of ``--upstream_dim`` dimensions."""
    parser = argparse.ArgumentParser(
        prog="python -m distilmos.models.salf_mos", description="SALF-MOS parameter count, layer by layer."
    )
    parser.add_argument("--count", action="store_true", required=True, help="print the parameter count")
    parser.add_argument("--upstream_dim", type=int, default=768, help="feature dimension (768: wav2vec 2.0 Base)")
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--head_bias", action="store_true", help="a bias on the final Linear (+1)")
    args = parser.parse_args(argv)
    model = SALFMOSModel(args.upstream_dim, args.channels, args.depth, args.head_bias)
    rows = parameter_breakdown(model)
    width = max(len(name) for name, _, _ in rows)
    for name, what, count in rows:
        print(f"{name:<{width}}  {what:<38} {count:>7,}")
    print(f"{'total':<{width}}  {'':<38} {sum(count for _, _, count in rows):>7,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
