"""MoE-MOS (Hu et al., arXiv 2507.06116): a mixture-of-experts head on frozen SSL features, with a MOS
head and a synthesis-system classification head.

    features [B, T, D] --masked mean--> x [B, D]
    gate:     g(x) = softmax(Linear(D -> N)(x))                        [B, N]
    experts:  E_i(x) = GELU(Linear(H -> H)(Dropout(GELU(Linear(D -> H)(x)))))   i = 1..N, [B, H] each
    mixture:  y = sum_i g_i(x) E_i(x)                                   [B, H]
    heads:    pred = Linear(H -> 1)(y);  system_logits = Linear(H -> C)(y)

The paper leaves the expert MLPs' depth and width open; two layers of width ``hidden_dim`` (256) is our
reading. The gate sees the same pooled vector as the experts (soft routing of the whole utterance).
Pooling is over valid frames only, so a prediction does not depend on the padding of its batch.

The names of the C system classes (the training list's ``system_id`` s, sorted) are kept in the state
dict as a UTF-8 byte buffer, so a checkpoint or predictor file carries them beside the weights that
predict them, and :meth:`MoEMOSModel.kwargs_from_state` rebuilds the model from its state dict alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

from ..errors import ConfigError
from .masking import masked_mean, valid_mask

#: separates the class names in their byte buffer (a system id never holds a newline: it is a CSV field)
_SEPARATOR = "\n"


def encode_names(names: Sequence[str]) -> torch.Tensor:
    """Class names as a uint8 tensor (what the state dict stores)."""
    bad = [n for n in names if _SEPARATOR in n]
    if bad:
        raise ConfigError(f"system ids must not contain a line break: {bad[:3]!r}")
    data = _SEPARATOR.join(names).encode("utf-8")
    return torch.tensor(list(data), dtype=torch.uint8)


def decode_names(buffer: torch.Tensor, count: int) -> list[str]:
    """The class names of :func:`encode_names` (``count`` of them)."""
    if count == 0:
        return []
    names = bytes(buffer.tolist()).decode("utf-8").split(_SEPARATOR)
    if len(names) != count:
        raise KeyError(f"class_names ({len(names)} names for {count} classes)")
    return names


def _expert(upstream_dim: int, hidden_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(upstream_dim, hidden_dim),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(hidden_dim, hidden_dim),
        nn.GELU(),
    )


class MoEMOSModel(nn.Module):
    """Masked mean -> N expert MLPs mixed by a softmax gate -> MOS and system-class heads."""

    @staticmethod
    def kwargs_from_state(state: dict[str, torch.Tensor]) -> dict:
        """The constructor arguments that built the weights ``state`` (read off their shapes)."""
        first = state["experts.0.0.weight"]
        n_classes = int(state["system_head.weight"].shape[0])
        return {
            "upstream_dim": int(first.shape[1]),
            "hidden_dim": int(first.shape[0]),
            "n_experts": int(state["gate.weight"].shape[0]),
            "class_names": decode_names(state["class_names_utf8"], n_classes),
        }

    def __init__(
        self,
        upstream_dim: int,
        n_experts: int = 4,
        hidden_dim: int = 256,
        class_names: Sequence[str] = (),
        dropout: float = 0.1,
    ):
        super().__init__()
        if n_experts < 1:
            raise ConfigError(f"modelrc.n_experts must be at least 1, not {n_experts}")
        self.class_names = list(class_names)
        self.gate = nn.Linear(upstream_dim, n_experts)
        self.experts = nn.ModuleList(_expert(upstream_dim, hidden_dim, dropout) for _ in range(n_experts))
        self.mos_head = nn.Linear(hidden_dim, 1)
        self.system_head = nn.Linear(hidden_dim, len(self.class_names))
        self.register_buffer("class_names_utf8", encode_names(self.class_names))

    @property
    def n_experts(self) -> int:
        return len(self.experts)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """``features [batch, frames, dim]`` -> ``pred [batch]``, ``system_logits [batch, classes]``,
        ``gates [batch, experts]`` (each row sums to 1) and the pooled ``utterance`` vectors."""
        pooled = masked_mean(features, valid_mask(lengths, features.size(1)))
        gates = torch.softmax(self.gate(pooled), dim=-1)
        outputs = torch.stack([expert(pooled) for expert in self.experts], dim=1)  # [B, N, H]
        mixed = (gates.unsqueeze(-1) * outputs).sum(1)
        return {
            "pred": self.mos_head(mixed).squeeze(-1),
            "system_logits": self.system_head(mixed),
            "gates": gates,
            "utterance": pooled,
        }


def load_balance_loss(gates: torch.Tensor) -> torch.Tensor:
    """Diversity / load-balancing term over a batch: 0 when every expert gets the same mean gate,
    1 when one expert gets all of it (``(N · Σ_i ū_i² − 1) / (N − 1)`` of the mean gates ``ū``; 0 for N = 1)."""
    n = gates.size(-1)
    if n == 1:
        return gates.new_zeros(())
    usage = gates.mean(0)
    return (n * usage.pow(2).sum() - 1.0) / (n - 1)


def gate_entropy(gates: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each utterance's gate distribution ``[batch]``."""
    return -(gates * gates.clamp_min(1e-12).log()).sum(-1)


def sparsity_loss(gates: torch.Tensor) -> torch.Tensor:
    """Sparsity term per utterance: the mean gate entropy over ``log N`` (0: each utterance uses one expert,
    1: it spreads evenly over all; 0 for N = 1). With the load-balancing term it asks for experts that are
    each used by some utterances, rather than every expert by every utterance."""
    n = gates.size(-1)
    if n == 1:
        return gates.new_zeros(())
    return gate_entropy(gates).mean() / math.log(n)
