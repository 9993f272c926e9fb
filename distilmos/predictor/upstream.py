"""Putting a (fine-tuned) s3prl upstream into a predictor file, and getting it back.

Two kinds of entry:

- **embedded** (``kind`` = ``wavlm``, ``hubert`` or ``wav2vec2``): s3prl's own WavLM / HuBERT / wav2vec 2.0
  upstreams, whatever hub name built them (``wavlm_large``, ``hubert_base``, ``wav2vec2_base_960``, the
  ``*_local`` ones, ...). The entry is a checkpoint in the exact format of s3prl's ``<kind>_local`` loader
  (architecture config + the fine-tuned weights), so rebuilding needs nothing but s3prl's model code: it is
  written to a temporary file and loaded by ``<kind>_local``, the same expert class the runner used. A
  HuBERT / wav2vec 2.0 whose attention heads were pruned also carries each layer's head count
  (``attention_heads``; :mod:`distilmos.predictor.heads`).
- **waveform** (``kind`` = ``waveform``): no upstream at all; the model reads the 16 kHz waveform itself
  (the compact students of ``egs/compress``). :class:`WaveformUpstream` hands it over as one "layer".
- **spec** (any other upstream: another hub name, ``package.module:callable``): the spec (name, ``-k``
  checkpoint, ``-g`` model config) and the fine-tuned weights. Rebuilding calls the hub or the callable
  again, so the original upstream must be reachable (installed, downloadable or at its path); the weights
  are then replaced by the stored ones.
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
from distilmos.padding_exact import make_padding_exact
from distilmos.predictor import heads as heads_mod
from distilmos.upstreams import UpstreamSpecError, build_upstream

EMBEDDED = ("wavlm", "hubert", "wav2vec2")
WAVEFORM = "waveform"


class UpstreamRebuildError(ToolkitError, RuntimeError):
    """An upstream that cannot be rebuilt from a predictor file; the message says what is missing."""


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


def rebuild(entry: dict, source: str = "predictor file") -> nn.Module:
    """The upstream of a predictor-file entry, in eval mode, on the CPU."""
    kind = entry.get("kind")
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
    elif kind == "spec":
        spec = entry["spec"]
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
