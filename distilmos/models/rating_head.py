"""Two options any expert's inference model can take: listener conditioning with a learnt mean listener
(LDNet, Huang et al., ICASSP 2022: "all listeners + mean listener" training, MeanNet-free inference), and
an uncertainty head (a mean and a log-variance per utterance, trained by Gaussian negative log-likelihood,
as SHEET's SSL-MOS with uncertainty).

:class:`RatingHead` wraps an expert's model (``base``, any of :mod:`distilmos.models`) without changing it:

- listener conditioning: a listener's embedding (``listener_dim``) is projected to the feature dimension
  and added to every valid frame of the features the base model reads, so every expert can be conditioned
  the same way, whatever its architecture. The one embedding the model itself holds is the *mean
  listener*'s (``mean_listener``); the embeddings of the training listeners live in the expert
  (training only), so an exported model knows no listener table and always predicts as the mean listener.
  For a linear head such as SSL-MOS's this is a learnt rating offset per listener; for DistilMOS's
  network it can change more than the offset.
- uncertainty: ``Linear(utterance_dim -> 1)`` on the base model's pooled ``utterance`` vector gives a
  log-variance; the outputs gain ``logvar`` and ``std`` (> 0).

A model trained without either option is never wrapped, so its state dict (and predictor file) is what it
was before these options existed. A wrapped state dict holds the base model's weights under ``base.``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .masking import valid_mask

#: the log-variance is kept in this range (std from about 0.011 to 90 on the MOS scale): a bound that no
#: sensible prediction reaches, so that one wild batch cannot make the loss overflow
LOGVAR_RANGE = (-9.0, 9.0)
#: where a wrapped model's weights keep the base model's
BASE_PREFIX = "base."


class RatingHead(nn.Module):
    """``base`` with listener conditioning (``listener_dim > 0``) and/or an uncertainty head
    (``utterance_dim > 0``); see the module docstring. Attributes it lacks are the base model's."""

    @staticmethod
    def wraps(state: dict[str, torch.Tensor]) -> bool:
        """Whether the weights ``state`` are a wrapped model's."""
        return any(k.startswith(BASE_PREFIX) for k in state)

    @staticmethod
    def kwargs_from_state(state: dict[str, torch.Tensor], base_cls: type) -> dict:
        """The constructor arguments that built ``state`` (``base``: those of the ``base_cls`` model)."""
        base_state = {k[len(BASE_PREFIX) :]: v for k, v in state.items() if k.startswith(BASE_PREFIX)}
        kwargs: dict = {"base": base_cls.kwargs_from_state(base_state), "listener_dim": 0, "utterance_dim": 0}
        if "mean_listener" in state:
            kwargs["listener_dim"] = int(state["mean_listener"].shape[0])
            kwargs["upstream_dim"] = int(state["listener_proj.weight"].shape[0])
        if "logvar_head.weight" in state:
            kwargs["utterance_dim"] = int(state["logvar_head.weight"].shape[1])
        return kwargs

    @classmethod
    def build(cls, base_cls: type, kwargs: dict) -> RatingHead:
        """A model from :meth:`kwargs_from_state`'s arguments."""
        rest = {k: v for k, v in kwargs.items() if k != "base"}
        return cls(base_cls(**kwargs["base"]), **rest)

    def __init__(self, base: nn.Module, listener_dim: int = 0, utterance_dim: int = 0, upstream_dim: int = 0):
        super().__init__()
        if listener_dim and not upstream_dim:
            raise ValueError("listener conditioning needs the feature dimension (upstream_dim)")
        self.base = base
        self.listener_dim = int(listener_dim)
        self.utterance_dim = int(utterance_dim)
        if self.listener_dim:
            # zero: before training the mean listener changes nothing, the model starts as the plain one
            self.mean_listener = nn.Parameter(torch.zeros(self.listener_dim))
            self.listener_proj = nn.Linear(self.listener_dim, int(upstream_dim))
            nn.init.zeros_(self.listener_proj.bias)
        if self.utterance_dim:
            self.logvar_head = nn.Linear(self.utterance_dim, 1)
            nn.init.zeros_(self.logvar_head.weight)  # start at variance 1 for every utterance
            nn.init.zeros_(self.logvar_head.bias)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("base"), name)

    @property
    def uncertainty(self) -> bool:
        """Whether the outputs carry ``std``."""
        return self.utterance_dim > 0

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, listener: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The base model's outputs (``pred [batch]`` ...), plus ``logvar`` and ``std [batch]`` with the
        uncertainty head. ``listener [batch, listener_dim]``: whose rating to predict, per utterance;
        ``None`` (inference): the mean listener for all."""
        if self.listener_dim:
            if listener is None:
                listener = self.mean_listener.expand(features.size(0), -1)
            offset = self.listener_proj(listener.to(features.dtype))
            mask = valid_mask(lengths.to(features.device), features.size(1)).unsqueeze(-1).to(features.dtype)
            features = features + offset.unsqueeze(1) * mask  # padded frames stay zero
        out = dict(self.base(features, lengths))
        if self.utterance_dim:
            logvar = self.logvar_head(out["utterance"]).squeeze(-1).clamp(*LOGVAR_RANGE)
            out.update(logvar=logvar, std=torch.exp(0.5 * logvar))
        return out
