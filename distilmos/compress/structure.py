"""What structured pruning removes from an s3prl WavLM / HuBERT / wav2vec 2.0 upstream: the groups, their
importance, the plan for a target size and the smaller checkpoint that results.

Four kinds of group (:data:`GROUPS`), each removed whole:

- ``layers``: a transformer layer;
- ``ffn_channels``: one feed-forward channel of a layer (its row of ``fc1``, its bias, its column of ``fc2``);
- ``attention_heads``: one head of a layer (its rows of ``q/k/v_proj`` and biases, its columns of
  ``out_proj``); HuBERT and wav2vec 2.0 only (:mod:`distilmos.predictor.heads` says why not WavLM);
- ``conv_channels``: one output channel of a front-end convolution (its filter, its norm's scale and shift,
  and the next convolution's input slice), for every convolution but the last, whose width is the
  features' width that the projection and layer norm after the front end read.

Importance is the first-order Taylor criterion (Molchanov et al., 2019) on the MOS loss: for a group,
``(sum over its weights of gradient x weight)^2``, summed over batches. It estimates how much the task loss
changes when the group is removed, for one backward pass per batch; magnitude criteria ignore what the
fine-tuned model uses for MOS.

The plan for a target fraction ``f`` of the upstream's parameters: every convolution but the last keeps
``sqrt(f)`` of its channels (a convolution's weights scale with the product of two widths, so the front end
keeps about ``f`` of its weights, and of its compute, which is a third of the whole model's though it holds
5 % of the parameters: pruning by parameters alone would leave it whole and the model barely faster);
every layer keeps ``f`` of its heads; the rest of the budget goes to the (layers, FFN width) pair with the
most parameters not above the target (ties: more layers), layers and channels chosen by importance, the
same FFN width in every layer (s3prl's format has one). WavLM's first layer holds the relative position
bias every layer uses, so it is always kept. A target below the smallest reachable size (one layer, one
channel) gets that size; the plan says what it reached.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from distilmos.errors import ConfigError
from distilmos.predictor.heads import HEAD_KINDS, attention_modules

GROUPS = ("layers", "ffn_channels", "attention_heads", "conv_channels")
_HEAD_PARAMS = ("q_proj", "k_proj", "v_proj")


def check_groups(groups, source: str = "config", known: Sequence[str] = GROUPS) -> list[str]:
    """The group names of ``groups`` (a list, or a comma-separated string), each one of ``known``
    (:data:`GROUPS` by default); a ConfigError naming ``source`` otherwise."""
    if isinstance(groups, str):
        groups = [g.strip() for g in groups.split(",") if g.strip()]
    if not groups or set(groups) - set(known):
        raise ConfigError(f"{source}: pruning groups {groups!r}: choose from {', '.join(known)}")
    return list(groups)


class Structure:
    """The prunable structure of a built s3prl upstream of ``kind`` (``wavlm``, ``hubert``, ``wav2vec2``)."""

    def __init__(self, upstream: nn.Module, kind: str):
        self.kind = kind
        self.upstream = upstream
        self.layers = upstream.model.encoder.layers
        self.blocks = upstream.model.feature_extractor.conv_layers
        self.embed_dim = self.layers[0].fc1.in_features
        self.ffn_dim = self.layers[0].fc1.out_features
        attention = attention_modules(upstream)
        self.heads = [int(attn.num_heads) for attn in attention]
        self.head_dim = int(attention[0].head_dim)
        self.conv_widths = [int(block[0].out_channels) for block in self.blocks]
        self.convs = [(int(b[0].kernel_size[0]), int(b[0].stride[0])) for b in self.blocks]
        self.total = sum(p.numel() for p in upstream.parameters())

    @property
    def prunable_convs(self) -> range:
        return range(len(self.blocks) - 1)

    @property
    def heads_prunable(self) -> bool:
        return self.kind in HEAD_KINDS

    # ---- parameter counts -------------------------------------------------------------------------------
    def conv_parameters(self, widths: Sequence[int]) -> int:
        """Parameters of the front end with these output widths (the first input has one channel)."""
        total, previous = 0, (1, 1)  # (full, kept) width of the input
        for block, full, kept in zip(self.blocks, self.conv_widths, widths):
            for param in block.parameters():
                n = param.numel() // full * kept
                if param.dim() == 3:  # a convolution's filters also span the input channels
                    n = n // previous[0] * previous[1]
                total += n
            previous = (full, kept)
        return total

    def layer_parameters(self, index: int, heads: int, width: int) -> int:
        """Parameters of layer ``index`` keeping ``heads`` heads and ``width`` FFN channels."""
        full = sum(p.numel() for p in self.layers[index].parameters())
        per_head = 4 * self.embed_dim * self.head_dim + 3 * self.head_dim
        per_channel = 2 * self.embed_dim + 1
        return full - (self.heads[index] - heads) * per_head - (self.ffn_dim - width) * per_channel


def new_scores(structure: Structure) -> dict:
    """Zeroed importance accumulators of every group of ``structure``."""
    return {
        "layers": torch.zeros(len(structure.layers), dtype=torch.float64),
        "ffn_channels": torch.zeros(len(structure.layers), structure.ffn_dim, dtype=torch.float64),
        "attention_heads": [torch.zeros(n, dtype=torch.float64) for n in structure.heads],
        "conv_channels": [torch.zeros(structure.conv_widths[i], dtype=torch.float64) for i in structure.prunable_convs],
    }


def random_scores(structure: Structure, seed: int = 0) -> dict:
    """Seeded random importances in the shape of :func:`new_scores`: for what does not depend on which
    groups are kept (timing a pruned size, checking the slicing)."""
    generator = torch.Generator().manual_seed(seed)

    def draw(value):
        return torch.rand(value.shape, generator=generator, dtype=torch.float64)

    return {
        name: [draw(v) for v in value] if isinstance(value, list) else draw(value)
        for name, value in new_scores(structure).items()
    }


def _gw(param: torch.Tensor) -> torch.Tensor:
    return param.grad * param if param.grad is not None else torch.zeros_like(param)


@torch.no_grad()
def accumulate(structure: Structure, scores: dict) -> None:
    """Add one backward pass's group Taylor scores (the gradients now in the upstream) to ``scores``."""
    for i, layer in enumerate(structure.layers):
        scores["layers"][i] += float(sum(_gw(p).sum() for p in layer.parameters())) ** 2
        per_channel = _gw(layer.fc1.weight).sum(1) + _gw(layer.fc1.bias) + _gw(layer.fc2.weight).sum(0)
        scores["ffn_channels"][i] += per_channel.double() ** 2
        attn, d = layer.self_attn, structure.head_dim
        per_head = _gw(attn.out_proj.weight).sum(0)
        for name in _HEAD_PARAMS:
            proj = getattr(attn, name)
            per_head = per_head + _gw(proj.weight).sum(1) + (_gw(proj.bias) if proj.bias is not None else 0)
        scores["attention_heads"][i] += per_head.view(-1, d).sum(1).double() ** 2
    for i in structure.prunable_convs:
        per_channel = sum(_gw(p).flatten(1).sum(1) if p.dim() > 1 else _gw(p) for p in structure.blocks[i].parameters())
        per_channel = per_channel + _gw(structure.blocks[i + 1][0].weight).sum((0, 2))  # the next filters' input
        scores["conv_channels"][i] += per_channel.double() ** 2


def _top(scores: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count`` most important indices, in their original order."""
    return torch.sort(torch.topk(scores, count).indices).values


def plan_sizes(structure: Structure, scores: dict, fractions: Sequence[float], groups: Sequence[str] = GROUPS) -> list:
    """For each target fraction: ``{"fraction", "target", "layers" (kept indices), "ffn_dim", "heads" (per
    kept layer), "conv_widths", "parameters"}`` (module docstring)."""
    groups = check_groups(groups, "plan_sizes")
    n = len(structure.layers)
    order = sorted(range(n), key=lambda i: (-float(scores["layers"][i]), i))
    if structure.kind == "wavlm":
        order = [0] + [i for i in order if i != 0]
    layer_counts = range(n, 0, -1) if "layers" in groups else (n,)
    full_layers = sum(sum(p.numel() for p in layer.parameters()) for layer in structure.layers)
    per_channel = 2 * structure.embed_dim + 1
    plans = []
    for fraction in fractions:
        widths = list(structure.conv_widths)
        if "conv_channels" in groups:
            for i in structure.prunable_convs:
                widths[i] = max(1, round(math.sqrt(fraction) * widths[i]))
        heads = list(structure.heads)
        if "attention_heads" in groups and structure.heads_prunable:
            heads = [max(1, round(fraction * h)) for h in heads]
        outside = (
            structure.total
            - full_layers
            - structure.conv_parameters(structure.conv_widths)
            + structure.conv_parameters(widths)
        )
        target = fraction * structure.total
        candidates = []
        for n_layers in layer_counts:  # more layers first: ties keep depth
            kept = sorted(order[:n_layers])
            full = outside + sum(structure.layer_parameters(i, heads[i], structure.ffn_dim) for i in kept)
            width = structure.ffn_dim
            if "ffn_channels" in groups:  # the widest FFN that fits
                width = max(structure.ffn_dim - math.ceil(max(full - target, 0) / (n_layers * per_channel)), 1)
            candidates.append(
                {
                    "fraction": fraction,
                    "target": int(target),
                    "layers": kept,
                    "ffn_dim": width,
                    "heads": [heads[i] for i in kept],
                    "conv_widths": widths,
                    "parameters": int(full - n_layers * (structure.ffn_dim - width) * per_channel),
                }
            )
        fitting = [c for c in candidates if c["parameters"] <= target]
        plans.append(
            max(fitting, key=lambda c: c["parameters"]) if fitting else min(candidates, key=lambda c: c["parameters"])
        )
    return plans


def _conv_layers_string(structure: Structure, widths: Sequence[int]) -> str:
    return "[" + ", ".join(f"({w}, {k}, {s})" for w, (k, s) in zip(widths, structure.convs)) + "]"


def _slice_conv(state: dict, structure: Structure, plan: dict, scores: dict) -> None:
    kept = {
        i: _top(scores["conv_channels"][i], plan["conv_widths"][i])
        for i in structure.prunable_convs
        if plan["conv_widths"][i] < structure.conv_widths[i]
    }
    for key in [k for k in state if k.startswith("feature_extractor.conv_layers.")]:
        block = int(key.split(".")[2])
        value = state[key]
        if block in kept:
            value = value[kept[block]]
        if value.dim() == 3 and block - 1 in kept:
            value = value[:, kept[block - 1]]
        state[key] = value.contiguous()


def _slice_layer(state: dict, prefix: str, channels: torch.Tensor, heads: torch.Tensor | None, head_dim: int) -> None:
    state[prefix + "fc1.weight"] = state[prefix + "fc1.weight"][channels]
    state[prefix + "fc1.bias"] = state[prefix + "fc1.bias"][channels]
    state[prefix + "fc2.weight"] = state[prefix + "fc2.weight"][:, channels]
    if heads is None:
        return
    rows = (heads[:, None] * head_dim + torch.arange(head_dim)[None, :]).flatten()
    for name in _HEAD_PARAMS:
        for part in ("weight", "bias"):
            key = f"{prefix}self_attn.{name}.{part}"
            if key in state:
                state[key] = state[key][rows]
    state[prefix + "self_attn.out_proj.weight"] = state[prefix + "self_attn.out_proj.weight"][:, rows]


def pruned_entry(entry: dict, structure: Structure, plan: dict, scores: dict) -> dict:
    """The upstream entry (s3prl ``<kind>_local`` checkpoint, plus ``attention_heads`` when heads were
    removed) holding only the kept groups of ``plan``."""
    state = {
        k[len("model.") :]: v.clone() for k, v in structure.upstream.state_dict().items() if k.startswith("model.")
    }
    _slice_conv(state, structure, plan, scores)
    renumber = {old: new for new, old in enumerate(plan["layers"])}
    new_state = {}
    for key, value in state.items():
        if key.startswith("encoder.layers."):
            index = int(key.split(".")[2])
            if index not in renumber:
                continue
            key = f"encoder.layers.{renumber[index]}." + key.split(".", 3)[3]
        new_state[key] = value
    for old, new in renumber.items():
        heads = plan["heads"][new]
        kept_heads = _top(scores["attention_heads"][old], heads) if heads < structure.heads[old] else None
        _slice_layer(
            new_state,
            f"encoder.layers.{new}.",
            _top(scores["ffn_channels"][old], plan["ffn_dim"]),
            kept_heads,
            structure.head_dim,
        )
    new_state = {k: v.contiguous() for k, v in new_state.items()}
    new = copy.deepcopy({k: v for k, v in entry.items() if k not in ("checkpoint", "attention_heads")})
    checkpoint = {k: copy.deepcopy(v) for k, v in entry["checkpoint"].items() if k not in ("model", "model_weight")}
    checkpoint["model" if entry["kind"] == "wavlm" else "model_weight"] = new_state
    cfg = checkpoint["cfg" if entry["kind"] == "wavlm" else "model_cfg"]
    cfg["encoder_layers"] = len(plan["layers"])
    cfg["encoder_ffn_embed_dim"] = int(plan["ffn_dim"])
    cfg["conv_feature_layers"] = _conv_layers_string(structure, plan["conv_widths"])
    new["checkpoint"] = checkpoint
    if any(h != int(cfg["encoder_attention_heads"]) for h in plan["heads"]):
        new["attention_heads"] = [int(h) for h in plan["heads"]]
    return new
