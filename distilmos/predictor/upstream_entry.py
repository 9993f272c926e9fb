"""Putting a (fine-tuned) s3prl upstream into a predictor file, and getting it back.

Two kinds of entry:

- **embedded** (``kind`` = ``wavlm``, ``hubert`` or ``wav2vec2``): s3prl's own WavLM / HuBERT / wav2vec 2.0
  upstreams, whatever hub name built them (``wavlm_large``, ``hubert_base``, ``wav2vec2_base_960``, the
  ``*_local`` ones, ...). The entry is a checkpoint in the exact format of s3prl's ``<kind>_local`` loader
  (architecture config + the fine-tuned weights), so rebuilding needs nothing but s3prl's model code: it is
  written to a temporary file and loaded by ``<kind>_local``, the same expert class the runner used. A
  HuBERT / wav2vec 2.0 whose attention heads were pruned also carries each layer's head count
  (``attention_heads``; :mod:`distilmos.predictor.heads`). A WavLM may say that its last hidden state is
  the last transformer layer's output *before* the encoder's final LayerNorm
  (``last_layer_before_final_norm: true``; absent: s3prl's encoder output), for models whose head was
  trained on that (:mod:`distilmos.predictor.import_authors`); only a ``layer_norm_first`` WavLM (Large)
  has such a LayerNorm, elsewhere the two are the same tensor.
- **waveform** (``kind`` = ``waveform``): no upstream at all; the model reads the 16 kHz waveform itself
  (the compact students of ``egs/compress``). :class:`WaveformUpstream` hands it over as one "layer".
- **spec** (any other upstream: another hub name, ``package.module:callable``): the spec (name, ``-k``
  checkpoint, ``-g`` model config) and the fine-tuned weights. Rebuilding calls the hub or the callable
  again, so the original upstream must be reachable (installed, downloadable or at its path); the weights
  are then replaced by the stored ones.

Trust: a predictor file is data, and loading it runs no code it names. An embedded or waveform entry is
rebuilt through s3prl's own classes (or none), and a spec entry naming an s3prl hub upstream alone
through s3prl's hub registry. A spec entry naming a ``module:callable`` (imported and called), or a
checkpoint or model config (loaded by the hub upstream's loader, some of which unpickle it), is refused
with :class:`RemoteCodeError` unless the caller opts in with ``trust_remote_code=True``
(``distilmos-predict score --trust_remote_code``), as the Hugging Face libraries do.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any
from unittest import mock

import torch
import torch.nn as nn

from distilmos.errors import ToolkitError
from distilmos.predictor import heads as heads_mod
from distilmos.upstream.build import UpstreamSpecError, build_upstream, is_callable_spec
from distilmos.upstream.padding_exact import make_padding_exact

EMBEDDED = ("wavlm", "hubert", "wav2vec2")
WAVEFORM = "waveform"
#: the optional key of a WavLM entry (see the module docstring); also the identifier of the hook it installs
LAST_BEFORE_NORM = "last_layer_before_final_norm"


class UpstreamRebuildError(ToolkitError, RuntimeError):
    """An upstream that cannot be rebuilt from a predictor file; the message says what is missing."""


class RemoteCodeError(UpstreamRebuildError):
    """A predictor file whose upstream would run code from outside the file, loaded without
    ``trust_remote_code``; the message names the file, what it would run, and how to opt in."""


#: how a user opts in to a predictor file that runs code from outside it
TRUST_HINT = (
    "if you trust the file and where it came from, load it with --trust_remote_code "
    "(distilmos-predict score) or trust_remote_code=True (distilmos.predictor.load)"
)


def _expert_class(kind: str):
    return importlib.import_module(f"s3prl.upstream.{kind}.expert").UpstreamExpert


def embedded_kind(upstream: nn.Module) -> str | None:
    """``wavlm``, ``hubert`` or ``wav2vec2`` for s3prl's own expert of that family, else ``None``."""
    for kind in EMBEDDED:
        if type(upstream) is _expert_class(kind):
            return kind
    return None


@contextlib.contextmanager
def _recording_converted_loads() -> Iterator[list]:
    """Record the checkpoint paths s3prl's HuBERT / wav2vec 2.0 experts load.

    Their models keep no copy of the configs they were built from (WavLM's expert does: ``.cfg``), so the
    configs are read back from the checkpoint the expert loaded, whichever hub name resolved it.
    """
    seen: list = []
    patches = []
    for kind in ("hubert", "wav2vec2"):
        module = importlib.import_module(f"s3prl.upstream.{kind}.expert")
        original = module.load_converted_model

        def recording(ckpt, _original=original):
            seen.append(ckpt)
            return _original(ckpt)

        patches.append(mock.patch.object(module, "load_converted_model", recording))
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield seen


def build_for_export(name: str, ckpt: str | None, model_config: str | None) -> tuple[nn.Module, dict]:
    """Build the upstream of an experiment as the runner does; return it and the configs an embedded
    entry needs (empty for a spec entry)."""
    with _recording_converted_loads() as seen:
        upstream = build_upstream(name, ckpt, model_config)
    kind = embedded_kind(upstream)
    configs: dict[str, Any] = {}
    if kind == "wavlm":
        configs["cfg"] = dict(vars(upstream.cfg))
    elif kind in ("hubert", "wav2vec2"):
        if not seen:
            raise UpstreamRebuildError(f"upstream {name!r}: could not find the checkpoint its {kind} expert loaded")
        source = torch.load(seen[-1], map_location="cpu", weights_only=True, mmap=True)
        configs["task_cfg"] = dict(source["task_cfg"])
        configs["model_cfg"] = dict(source["model_cfg"])
        if kind == "hubert":
            configs["dictionaries_symbols"] = source["dictionaries_symbols"]
    return upstream, configs


def make_entry(upstream: nn.Module, name: str, ckpt: str | None, model_config: str | None, configs: dict) -> dict:
    """The predictor-file entry of a built (and fine-tuned) upstream; see the module docstring."""
    spec = {"name": name, "ckpt": ckpt, "model_config": model_config}
    kind = embedded_kind(upstream)
    if kind is None:
        return {"kind": "spec", "spec": spec, "state_dict": _plain_state(upstream)}
    inner = set(upstream.state_dict()) - {f"model.{k}" for k in upstream.model.state_dict()}
    if inner:  # s3prl's experts keep every weight in .model; anything else would be lost
        raise UpstreamRebuildError(f"upstream {name!r}: weights outside .model: {sorted(inner)[:5]}")
    weights = _plain_state(upstream.model)
    if kind == "wavlm":
        checkpoint = {"cfg": configs["cfg"], "model": weights}
    else:
        checkpoint = {"task_cfg": configs["task_cfg"], "model_cfg": configs["model_cfg"], "model_weight": weights}
        if kind == "hubert":
            checkpoint["dictionaries_symbols"] = configs["dictionaries_symbols"]
    entry = {"kind": kind, "spec": spec, "checkpoint": checkpoint}
    if any(hook.unique_identifier == LAST_BEFORE_NORM for hook in upstream.hooks):
        entry[LAST_BEFORE_NORM] = True
    if kind in heads_mod.HEAD_KINDS:  # a head-pruned upstream (distilmos.compress.prune)
        heads = heads_mod.head_counts(upstream, int(configs["model_cfg"]["encoder_attention_heads"]))
        if heads is not None:
            entry["attention_heads"] = heads
    return entry


def _plain_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


class WaveformUpstream(nn.Module):
    """The upstream of a model that reads the waveform itself: the padded batch ``[batch, samples, 1]`` as
    its only hidden state, one frame per sample.

    It declares a one-sample "front end" (``padding_exact_convs``), so the predictor cuts each utterance at
    its own sample count and batches without a padding cap: the models behind it (the students) mask
    every frame beyond an utterance's length themselves.
    """

    padding_exact_convs = ((1, 1),)

    def get_downsample_rates(self, key: str = "hidden_states") -> int:
        return 1

    def forward(self, wavs):
        padded = torch.nn.utils.rnn.pad_sequence(list(wavs), batch_first=True)
        return {"hidden_states": [padded.unsqueeze(-1)], "last_hidden_state": padded.unsqueeze(-1)}


def waveform_entry() -> dict:
    """The predictor-file entry of :class:`WaveformUpstream` (nothing to store but its kind)."""
    return {"kind": WAVEFORM, "spec": {"name": WAVEFORM, "ckpt": None, "model_config": None}}


def remote_code(entry: dict) -> str | None:
    """What rebuilding a spec entry would run or load from outside the file (see the module docstring),
    or None when it runs nothing but s3prl's hub."""
    if entry.get("kind") != "spec":
        return None
    spec = entry["spec"]
    if is_callable_spec(spec["name"]):
        return f"it names the callable {spec['name']!r}, which loading would import and call"
    paths = [p for p in (spec.get("ckpt"), spec.get("model_config")) if p]
    if paths:
        return (
            f"its upstream {spec['name']!r} would load {' and '.join(map(repr, paths))}, which s3prl's loaders "
            "may unpickle, or the upstream may import (running code)"
        )
    return None


def check_entry(entry) -> list:
    """What is wrong with the structure of a predictor file's ``upstream`` section (empty: nothing)."""
    if not isinstance(entry, dict):
        return [f"its upstream section is a {type(entry).__name__}, not a dict"]
    kind = entry.get("kind")
    if kind not in EMBEDDED + (WAVEFORM, "spec"):
        return [f"its upstream kind is {kind!r}, not one of {', '.join(EMBEDDED + (WAVEFORM, 'spec'))}"]
    spec = entry.get("spec")
    if (
        not isinstance(spec, dict)
        or not isinstance(spec.get("name"), str)
        or not all(isinstance(spec.get(key), (str, type(None))) for key in ("ckpt", "model_config"))
    ):
        return [f"its upstream spec is {spec!r}, not {{name: str, ckpt: str or None, model_config: str or None}}"]
    if kind == "spec":
        return [] if _is_weights(entry.get("state_dict")) else ["its upstream state_dict is not a dict of tensors"]
    if kind == WAVEFORM:
        return []
    checkpoint = entry.get("checkpoint")
    if not isinstance(checkpoint, dict):
        return [f"its {kind} upstream checkpoint is a {type(checkpoint).__name__}, not a dict"]
    if kind == "wavlm":
        configs, weights = ("cfg",), "model"
    else:
        configs, weights = ("task_cfg", "model_cfg"), "model_weight"
    problems = [
        f"its {kind} upstream checkpoint's {key} is not a dict"
        for key in configs
        if not isinstance(checkpoint.get(key), dict)
    ]
    if not _is_weights(checkpoint.get(weights)):
        problems.append(f"its {kind} upstream checkpoint's {weights} is not a dict of tensors")
    if kind == "hubert" and not isinstance(checkpoint.get("dictionaries_symbols"), list):
        problems.append("its hubert upstream checkpoint's dictionaries_symbols is not a list")
    heads = entry.get("attention_heads")
    if heads is not None and not (isinstance(heads, list) and all(type(n) is int and n >= 0 for n in heads)):
        problems.append(f"its upstream attention_heads is {heads!r}, not a list of head counts")
    return problems


def _is_weights(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def take_last_layer_before_final_norm(upstream: nn.Module) -> None:
    """Make a built s3prl WavLM expert's last hidden state the last transformer layer's output, before the
    encoder's final LayerNorm (a ``layer_norm_first`` encoder applies one to its output).

    The expert gathers its hidden states by forward hooks (``UpstreamBase.hooks``): the input of each
    ``model.encoder.layers[i]``, then the output of ``model.encoder``. That last hook is replaced by one on
    the last layer's output (``TransformerSentenceEncoderLayer`` returns ``(x [T, B, D], attn, pos_bias)``),
    which fires at the same point of the forward, so the hidden states keep their count and order.
    """
    last = upstream.hooks[-1] if upstream.hooks else None
    if last is None or last.module_path != "self.model.encoder":  # another s3prl: its hooks are not known here
        raise UpstreamRebuildError(
            f"the WavLM expert's last hook is {getattr(last, 'module_path', None)!r}, "
            "not the encoder's output; cannot take the last layer before its final LayerNorm"
        )
    upstream.remove_hook(last.unique_identifier)
    upstream.add_hook(
        f"self.model.encoder.layers[{len(upstream.model.encoder.layers) - 1}]",
        lambda input, output: output[0].transpose(0, 1),
        unique_identifier=LAST_BEFORE_NORM,
    )


def rebuild(entry: dict, source: str = "predictor file", trust_remote_code: bool = False) -> nn.Module:
    """The upstream of a predictor-file entry, in eval mode, on the CPU.

    A spec entry that would run code from outside the file (:func:`remote_code`) raises
    :class:`RemoteCodeError` unless ``trust_remote_code``.
    """
    kind = entry.get("kind")
    before_norm = entry.get(LAST_BEFORE_NORM, False)
    if not isinstance(before_norm, bool) or (before_norm and kind != "wavlm"):
        raise UpstreamRebuildError(
            f"{source}: upstream {LAST_BEFORE_NORM} is {before_norm!r} for a {kind!r} "
            "upstream; it can only be true or false, and true only for a WavLM"
        )
    if kind == WAVEFORM:
        return WaveformUpstream().eval()
    if kind in EMBEDDED:
        hubconf = importlib.import_module(f"s3prl.upstream.{kind}.hubconf")
        loader = getattr(hubconf, f"{kind}_local")
        checkpoint, heads = entry["checkpoint"], entry.get("attention_heads")
        if heads is not None:
            cfg = checkpoint["model_cfg"]
            checkpoint = dict(
                checkpoint,
                model_weight=heads_mod.expand_weights(
                    checkpoint["model_weight"],
                    heads,
                    int(cfg["encoder_attention_heads"]),
                    int(cfg["encoder_embed_dim"]),
                ),
            )
        with tempfile.TemporaryDirectory(prefix="distilmos-upstream-") as tmp:
            path = os.path.join(tmp, f"{kind}.pt")
            torch.save(checkpoint, path)
            upstream = loader(ckpt=path)
        if heads is not None:
            heads_mod.remove_padded_heads(upstream, heads)
        if before_norm:
            take_last_layer_before_final_norm(upstream)
    elif kind == "spec":
        spec = entry["spec"]
        risk = remote_code(entry)
        if risk and not trust_remote_code:
            raise RemoteCodeError(f"{source}: refused to load: {risk}; {TRUST_HINT}")
        try:
            upstream = build_upstream(spec["name"], spec.get("ckpt"), spec.get("model_config"))
        except (UpstreamSpecError, OSError, ImportError, AssertionError) as exc:
            raise UpstreamRebuildError(
                f"{source}: its upstream {spec['name']!r} is not embedded (only WavLM, HuBERT and wav2vec 2.0 are); "
                f"rebuilding it needs the original upstream reachable (checkpoint {spec.get('ckpt')!r}): {exc}"
            ) from exc
        missing, unexpected = upstream.load_state_dict(entry["state_dict"], strict=False)
        if missing or unexpected:
            raise UpstreamRebuildError(
                f"{source}: upstream {spec['name']!r} rebuilt with other weights than the stored ones "
                f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
            )
    else:
        raise UpstreamRebuildError(f"{source}: unknown upstream kind {kind!r}")
    make_padding_exact(upstream)
    upstream.eval()
    for param in upstream.parameters():
        param.requires_grad_(False)
    return upstream
