"""A Hugging Face ``transformers`` ``Wav2Vec2Model`` as a checkpoint of s3prl's ``wav2vec2_local`` loader.

s3prl's wav2vec 2.0 is fairseq's (``s3prl.upstream.wav2vec2.wav2vec2_model``): the same network as
``transformers``' with other module names. The checkpoint (``{"task_cfg", "model_cfg", "model_weight"}``)
takes the architecture from the ``Wav2Vec2Config`` and every weight by this table:

=============================================================  ==============================================
``transformers`` ``Wav2Vec2Model``                              s3prl / fairseq ``Wav2Vec2Model``
=============================================================  ==============================================
``feature_extractor.conv_layers.{i}.conv.{weight,bias}``        ``feature_extractor.conv_layers.{i}.0.*``
``feature_extractor.conv_layers.0.layer_norm.*`` (GroupNorm)    ``feature_extractor.conv_layers.0.2.*``
``feature_extractor.conv_layers.{i}.layer_norm.*`` (LayerNorm)  ``feature_extractor.conv_layers.{i}.2.1.*``
``feature_projection.layer_norm.*``                             ``layer_norm.*``
``feature_projection.projection.*``                             ``post_extract_proj.*``
``masked_spec_embed`` (training only; zeros if absent)          ``mask_emb``
``encoder.pos_conv_embed.conv.{weight_g,weight_v,bias}``        ``encoder.pos_conv.0.{weight_g,weight_v,bias}``
(newer: ``...conv.parametrizations.weight.original{0,1}``)
``encoder.layer_norm.*``                                        ``encoder.layer_norm.*``
``encoder.layers.{i}.attention.{q,k,v,out}_proj.*``             ``encoder.layers.{i}.self_attn.{q,k,v,out}_proj.*``
``encoder.layers.{i}.layer_norm.*``                             ``encoder.layers.{i}.self_attn_layer_norm.*``
``encoder.layers.{i}.feed_forward.intermediate_dense.*``        ``encoder.layers.{i}.fc1.*``
``encoder.layers.{i}.feed_forward.output_dense.*``              ``encoder.layers.{i}.fc2.*``
``encoder.layers.{i}.final_layer_norm.*``                       ``encoder.layers.{i}.final_layer_norm.*``
(none: pretraining heads, unused for features)                  ``project_q.*``, ``final_proj.*`` (zeros, width 1)
=============================================================  ==============================================

``feat_extract_norm`` ``group``/``layer`` becomes ``extractor_mode`` ``default``/``layer_norm`` and
``do_stable_layer_norm`` becomes ``layer_norm_first``. Both list the same hidden states: the input of each
transformer layer, then the encoder's output (after its final LayerNorm in the pre-LN layout), so
``transformers``' ``hidden_states[i]`` is s3prl's ``hidden_states[i]``. The waveform is not normalised
(``task_cfg.normalize: false``): a ``Wav2Vec2Model`` called on raw samples does not normalise either.
Configurations fairseq's network cannot express (an adapter, other activations or LayerNorm epsilons, no
feature projection) are refused.
"""

from __future__ import annotations

import re

import torch

from distilmos.data.audio import SAMPLE_RATE
from distilmos.errors import ToolkitError


class ConversionError(ToolkitError, ValueError):
    """A ``Wav2Vec2Config`` or state dict this conversion cannot express in s3prl's format."""


#: (transformers name pattern, s3prl name template); the conv LayerNorm rules are chosen by extractor mode
_RULES = [
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.(weight|bias)", r"feature_extractor.conv_layers.\1.0.\2"),
    (r"feature_projection\.layer_norm\.(weight|bias)", r"layer_norm.\1"),
    (r"feature_projection\.projection\.(weight|bias)", r"post_extract_proj.\1"),
    (r"masked_spec_embed", r"mask_emb"),
    # torch's two weight-norm APIs name the same tensors (g, v) differently
    (
        r"encoder\.pos_conv_embed\.conv\.(?:weight_g|parametrizations\.weight\.original0)",
        r"encoder.pos_conv.0.weight_g",
    ),
    (
        r"encoder\.pos_conv_embed\.conv\.(?:weight_v|parametrizations\.weight\.original1)",
        r"encoder.pos_conv.0.weight_v",
    ),
    (r"encoder\.pos_conv_embed\.conv\.bias", r"encoder.pos_conv.0.bias"),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder.layer_norm.\1"),
    (r"encoder\.layers\.(\d+)\.attention\.(q|k|v|out)_proj\.(weight|bias)", r"encoder.layers.\1.self_attn.\2_proj.\3"),
    (r"encoder\.layers\.(\d+)\.layer_norm\.(weight|bias)", r"encoder.layers.\1.self_attn_layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.(weight|bias)", r"encoder.layers.\1.fc1.\2"),
    (r"encoder\.layers\.(\d+)\.feed_forward\.output_dense\.(weight|bias)", r"encoder.layers.\1.fc2.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"encoder.layers.\1.final_layer_norm.\2"),
]
_CONV_NORM = {
    "group": (r"feature_extractor\.conv_layers\.0\.layer_norm\.(weight|bias)", r"feature_extractor.conv_layers.0.2.\1"),
    "layer": (
        r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(weight|bias)",
        r"feature_extractor.conv_layers.\1.2.1.\2",
    ),
}
_ACTIVATIONS = {"gelu": "gelu", "relu": "relu"}
#: fairseq's LayerNorm / GroupNorm epsilon
_EPS = 1e-5


def _config_dict(config) -> dict:
    return config if isinstance(config, dict) else config.to_dict()


def model_cfg(config) -> dict:
    """s3prl's ``model_cfg`` for a ``Wav2Vec2Config`` (or its ``to_dict()``); :class:`ConversionError` naming
    each setting fairseq's network cannot express."""
    c = _config_dict(config)
    problems = []
    if c.get("add_adapter"):
        problems.append("add_adapter: true (an adapter after the encoder)")
    if c.get("adapter_attn_dim") is not None:
        problems.append(f"adapter_attn_dim: {c['adapter_attn_dim']}")
    if c.get("feat_extract_activation", "gelu") != "gelu":
        problems.append(f"feat_extract_activation: {c['feat_extract_activation']} (fairseq's front end uses gelu)")
    if c.get("hidden_act", "gelu") not in _ACTIVATIONS:
        problems.append(f"hidden_act: {c['hidden_act']} (only {', '.join(_ACTIVATIONS)})")
    if abs(float(c.get("layer_norm_eps", _EPS)) - _EPS) > 1e-12:
        problems.append(f"layer_norm_eps: {c['layer_norm_eps']} (fairseq's LayerNorm uses {_EPS})")
    if c.get("feat_extract_norm", "group") not in _CONV_NORM:
        problems.append(f"feat_extract_norm: {c['feat_extract_norm']}")
    dims, kernels, strides = list(c["conv_dim"]), list(c["conv_kernel"]), list(c["conv_stride"])
    if not len(dims) == len(kernels) == len(strides):
        problems.append(f"conv_dim, conv_kernel and conv_stride of different lengths ({dims}, {kernels}, {strides})")
    if dims and dims[-1] == c["hidden_size"]:
        problems.append(f"conv_dim[-1] == hidden_size == {dims[-1]} (fairseq then has no feature projection)")
    if problems:
        raise ConversionError("cannot be expressed as s3prl's wav2vec 2.0: " + "; ".join(problems))
    return {
        "extractor_mode": "default" if c["feat_extract_norm"] == "group" else "layer_norm",
        "conv_feature_layers": "[" + ", ".join(f"({d}, {k}, {s})" for d, k, s in zip(dims, kernels, strides)) + "]",
        "conv_bias": bool(c.get("conv_bias", False)),
        "encoder_layers": int(c["num_hidden_layers"]),
        "encoder_embed_dim": int(c["hidden_size"]),
        "encoder_ffn_embed_dim": int(c["intermediate_size"]),
        "encoder_attention_heads": int(c["num_attention_heads"]),
        "activation_fn": _ACTIVATIONS[c.get("hidden_act", "gelu")],
        "layer_norm_first": bool(c.get("do_stable_layer_norm", False)),
        "conv_pos": int(c["num_conv_pos_embeddings"]),
        "conv_pos_groups": int(c["num_conv_pos_embedding_groups"]),
        # inference ignores these; kept as the model was trained
        "dropout": float(c.get("hidden_dropout", 0.1)),
        "attention_dropout": float(c.get("attention_dropout", 0.1)),
        "activation_dropout": float(c.get("activation_dropout", 0.0)),
        "dropout_input": float(c.get("feat_proj_dropout", 0.0)),
        "encoder_layerdrop": float(c.get("layerdrop", 0.0)),
        # no quantizer; the pretraining projections s3prl's class always has get width 1 (see the module docstring)
        "quantize_targets": False,
        "quantize_input": False,
        "final_dim": 1,
    }


def rename(name: str, feat_extract_norm: str) -> str | None:
    """The s3prl name of a ``transformers`` ``Wav2Vec2Model`` weight, or ``None`` when the table has no rule."""
    for pattern, template in _RULES + [_CONV_NORM[feat_extract_norm]]:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, template, name)
    return None


def model_weight(state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    """s3prl's ``model_weight`` from a ``Wav2Vec2Model`` state dict (see the module docstring's table)."""
    c = _config_dict(config)
    weights, unknown = {}, []
    for name, value in state.items():
        target = rename(name, c["feat_extract_norm"])
        if target is None:
            unknown.append(name)
        else:
            weights[target] = value
    if unknown:
        raise ConversionError(f"weights with no place in s3prl's wav2vec 2.0: {', '.join(sorted(unknown)[:5])}")
    dim, embed = int(c["hidden_size"]), int(c["conv_dim"][-1])
    like = next(iter(state.values()))
    weights.setdefault("mask_emb", like.new_zeros(dim))
    weights["project_q.weight"], weights["project_q.bias"] = like.new_zeros(1, embed), like.new_zeros(1)
    weights["final_proj.weight"], weights["final_proj.bias"] = like.new_zeros(1, dim), like.new_zeros(1)
    return weights


def to_s3prl(state: dict[str, torch.Tensor], config) -> dict:
    """The ``wav2vec2_local`` checkpoint ``{"task_cfg", "model_cfg", "model_weight"}`` of a ``Wav2Vec2Model``."""
    return {
        "task_cfg": {"sample_rate": SAMPLE_RATE, "normalize": False},
        "model_cfg": model_cfg(config),
        "model_weight": model_weight(state, config),
    }
