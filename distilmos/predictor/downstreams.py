"""The inference models of the toolkit's experts, as a predictor file stores them.

An expert (``downstream/<name>/expert.py``) keeps its inference path in ``self.model`` and everything used
only in training (token predictors, distillation heads, the best-score buffer) beside it. A predictor
file keeps ``self.model`` alone: the expert's name, the model's constructor arguments and its weights.
The constructor arguments are read off the weights' shapes by the model class itself
(``kwargs_from_state``), so they always match the weights, whatever config defaults the expert had when
it was trained. Which class belongs to which expert is registered in :mod:`distilmos.registry`; the
classes live in :mod:`distilmos.models`, so the predictor runs exactly the code that was trained.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from distilmos import registry
from distilmos.errors import ConfigError, ToolkitError


class DownstreamExportError(ToolkitError, ValueError):
    """An expert, or expert weights, that cannot go into a predictor file."""


#: the attribute of an expert that holds its inference model (its state-dict prefix)
MODEL_PREFIX = "model."


def model_class(name: str) -> type:
    """The inference model class of expert ``name``."""
    try:
        return registry.model_class(name)
    except ConfigError as exc:
        raise DownstreamExportError(f"expert {name!r} has no known inference model: {exc}") from exc


def split_state(name: str, expert_state: dict[str, torch.Tensor]) -> tuple:
    """``(inference weights, dropped keys)`` of an expert's state dict (``ckpt["Downstream"]``)."""
    inference = {k[len(MODEL_PREFIX) :]: v for k, v in expert_state.items() if k.startswith(MODEL_PREFIX)}
    if not inference:
        raise DownstreamExportError(f"the {name} expert's weights hold no {MODEL_PREFIX}* (inference model) entries")
    dropped = sorted(k for k in expert_state if not k.startswith(MODEL_PREFIX))
    return inference, dropped


def make_entry(name: str, expert_state: dict[str, torch.Tensor]) -> tuple:
    """``(entry, dropped keys)``: the predictor-file entry of an expert's inference model."""
    cls = model_class(name)
    state, dropped = split_state(name, expert_state)
    try:
        kwargs = cls.kwargs_from_state(state)
    except KeyError as exc:
        raise DownstreamExportError(
            f"the {name} expert's weights lack {exc}: not the model this version knows"
        ) from exc
    entry = {
        "name": name,
        "class_name": cls.__name__,
        "kwargs": kwargs,
        "state_dict": {k: v.detach().cpu().clone() for k, v in state.items()},
    }
    build(entry)  # the weights must load strictly into the class they claim
    return entry, dropped


def build(entry: dict) -> nn.Module:
    """The inference model of a predictor-file entry, with its weights, in eval mode."""
    cls = model_class(entry["name"])
    if entry.get("class_name", cls.__name__) != cls.__name__:
        raise DownstreamExportError(
            f"the file's {entry['name']} model is a {entry['class_name']}, but this version's "
            f"{entry['name']} expert uses {cls.__name__}: export it again with this version"
        )
    return registry.build_model(entry["name"], entry["kwargs"], entry["state_dict"])
