"""Training and evaluating a frozen-upstream run from a feature cache (:mod:`upstream_tokens.feature_cache`).

With ``-o config.downstream_expert.datarc.feature_cache=STORE`` (and no ``-f``), the experts' datasets
yield each utterance's cached hidden states (``[n_layers, frames, dim]``) where they would yield its
waveform, and the runner's upstream is replaced by :class:`CachedUpstream`, which turns a batch of them
into the dict the upstream would have returned. s3prl's ``Featurizer`` (its layer weights still train),
the experts and the training loop run unchanged; the upstream's forward is never run after start-up.
A run from the cache gives the predictions and metrics of the same run with the upstream in the loop.
"""

from __future__ import annotations

import types

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pad_sequence

from distilmos.errors import ConfigError

#: feature selections (``-s``) a cache can serve
CACHEABLE = ("hidden_states", "last_hidden_state", "hidden_state_<n>")


def needed_layers(feature_selection: str, layer_selection: int | None, n_layers: int) -> list[int]:
    """The hidden states (0..``n_layers``) a run's featurizer reads, from its ``-s`` and ``-l``."""
    selection = feature_selection or "hidden_states"
    if selection == "hidden_states":
        if layer_selection is None:
            return list(range(n_layers + 1))
        return [int(layer_selection) % (n_layers + 1)]
    if selection == "last_hidden_state":
        return [n_layers]
    if selection.startswith("hidden_state_") and selection[len("hidden_state_") :].isdigit():
        return [int(selection[len("hidden_state_") :])]
    raise ConfigError(
        f"datarc.feature_cache: -s {selection!r} cannot be read from a feature cache "
        f"(it holds hidden states: -s {', '.join(CACHEABLE)})"
    )


class CachedUpstream(nn.Module):
    """Stands in for a frozen upstream: ``forward(items)``, ``items`` being cached ``[n_layers, frames, dim]``
    tensors (row ``i`` = hidden state ``layers[i]``), returns ``hidden_states`` (the full list when every
    layer is cached; else a list holding only the cached ones at their places), ``hidden_state_<n>`` and
    ``last_hidden_state``, each padded to ``[batch, frames, dim]``."""

    def __init__(self, layers: list[int], n_layers: int, downsample_rate: int):
        super().__init__()
        self.layers = [int(n) for n in layers]
        self.n_layers = int(n_layers)
        self.downsample_rate = int(downsample_rate)

    def get_downsample_rates(self, key: str) -> int:
        return self.downsample_rate

    def forward(self, items: list[torch.Tensor]) -> dict[str, object]:
        padded = pad_sequence([x.transpose(0, 1) for x in items], batch_first=True)  # [B, T, L, D]
        by_layer = {n: padded[:, :, i] for i, n in enumerate(self.layers)}
        out: dict[str, object] = {f"hidden_state_{n}": h for n, h in by_layer.items()}
        out["hidden_states"] = [by_layer.get(n) for n in range(self.n_layers + 1)]
        if self.n_layers in by_layer:
            out["last_hidden_state"] = by_layer[self.n_layers]
        return out


def _cut_at_cached_frames(self, paired_wavs: list[torch.Tensor], paired_feature: torch.Tensor) -> list[torch.Tensor]:
    return [f[: item.shape[1]] for f, item in zip(paired_feature, paired_wavs)]


def cut_featurizer(featurizer: nn.Module) -> None:
    """Make an s3prl ``Featurizer`` keep each utterance's cached frame count (its own rule counts samples)."""
    featurizer.tolist = types.MethodType(_cut_at_cached_frames, featurizer)


def open_cache(
    path: str,
    upstream: str,
    upstream_ckpt: str | None,
    feature_selection: str,
    layer_selection: int | None,
    fine_tune: bool,
):
    """The feature cache of a run, checked against its upstream, checkpoint and featurizer selection."""
    if fine_tune:
        raise ConfigError(
            f"datarc.feature_cache={path}: a cache holds the pretrained upstream's hidden states, and -f fine-tunes "
            "the upstream, so they would be stale after the first step; drop -f, or drop the cache"
        )
    from distilmos.data.stores import FeatureStore

    store = FeatureStore(path)
    store.check(upstream, upstream_ckpt, needed_layers(feature_selection, layer_selection, store.n_layers_upstream))
    return store


def upstream_for(store) -> CachedUpstream:
    """The stand-in upstream of a checked cache."""
    return CachedUpstream(store.layers, store.n_layers_upstream, store.downsample_rate)
