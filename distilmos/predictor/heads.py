"""Attention heads removed from an embedded HuBERT / wav2vec 2.0 upstream: how a predictor file holds them
and how the model is rebuilt.

s3prl's configs have one head count for every layer and derive the head width from ``embed_dim / heads``,
so a checkpoint in the ``<kind>_local`` format cannot say "layer 3 keeps 5 of its 12 heads". The attention
module of these two families (``s3prl.upstream.wav2vec2.wav2vec2_model.MultiheadAttention``, fairseq's)
can hold that, though: ``_adaptive_prune_heads`` keeps a subset of heads of the full width, and
``_set_skip_embed_dim_check`` lets the projections be narrower than the model. So an entry stores

- its weights as they are (``q/k/v_proj`` with ``heads[l] * head_dim`` rows, ``out_proj`` with as many
  columns: really fewer weights), and
- ``attention_heads``: the head count of every layer, beside the unchanged architecture config.

Rebuilding gives s3prl's loader the full-size layout (the kept heads first, zeros after them), then removes
the zero heads with the module's own method; the result is the pruned model, with s3prl's classes only.
WavLM's attention has no such method (its relative position bias and gated bias are per head and shared
across layers), so its heads are never pruned.
"""

from __future__ import annotations

import torch
from torch import nn

HEAD_KINDS = ("hubert", "wav2vec2")
_PROJ_ROWS = ("q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias", "v_proj.weight", "v_proj.bias")


def attention_modules(upstream: nn.Module) -> list[nn.Module]:
    """The self-attention module of every transformer layer of an s3prl WavLM / HuBERT / wav2vec 2.0."""
    return [layer.self_attn for layer in upstream.model.encoder.layers]


def head_counts(upstream: nn.Module, configured: int) -> list[int] | None:
    """Every layer's head count when some layer has fewer than ``configured`` heads, else ``None``."""
    counts = [int(attn.num_heads) for attn in attention_modules(upstream)]
    return counts if any(n != configured for n in counts) else None


def expand_weights(weights: dict, heads: list[int], configured: int, embed_dim: int) -> dict:
    """The full-size state s3prl's loader expects: each layer's kept heads first, zero rows/columns after."""
    head_dim = embed_dim // configured
    full = dict(weights)
    for layer, count in enumerate(heads):
        if count == configured:
            continue
        prefix = f"encoder.layers.{layer}.self_attn."
        for name in _PROJ_ROWS:
            value = weights[prefix + name]
            padded = value.new_zeros((embed_dim,) + tuple(value.shape[1:]))
            padded[: count * head_dim] = value
            full[prefix + name] = padded
        value = weights[prefix + "out_proj.weight"]
        padded = value.new_zeros((value.shape[0], embed_dim))
        padded[:, : count * head_dim] = value
        full[prefix + "out_proj.weight"] = padded
    return full


def remove_padded_heads(upstream: nn.Module, heads: list[int]) -> None:
    """Drop the zero heads :func:`expand_weights` added, with the attention module's own method."""
    for attn, count in zip(attention_modules(upstream), heads):
        if count == attn.num_heads:
            continue
        with torch.no_grad():
            attn._adaptive_prune_heads([(i * attn.head_dim, (i + 1) * attn.head_dim) for i in range(count)])
        attn._set_skip_embed_dim_check()
