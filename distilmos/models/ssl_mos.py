"""SSL-MOS (Cooper et al., ICASSP 2022; nii-yamagishilab/mos-finetune-ssl): the fine-tuned upstream's
last-layer output, mean-pooled over time, then one Linear layer to the MOS.

One deliberate difference from the original code: the mean is over valid frames only (the original
averages zero-padded frames too, so a prediction there depends on the rest of its batch).
"""

import torch
import torch.nn as nn

from .masking import masked_mean, valid_mask


class SSLMOSModel(nn.Module):
    """Mean over valid frames -> Linear(upstream_dim, 1)."""

    @staticmethod
    def kwargs_from_state(state: dict[str, torch.Tensor]) -> dict:
        """The constructor arguments that built the weights ``state`` (read off their shapes)."""
        return {"upstream_dim": int(state["output_layer.weight"].shape[1])}

    def __init__(self, upstream_dim: int):
        super().__init__()
        self.output_layer = nn.Linear(upstream_dim, 1)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """``features [batch, frames, dim]`` -> ``pred [batch]`` and the pooled ``utterance`` vectors."""
        pooled = masked_mean(features, valid_mask(lengths, features.size(1)))
        return {"pred": self.output_layer(pooled).squeeze(-1), "utterance": pooled}
