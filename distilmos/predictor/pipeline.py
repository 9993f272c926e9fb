"""The inference network: upstream -> featurizer -> the expert's inference model, as s3prl's runner
computes it at evaluation.

What the runner does for a batch of 16 kHz waveforms (``Runner.evaluate``) and what is reproduced here:

1. ``upstream(wavs)``: the s3prl upstream pads the batch itself and returns its hidden states;
2. s3prl's ``Featurizer``: picks ``feature_selection`` from the upstream's output (falling back to
   ``hidden_states``), a single layer if ``layer_selection`` is set, else the softmax-weighted sum of all
   layers (each optionally layer-normalised first; imported models may weigh ``hidden_states[first_layer:]``
   with 1.5-entmax instead, see :class:`FeatureSelector`); then cuts each utterance to its frame count: the
   front end's exact count for a padding-exact upstream (:mod:`distilmos.upstream.padding_exact`, as the plugin
   runner's featurizer does), else s3prl's ``round(len(wav) / downsample_rate)``;
3. the expert (:class:`distilmos.train.expert_base.MOSExpert`): pads the per-utterance features again and calls
   its inference model with their lengths.
"""

from __future__ import annotations

import typing

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from distilmos.models.entmax import entmax15
from distilmos.upstream.padding_exact import frame_counts, is_padding_exact, min_samples

# s3prl's Featurizer refuses a padded batch whose frame count is this far off the expected one
TOLERABLE_FRAME_DIFF = 5
#: how layer weights become a convex combination: s3prl's softmax, or 1.5-entmax (the DistilMOS authors' code)
WEIGHTINGS = ("softmax", "entmax15")


class FeatureSelector(nn.Module):
    """s3prl's ``Featurizer`` at inference time (step 2 of the module docstring), without its probe forward.

    ``weighting`` and ``first_layer`` describe featurizers that are not s3prl's (models imported by
    :mod:`distilmos.predictor.import_authors`): the weighted sum then runs over ``hidden_states[first_layer:]``
    (1: the transformer layers, without the front end's output) with ``weighting`` of the weights.
    """

    def __init__(
        self,
        feature_selection: str = "hidden_states",
        layer_selection: int | None = None,
        normalize: bool = False,
        downsample_rate: int = 320,
        output_dim: int = 0,
        n_layers: int | None = None,
        weighting: str = "softmax",
        first_layer: int = 0,
    ):
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ValueError(f"featurizer weighting {weighting!r}: choose from {', '.join(WEIGHTINGS)}")
        self.weighting = weighting
        self.first_layer = int(first_layer)
        self.feature_selection = feature_selection
        self.layer_selection = layer_selection
        self.normalize = normalize
        self.downsample_rate = int(downsample_rate)
        self.output_dim = int(output_dim)
        self.weights = nn.Parameter(torch.zeros(n_layers), requires_grad=False) if n_layers else None

    @classmethod
    def from_s3prl(cls, featurizer: nn.Module) -> FeatureSelector:
        """The same selection as a (trained) s3prl ``Featurizer``, whose attributes are already resolved."""
        weights = getattr(featurizer, "weights", None)
        selector = cls(
            featurizer.feature_selection,
            featurizer.layer_selection,
            featurizer.normalize,
            featurizer.downsample_rate,
            featurizer.output_dim,
            n_layers=len(weights) if weights is not None else None,
        )
        if weights is not None:
            selector.weights.data.copy_(weights.detach())
        return selector

    @classmethod
    def check_config(cls, config) -> list:
        """What is wrong with a stored :meth:`config` (empty: nothing): an argument the constructor does not
        take, or a value of another type than its annotation."""
        if not isinstance(config, dict):
            return [f"its featurizer config is a {type(config).__name__}, not a dict"]
        hints = {k: v for k, v in typing.get_type_hints(cls.__init__).items() if k != "return"}
        problems = [f"its featurizer config has an unknown key {key!r}" for key in config if key not in hints]
        for key, value in config.items():
            allowed = typing.get_args(hints.get(key)) or (hints.get(key),)
            if key in hints and (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)):
                problems.append(
                    f"its featurizer config's {key} is {value!r}, not {' or '.join(t.__name__ for t in allowed)}"
                )
        return problems

    def config(self) -> dict:
        """Plain constructor arguments (with :meth:`state_dict`, what a predictor file stores)."""
        config = {
            "feature_selection": self.feature_selection,
            "layer_selection": self.layer_selection,
            "normalize": bool(self.normalize),
            "downsample_rate": self.downsample_rate,
            "output_dim": self.output_dim,
            "n_layers": None if self.weights is None else len(self.weights),
        }
        if self.weighting != "softmax" or self.first_layer:  # s3prl's own featurizers keep their keys alone
            config.update(weighting=self.weighting, first_layer=self.first_layer)
        return config

    def layer_weights(self) -> torch.Tensor:
        """The normalised weights of the weighted sum (non-negative, summing to 1)."""
        return entmax15(self.weights) if self.weighting == "entmax15" else F.softmax(self.weights, dim=-1)

    def select(self, upstream_out: dict) -> torch.Tensor:
        """``[batch, frames, dim]``: the chosen layer or the weighted sum of the chosen layers."""
        feature = upstream_out.get(self.feature_selection)
        if feature is None:
            raise ValueError(f"the upstream gave no {self.feature_selection!r}; it gave {sorted(upstream_out)}")
        if isinstance(feature, dict):
            feature = list(feature.values())
        if isinstance(feature, (list, tuple)) and len(feature) == 1:
            feature = feature[0]
        if isinstance(feature, (list, tuple)) and isinstance(self.layer_selection, int):
            feature = feature[self.layer_selection]
        if not isinstance(feature, (list, tuple)):
            return feature
        feature = feature[self.first_layer :]
        if self.weights is None or len(feature) != len(self.weights):
            raise ValueError(
                f"the upstream gave {len(feature)} layers, the featurizer was trained on "
                f"{None if self.weights is None else len(self.weights)}"
            )
        stacked = torch.stack(list(feature), dim=0)
        if self.normalize:
            stacked = F.layer_norm(stacked, (stacked.shape[-1],))
        layers, *shape = stacked.shape
        weighted = (self.layer_weights().unsqueeze(-1) * stacked.view(layers, -1)).sum(dim=0)
        return weighted.view(*shape)

    def frame_counts(self, wavs: list[torch.Tensor]) -> list[int]:
        """Frames kept per utterance, as s3prl's Featurizer counts them."""
        return [round(len(wav) / self.downsample_rate) for wav in wavs]

    def forward(
        self, wavs: list[torch.Tensor], upstream_out: dict, counts: list[int] | None = None
    ) -> list[torch.Tensor]:
        """Per-utterance features ``[frames_i, dim]``, cut at ``counts`` (default: :meth:`frame_counts`)."""
        feature = self.select(upstream_out)
        expected = round(max(len(w) for w in wavs) / self.downsample_rate)
        if abs(feature.size(1) - expected) >= TOLERABLE_FRAME_DIFF:
            raise ValueError(
                f"the upstream gave {feature.size(1)} frames for {max(len(w) for w in wavs)} samples; "
                f"expected about {expected} at downsample rate {self.downsample_rate}"
            )
        return [f[:n] for f, n in zip(feature, counts or self.frame_counts(wavs))]


class PredictorPipeline(nn.Module):
    """Waveforms (16 kHz, mono, 1-D) -> MOS predictions; see the module docstring."""

    def __init__(self, upstream: nn.Module, featurizer: FeatureSelector, downstream: nn.Module):
        super().__init__()
        self.upstream = upstream
        self.featurizer = featurizer
        self.downstream = downstream

    def analyze(self, wavs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Everything on the inference path for one batch.

        Returns the downstream model's outputs (``pred [batch]``; for DistilMOS also the Feature Processor
        output ``processed [batch, frames, 256]`` and the frame ``mask``; for SSL-MOS the pooled
        ``utterance`` vectors) plus ``features`` (the featurizer output, padded, ``[batch, frames, dim]``),
        ``lengths`` (valid frames per utterance) and ``hidden_states`` (the upstream's layers, padded;
        ``hidden_states[-1]`` is the last layer).
        """
        device = self._device()
        wavs = [w.to(device=device, dtype=torch.float32) for w in wavs]
        upstream_out = self.upstream(wavs)
        features = self.featurizer(wavs, upstream_out, frame_counts(self.upstream, [len(w) for w in wavs]))
        lengths = torch.tensor([len(f) for f in features], device=device)
        padded = pad_sequence(features, batch_first=True)
        out = dict(self.downstream(padded, lengths))
        out.update(features=padded, lengths=lengths, hidden_states=tuple(upstream_out.get("hidden_states") or ()))
        return out

    def forward(self, wavs: list[torch.Tensor]) -> torch.Tensor:
        """``pred [batch]`` for a list of waveforms."""
        return self.analyze(wavs)["pred"]

    @property
    def batch_independent(self) -> bool:
        """Whether padding cannot move a score (a padding-exact upstream), so batches may mix lengths freely."""
        return is_padding_exact(self.upstream)

    def num_parameters(self) -> int:
        """The weights scoring uses: upstream, featurizer and inference model."""
        return int(sum(p.numel() for p in self.parameters()))

    @property
    def min_samples(self) -> int:
        """The shortest input (16 kHz samples) that gives the upstream a frame (0: not known)."""
        return min_samples(self.upstream) or 0

    def _device(self) -> torch.device:
        param = next(self.parameters(), None)
        return param.device if param is not None else torch.device("cpu")
