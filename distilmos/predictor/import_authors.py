"""The DistilMOS authors' released checkpoints -> predictor files of this toolkit.

    distilmos-predict import --source hf://BaleYang/DistilMOS --backbone wavlm -o distilmos_authors_wavlm.pt
    huggingface-cli download BaleYang/DistilMOS --local-dir BaleYang-DistilMOS      # or from a local copy
    distilmos-predict import --source BaleYang-DistilMOS --backbone wavlm -o distilmos_authors_wavlm.pt

The authors publish, on Hugging Face ``BaleYang/DistilMOS``, one folder per backbone (``wavlm/``,
``w2v2/``), each with ``model.pth.tar`` (the state dict of their ``DistilMOS`` module, possibly under
``model`` or ``state_dict``) and ``model_cfg.yaml``; their loading code is github ``BaleYang/DistilMOS``
(``predict.py``, ``model/predictor.py``, ``model/modules.py``). What their code reads:

- ``model_cfg.yaml``: ``hidden_dim`` (256), ``downsample_kernels`` ([5, 3, 3]), ``downsample_strides``
  ([1, 1, 1]), ``target_layers`` (1..N: one token predictor each), and the backbone's architecture:
  ``wavlm_cfg`` (a WavLM config dict; without it, their WavLM Base default) or ``w2v2_cfg`` (the keyword
  arguments of a ``transformers`` ``Wav2Vec2Config``; without it, the default one). Their
  ``ssl_backbone`` is set by the command line (``--backbone``), as their ``predict.py`` does.
- ``model.pth.tar``: ``ssl.*`` (the backbone: WavLM with the names of Microsoft's ``WavLM.py``, which are
  s3prl's; wav2vec 2.0 as a ``transformers`` ``Wav2Vec2Model``), ``weighted_sum.*``,
  ``feature_processor.*``, ``predictors.*``, ``decoder.*``, ``linear.*``.

Where each tensor goes (see :mod:`distilmos.models.distilmos_authors` for the head and how it differs
from the paper):

======================================================  ==================================================
authors' key                                            predictor file
======================================================  ==================================================
``ssl.*`` (WavLM)                                       upstream ``wavlm_local`` checkpoint ``model.*``
``ssl.*`` (wav2vec 2.0)                                 upstream ``wav2vec2_local`` checkpoint
                                                        (:mod:`distilmos.predictor.hf_wav2vec2`)
``weighted_sum.layer_logits`` [N]                       featurizer ``weights`` (1.5-entmax, layers 1..N)
                                                        (see "Layer N" below)
``weighted_sum.out_proj.*``                             downstream ``out_proj.*``
``feature_processor.*``                                 downstream ``feature_processor.*`` (+ ``strides``)
``decoder.{cnn,bilstm,linear,layer_norm}.*``            downstream ``decoder.*``
``linear.*``                                            downstream ``linear.*``
``weighted_sum.layer_weights``                          dropped: their forward uses the entmax logits
``predictors.*``                                        dropped: token predictors, training only
``decoder.batch_norm.*``                                dropped: never used by their forward
======================================================  ==================================================

Layer N. A pre-LN encoder (WavLM's ``layer_norm_first``, wav2vec 2.0's ``do_stable_layer_norm``: the Large
models) applies a final LayerNorm to the last layer's output; whether the weighted sum sees layer N before
or after it is settled by what their code reads:

- WavLM: their ``_extract_wavlm`` runs the encoder's layers one by one and keeps each output, so layer N
  is taken *before* the final LayerNorm; s3prl's WavLM expert returns the encoder's output (after it) as
  its last hidden state. The upstream entry says ``last_layer_before_final_norm: true``
  (:func:`distilmos.predictor.upstream_entry.take_last_layer_before_final_norm`), set for ``layer_norm_first``.
- wav2vec 2.0: their ``hidden_states[1:]`` of ``transformers``' ``Wav2Vec2Model`` end with
  ``Wav2Vec2EncoderStableLayerNorm``'s last hidden state, which is taken *after* ``encoder.layer_norm``; s3prl's
  wav2vec 2.0 expert returns fairseq's encoder output, also after it (``TransformerEncoder.forward``
  applies ``layer_norm`` when ``layer_norm_first``). The two agree, so the file keeps s3prl's hidden
  states (the import checks them against ``transformers``').

In the post-LN layout (the Base models) the encoder's LayerNorm comes before the layers, and layer N is the
same tensor in every reading.

Files are read safely (``torch.load(weights_only=True)``, ``yaml.safe_load``) and checked key by key and
shape by shape against what their code builds from ``model_cfg.yaml``; any difference is one error naming
the file. Before writing, the file is rebuilt and checked: a wav2vec 2.0 upstream gives the hidden states
of the ``transformers`` model it came from, and the network scores probe waveforms in one batch as one by one.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
from collections.abc import Sequence

import torch

import distilmos
from distilmos.data.audio import SAMPLE_RATE
from distilmos.errors import ToolkitError
from distilmos.fileio import sha256_file

from . import downstreams, hf_wav2vec2, sources, upstream_entry
from .fileformat import write_predictor
from .pipeline import FeatureSelector
from .predictor import build_pipeline
from .sources import HubRef

HF_REPO = "BaleYang/DistilMOS"
CODE_REPO = "https://github.com/BaleYang/DistilMOS"
BACKBONES = ("wavlm", "w2v2")
CHECKPOINT_NAME = "model.pth.tar"
CONFIG_NAME = "model_cfg.yaml"
DOWNLOAD_HINT = (
    f"import from the hub (--source hf://{HF_REPO}) or download it with: "
    f"huggingface-cli download {HF_REPO} --local-dir BaleYang-DistilMOS"
)
#: what this file's downstream entry is registered as (distilmos.registry.MODELS)
MODEL_NAME = "distilmos_authors"
#: the output width of their token predictors (fixed in their code)
TOKEN_CLASSES = 200
#: their WavLM config when model_cfg.yaml has none (WavLM Base's relative position settings)
WAVLM_DEFAULT_CFG = {"relative_position_embedding": True, "gru_rel_pos": True, "num_buckets": 320, "max_distance": 800}
CHECK_TOLERANCE = 1e-5
#: what layer N is (the module docstring's "Layer N"), by backbone, for an encoder that ends with a LayerNorm
LAST_LAYER = {
    "wavlm": "before the encoder's final LayerNorm, as their code reads WavLM's layers one by one",
    "w2v2": "after the encoder's final LayerNorm, as transformers' hidden_states[N] that their code reads",
}
LAST_LAYER_POST_LN = "the last transformer layer's output (this encoder has no LayerNorm after its layers)"

#: authors' head key prefix -> where it goes in the downstream model (see the module docstring)
HEAD_KEPT = {
    "weighted_sum.out_proj.": "out_proj.",
    "feature_processor.": "feature_processor.",
    "decoder.cnn.": "decoder.cnn.",
    "decoder.bilstm.": "decoder.bilstm.",
    "decoder.linear.": "decoder.linear.",
    "decoder.layer_norm.": "decoder.layer_norm.",
    "linear.": "linear.",
}
LAYER_LOGITS = "weighted_sum.layer_logits"
#: authors' keys that the inference path does not use, and why
HEAD_DROPPED = {
    "weighted_sum.layer_weights": "unused: their forward weighs layers by the entmax logits",
    "predictors.": "token predictors (training only)",
    "decoder.batch_norm.": "never used by their forward",
}

DIFFERENCES = [
    "layer weights: 1.5-entmax over the transformer layers 1..N (not softmax over all hidden states), then an "
    "output Linear(D->D)",
    "projector: a 1x1 Conv1d (D->H) instead of a Linear",
    "Feature Processor blocks: depthwise Conv1d (no bias) -> pointwise 1x1 Conv1d (no bias) -> BatchNorm -> GELU "
    "(no Linear), then a LayerNorm after the blocks",
    "token predictors (training only, not in this file): ReLU MLPs (the paper: GELU)",
    "a batched forward lets padding move scores (see batching)",
]
BATCHING = (
    "Scores are the authors' code's for each input alone (their predict.py on one file), to float rounding. "
    "Their batched forward (predict.py on a folder, batch size 32 by default) lets padding move a score: the "
    "backbone front end's GroupNorm over time counts the padded samples (WavLM Base, wav2vec 2.0 Base); WavLM "
    "marks a frame as padding only when all its samples are padding, so a partly padded last frame is attended "
    "to; and in the head, the projector's bias and every block's BatchNorm and GELU make padded frames "
    "non-zero, which the depthwise convolutions and the decoder's convolution read across each utterance's end. "
    "This file runs the padding-exact upstream forward and zeroes padded frames before every convolution, so "
    "batches of any composition give every input its score alone."
)


class AuthorsImportError(ToolkitError, ValueError):
    """The authors' files cannot be imported; the message names the file and says why."""


# ---- reading the files -------------------------------------------------------------------------------------
def locate(source: Sequence[str], backbone: str) -> tuple[str, str]:
    """``(model.pth.tar, model_cfg.yaml)`` from a backbone folder, the repository folder (its ``<backbone>/``)
    or the two files."""
    if backbone not in BACKBONES:
        raise AuthorsImportError(f"backbone {backbone!r}: choose from {', '.join(BACKBONES)}")
    paths = [os.fspath(p) for p in source]
    if len(paths) == 1 and os.path.isdir(paths[0]):
        for folder in (paths[0], os.path.join(paths[0], backbone)):
            if os.path.isfile(os.path.join(folder, CHECKPOINT_NAME)):
                return os.path.join(folder, CHECKPOINT_NAME), os.path.join(folder, CONFIG_NAME)
        raise AuthorsImportError(
            f"{paths[0]}: holds neither {CHECKPOINT_NAME} nor {backbone}/{CHECKPOINT_NAME}; " + DOWNLOAD_HINT
        )
    configs = [p for p in paths if p.lower().endswith((".yaml", ".yml"))]
    checkpoints = [p for p in paths if p not in configs]
    if len(configs) != 1 or len(checkpoints) != 1:
        raise AuthorsImportError(
            "--source takes a folder, or a checkpoint and its .yaml config; got " + " ".join(paths)
        )
    return checkpoints[0], configs[0]


def read_model_cfg(path: str) -> dict:
    """``model_cfg.yaml`` as a dict (``yaml.safe_load``)."""
    import yaml

    if not os.path.isfile(path):
        raise AuthorsImportError(f"{path}: no such file (the model_cfg.yaml beside the checkpoint); {DOWNLOAD_HINT}")
    try:
        with open(path, encoding="utf-8") as handle:
            cfg = yaml.safe_load(handle)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise AuthorsImportError(f"{path}: not a readable YAML file ({str(exc).splitlines()[0]})") from exc
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise AuthorsImportError(f"{path}: a model config must be a YAML mapping, not a {type(cfg).__name__}")
    return cfg


def read_state_dict(path: str) -> tuple[dict[str, torch.Tensor], str | None]:
    """``(state dict, the key it was under or None)`` of ``model.pth.tar`` (``torch.load(weights_only=True)``)."""
    if not os.path.isfile(path):
        raise AuthorsImportError(f"{path}: no such checkpoint; {DOWNLOAD_HINT}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, or pickled classes weights_only refuses
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        reason = next((line for line in lines if "Unsupported global" in line), lines[0])
        raise AuthorsImportError(
            f"{path}: not a checkpoint that loads safely with torch.load(weights_only=True) ({reason[:200]})"
        ) from exc
    wrapper = next(
        (key for key in ("model", "state_dict") if isinstance(obj, dict) and isinstance(obj.get(key), dict)), None
    )
    state = obj[wrapper] if wrapper else obj
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise AuthorsImportError(
            f"{path}: holds no state dict (a dict of tensors, at the top or under 'model' or 'state_dict')"
        )
    return dict(state), wrapper


# ---- what the authors' code builds from model_cfg.yaml -----------------------------------------------------
def _int_list(cfg: dict, key: str, default: list[int], path: str) -> list[int]:
    value = cfg.get(key, default)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and v > 0 for v in value):
        raise AuthorsImportError(f"{path}: {key} must be a list of positive integers, not {value!r}")
    return list(value)


def head_config(cfg: dict, n_layers: int, path: str) -> dict:
    """Their head's settings (``model/predictor.py`` defaults where ``model_cfg.yaml`` is silent)."""
    hidden = cfg.get("hidden_dim", 256)
    if not isinstance(hidden, int) or hidden <= 0:
        raise AuthorsImportError(f"{path}: hidden_dim must be a positive integer, not {hidden!r}")
    strides = _int_list(cfg, "downsample_strides", [1, 1, 1], path)
    kernels = _int_list(cfg, "downsample_kernels", [5, 3, 3], path)
    pairs = list(zip(strides, kernels))  # their FeatureProcessor zips the two lists
    if not pairs or any(k % 2 == 0 for _, k in pairs):
        raise AuthorsImportError(
            f"{path}: downsample_kernels must be odd (their padding keeps the frame count only then), got {kernels}"
        )
    targets = cfg.get("target_layers", list(range(1, n_layers + 1)))
    if not isinstance(targets, (list, tuple)):
        raise AuthorsImportError(f"{path}: target_layers must be a list, not {targets!r}")
    return {
        "hidden": hidden,
        "strides": [s for s, _ in pairs],
        "kernels": [k for _, k in pairs],
        "predictors": len(targets),
    }


def head_layout(n_layers: int, dim: int, head: dict) -> dict[str, tuple]:
    """Every key of their head's state dict and its shape (``model/predictor.py``, ``model/modules.py``)."""
    h = head["hidden"]
    shapes: dict[str, tuple] = {
        "weighted_sum.layer_weights": (n_layers,),
        LAYER_LOGITS: (n_layers,),
        "weighted_sum.out_proj.weight": (dim, dim),
        "weighted_sum.out_proj.bias": (dim,),
        "feature_processor.proj_in.weight": (h, dim, 1),
        "feature_processor.proj_in.bias": (h,),
    }

    def norm(prefix: str, batch: bool) -> None:
        names = ("weight", "bias", "running_mean", "running_var") if batch else ("weight", "bias")
        shapes.update({f"{prefix}.{name}": (h,) for name in names})
        if batch:
            shapes[f"{prefix}.num_batches_tracked"] = ()

    for i, kernel in enumerate(head["kernels"]):
        shapes[f"feature_processor.blocks.{i}.dw.weight"] = (h, 1, kernel)
        shapes[f"feature_processor.blocks.{i}.pw.weight"] = (h, h, 1)
        norm(f"feature_processor.blocks.{i}.bn", batch=True)
    norm("feature_processor.ln", batch=False)
    for j in range(head["predictors"]):
        for layer, rows in ((0, h), (2, h), (4, TOKEN_CLASSES)):
            shapes[f"predictors.{j}.layers.{layer}.weight"] = (rows, h)
            shapes[f"predictors.{j}.layers.{layer}.bias"] = (rows,)
    shapes.update(
        {
            "decoder.cnn.weight": (h, h, 3),
            "decoder.cnn.bias": (h,),
            "decoder.linear.weight": (h, 2 * h),
            "decoder.linear.bias": (h,),
            "linear.weight": (1, h),
            "linear.bias": (1,),
        }
    )
    for direction in ("", "_reverse"):
        shapes.update(
            {
                f"decoder.bilstm.weight_ih_l0{direction}": (4 * h, h),
                f"decoder.bilstm.weight_hh_l0{direction}": (4 * h, h),
                f"decoder.bilstm.bias_ih_l0{direction}": (4 * h,),
                f"decoder.bilstm.bias_hh_l0{direction}": (4 * h,),
            }
        )
    norm("decoder.batch_norm", batch=True)
    norm("decoder.layer_norm", batch=False)
    return shapes


def wavlm_config(cfg: dict, path: str) -> tuple[dict, str]:
    """``(s3prl WavLM config, where it came from)``: ``wavlm_cfg`` or their default, resolved by s3prl's
    ``WavLMConfig`` (their WavLM's, from Microsoft's ``WavLM.py``)."""
    from s3prl.upstream.wavlm.WavLM import WavLMConfig

    given = cfg.get("wavlm_cfg")
    if given is not None and not isinstance(given, dict):
        raise AuthorsImportError(f"{path}: wavlm_cfg must be a mapping, not {given!r}")
    origin = f"wavlm_cfg of {CONFIG_NAME}" if given else "their code's default (WavLM Base)"
    resolved = dict(vars(WavLMConfig(given or WAVLM_DEFAULT_CFG)))
    resolved["normalize"] = False  # their forward feeds the raw waveform, whatever the config says
    return resolved, origin


def w2v2_config(cfg: dict, path: str):
    """``(Wav2Vec2Config, where it came from)``: ``w2v2_cfg`` or the default config, as their code builds it."""
    from transformers import Wav2Vec2Config

    given = cfg.get("w2v2_cfg")
    if given is not None and not isinstance(given, dict):
        raise AuthorsImportError(f"{path}: w2v2_cfg must be a mapping, not {given!r}")
    try:
        config = Wav2Vec2Config(**(given or {}))
        hf_wav2vec2.model_cfg(config)  # refuses, before any work, what s3prl's wav2vec 2.0 cannot express
    except (TypeError, ValueError) as exc:  # ConversionError is a ValueError
        raise AuthorsImportError(f"{path}: w2v2_cfg {exc}") from exc
    return config, (f"w2v2_cfg of {CONFIG_NAME}" if given else "the default Wav2Vec2Config (wav2vec 2.0 Base)")


def backbone_layout(backbone: str, config) -> dict[str, tuple]:
    """Every key of the backbone's state dict (without ``ssl.``) and its shape."""
    if backbone == "wavlm":
        from s3prl.upstream.wavlm.WavLM import WavLM, WavLMConfig

        model = WavLM(WavLMConfig(config))  # its initialisation needs real tensors; Base builds in about a second
    else:
        from transformers import Wav2Vec2Model

        with torch.device("meta"):
            model = Wav2Vec2Model(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _align_weight_norm(state: dict, expected: dict) -> dict:
    """Rename a weight-normed convolution's ``weight_g/weight_v`` to ``parametrizations.weight.original0/1`` or
    back, to the naming of the installed library (the same tensors under torch's two APIs)."""
    pairs = ((".weight_g", ".parametrizations.weight.original0"), (".weight_v", ".parametrizations.weight.original1"))
    out = {}
    for key, value in state.items():
        for old, new in pairs + tuple((b, a) for a, b in pairs):
            if key.endswith(old) and key not in expected and key[: -len(old)] + new in expected:
                key = key[: -len(old)] + new
                break
        out[key] = value
    return out


def check_layout(state: dict, expected: dict, path: str, cfg_path: str, backbone: str) -> None:
    """One error naming ``path`` when ``state`` lacks keys, has others, or has other shapes than ``expected``."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} (expected {expected[k]})"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    if not (missing or unexpected or shapes):
        return
    other = "w2v2" if backbone == "wavlm" else "wavlm"
    marker = "ssl.encoder.pos_conv_embed.conv.bias" if other == "w2v2" else "ssl.encoder.pos_conv.0.bias"
    problems = [
        f"{len(items)} {what} ({', '.join(items[:3])}{', ...' if len(items) > 3 else ''})"
        for what, items in (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes))
        if items
    ]
    hint = (
        f"; it looks like the {other} model: use --backbone {other}"
        if marker in state
        else f"; is {cfg_path} its model_cfg.yaml?"
    )
    raise AuthorsImportError(
        f"{path}: not the authors' DistilMOS with the {backbone} backbone that {cfg_path} "
        f"describes: keys " + "; ".join(problems) + hint
    )


# ---- the conversion ----------------------------------------------------------------------------------------
def _head_state(state: dict, head: dict) -> tuple[dict, list[str]]:
    """``(downstream weights, dropped authors' keys)`` of their head."""
    kept, dropped = {}, []
    for key, value in state.items():
        prefix = next((p for p in HEAD_KEPT if key.startswith(p)), None)
        if prefix is not None:
            kept[HEAD_KEPT[prefix] + key[len(prefix) :]] = value
        elif any(key.startswith(p) for p in HEAD_DROPPED):
            dropped.append(key)
    kept["feature_processor.strides"] = torch.tensor(head["strides"], dtype=torch.long)
    return kept, sorted(dropped)


def _upstream_checkpoint(backbone: str, weights: dict, config) -> tuple[str, dict]:
    """``(s3prl kind, its *_local checkpoint)`` of the backbone weights (already checked by :func:`check_layout`)."""
    if backbone == "wavlm":
        return "wavlm", {"cfg": config, "model": weights}
    return "wav2vec2", hf_wav2vec2.to_s3prl(weights, config)


def _check_w2v2(weights: dict, config, model, source: str) -> None:
    """The s3prl upstream must give the hidden states of the ``transformers`` model it was converted from."""
    from transformers import Wav2Vec2Model

    reference = Wav2Vec2Model(config).eval()
    reference.load_state_dict(weights, strict=True)
    probe = 0.1 * torch.randn(SAMPLE_RATE // 2 + 123, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(probe[None], output_hidden_states=True).hidden_states
        got = model([probe])["hidden_states"]
    gap = max(float((e - g).abs().max()) for e, g in zip(expected, got)) if len(expected) == len(got) else math.inf
    if not gap <= 1e-4:
        raise AuthorsImportError(
            f"{source}: its wav2vec 2.0 backbone, converted to s3prl's, gives other hidden states "
            f"than transformers' Wav2Vec2Model (largest difference {gap:.3g}); nothing written"
        )


def _check_batching(blob: dict, source: str) -> None:
    """The rebuilt network scores probe waveforms finitely, and in one batch as one by one."""
    pipeline = build_pipeline(blob, source=source)
    generator = torch.Generator().manual_seed(0)
    probes = [0.1 * torch.randn(n, generator=generator) for n in (SAMPLE_RATE // 2, 12371)]  # 0.5 s, 0.77 s
    with torch.no_grad():
        alone = torch.cat([pipeline([p]) for p in probes])
        together = pipeline(probes)
    gap = float((alone - together).abs().max())
    if not (torch.isfinite(alone).all() and gap <= CHECK_TOLERANCE):
        raise AuthorsImportError(
            f"{source}: the imported network scores probes {alone.tolist()} alone and "
            f"{together.tolist()} batched; nothing written"
        )


def convert(ckpt_path: str, cfg_path: str, backbone: str, *, check: bool = True) -> tuple[dict, dict]:
    """``(predictor dict without its card, facts for the card)`` from the authors' two files."""
    cfg = read_model_cfg(cfg_path)
    state, wrapper = read_state_dict(ckpt_path)
    if backbone == "wavlm":
        config, origin = wavlm_config(cfg, cfg_path)
        n_layers, dim = int(config["encoder_layers"]), int(config["encoder_embed_dim"])
        final_norm = bool(config["layer_norm_first"])
    else:
        config, origin = w2v2_config(cfg, cfg_path)
        n_layers, dim = int(config.num_hidden_layers), int(config.hidden_size)
        final_norm = bool(config.do_stable_layer_norm)
    head = head_config(cfg, n_layers, cfg_path)
    backbone_shapes = backbone_layout(backbone, config)
    state = _align_weight_norm(state, {f"ssl.{k}" for k in backbone_shapes})
    expected = dict(head_layout(n_layers, dim, head), **{f"ssl.{k}": s for k, s in backbone_shapes.items()})
    check_layout(state, expected, ckpt_path, cfg_path, backbone)
    # their load_state_dict copies into float32 parameters; counters stay integers
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}

    weights = {k[len("ssl.") :]: v for k, v in state.items() if k.startswith("ssl.")}
    kind, checkpoint = _upstream_checkpoint(backbone, weights, config)
    name = f"{kind}_local"
    # their WavLM loop reads layer N before the encoder's final LayerNorm (the module docstring's "Layer N")
    before_norm = backbone == "wavlm" and final_norm
    model = upstream_entry.rebuild(
        {
            "kind": kind,
            "spec": {"name": name, "ckpt": None, "model_config": None},
            "checkpoint": checkpoint,
            upstream_entry.LAST_BEFORE_NORM: before_norm,
        },
        source=ckpt_path,
    )
    if check and backbone == "w2v2":
        _check_w2v2(weights, config, model, ckpt_path)
    configs = {k: v for k, v in checkpoint.items() if k not in ("model", "model_weight")}
    selector = FeatureSelector(
        downsample_rate=model.get_downsample_rates("hidden_states"),
        output_dim=dim,
        n_layers=n_layers,
        weighting="entmax15",
        first_layer=1,
    )
    selector.weights.data.copy_(state[LAYER_LOGITS])
    head_state, dropped = _head_state(state, head)
    down_entry, _ = downstreams.make_entry(MODEL_NAME, {downstreams.MODEL_PREFIX + k: v for k, v in head_state.items()})
    blob = {
        "upstream": upstream_entry.make_entry(model, name, None, None, configs),
        "featurizer": {"config": selector.config(), "state_dict": dict(selector.state_dict())},
        "downstream": down_entry,
    }
    if check:
        _check_batching(blob, ckpt_path)
    facts = {
        "wrapper": wrapper,
        "backbone_config": origin,
        "n_layers": n_layers,
        "dropped": dropped,
        "last_layer": LAST_LAYER[backbone] if final_norm else LAST_LAYER_POST_LN,
        "dropped_numel": int(sum(state[k].numel() for k in dropped)),
        "layer_weights": [round(float(w), 6) for w in selector.layer_weights()],
        "upstream_parameters": _count(model),
        "downstream_parameters": _count(downstreams.build(down_entry)),
    }
    return blob, facts


def _count(module: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def _repo_file(path: str, backbone: str) -> str:
    """The file's path in the authors' repository when its folder says so (``wavlm/model.pth.tar``)."""
    folder, name = os.path.split(os.path.abspath(path))
    return f"{backbone}/{name}" if os.path.basename(folder) == backbone else name


def model_card(ckpt_path: str, cfg_path: str, backbone: str, blob: dict, facts: dict) -> dict:
    """The imported model's card: where it came from, what it runs, how it differs from the paper."""
    import s3prl

    dropped = {p.rstrip("."): why for p, why in HEAD_DROPPED.items() if any(k.startswith(p) for k in facts["dropped"])}
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "sample_rate": SAMPLE_RATE,
        "source": {
            "repo": f"https://huggingface.co/{HF_REPO}",
            "code": CODE_REPO,
            "backbone": backbone,
            "checkpoint": {
                "file": _repo_file(ckpt_path, backbone),
                "path": os.path.abspath(ckpt_path),
                "sha256": sha256_file(ckpt_path),
                "state_dict_under": facts["wrapper"],
            },
            "config": {
                "file": _repo_file(cfg_path, backbone),
                "path": os.path.abspath(cfg_path),
                "sha256": sha256_file(cfg_path),
            },
        },
        "upstream": {
            "name": blob["upstream"]["spec"]["name"],
            "kind": blob["upstream"]["kind"],
            "embedded": True,
            "fine_tuned": True,
            "config": facts["backbone_config"],
            "checkpoint": None,
            "parameters": facts["upstream_parameters"],
        },
        "featurizer": {
            "weighting": "entmax15",
            "layers": f"1..{facts['n_layers']}",
            "layer_weights": facts["layer_weights"],
            "last_layer": facts["last_layer"],
        },
        "downstream": {
            "expert": MODEL_NAME,
            "variant": "authors",
            "model": blob["downstream"]["class_name"],
            "parameters": facts["downstream_parameters"],
            "system_classes": None,
            "dropped": {
                "keys": len(facts["dropped"]),
                "numel": facts["dropped_numel"],
                "modules": sorted(dropped),
                "why": dropped,
            },
        },
        "differences_from_paper": list(DIFFERENCES),
        "batching": BATCHING,
        "toolkit": {
            "distilmos": distilmos.__version__,
            "torch": str(torch.__version__),
            "s3prl": str(getattr(s3prl, "__version__", None)),
            "python": platform.python_version(),
        },
    }


def fetch(source: Sequence[str], backbone: str) -> tuple[list[str], HubRef | None]:
    """``--source`` with its ``hf://`` references fetched through the hub cache (:func:`sources.resolve`): the
    repository (``hf://BaleYang/DistilMOS``: its ``<backbone>/`` folder) or a folder of it gives that folder's
    ``model.pth.tar`` and ``model_cfg.yaml``; a file reference gives that file. Returns the local paths and the
    (last) hub reference, or ``None`` when every source was local."""
    paths, hub = [], None
    for ref in map(os.fspath, source):
        if not sources.is_hub(ref):
            paths.append(ref)
            continue
        hub = sources.parse_hub(ref)
        if "." in hub.path.rsplit("/", 1)[-1]:  # a file
            paths.append(sources.resolve(str(hub)))
            continue
        folder = hub if hub.path else hub.child(backbone)
        paths += [sources.resolve(str(folder.child(name))) for name in (CHECKPOINT_NAME, CONFIG_NAME)]
    return paths, hub


def import_authors(source: Sequence[str] | str, backbone: str, out: str, *, check: bool = True) -> dict:
    """Write the predictor file ``out`` from the authors' checkpoint of ``backbone`` (``wavlm`` or ``w2v2``) found
    at ``source`` (local paths, see :func:`locate`, or ``hf://`` references, see :func:`fetch`); return its card."""
    paths, hub = fetch([source] if isinstance(source, (str, os.PathLike)) else source, backbone)
    ckpt_path, cfg_path = locate(paths, backbone)
    if os.path.isdir(out):
        raise AuthorsImportError(f"{out}: is a folder; -o takes the predictor file to write")
    blob, facts = convert(ckpt_path, cfg_path, backbone, check=check)
    blob["card"] = model_card(ckpt_path, cfg_path, backbone, blob, facts)
    if hub is not None:  # where it was fetched from, to the commit
        blob["card"]["source"].update(
            repo=f"https://huggingface.co/{hub.repo_id}", commit=sources.hub_commit(ckpt_path)
        )
    write_predictor(blob, out, check=True)
    return blob["card"]
