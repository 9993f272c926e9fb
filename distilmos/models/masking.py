"""Frame masks of padded batches, shared by every expert's model."""

import torch


def valid_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``[batch, max_len]`` True on the first ``lengths[b]`` frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames of ``x: [batch, frames, dim]``; an empty mask gives 0, never NaN."""
    weights = mask.unsqueeze(-1).to(x.dtype)
    return (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)
