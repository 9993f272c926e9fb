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


def check_entry(entry) -> list:
    """What is wrong with the structure of a predictor file's ``downstream`` section (empty: nothing)."""
    if not isinstance(entry, dict):
        return [f"its downstream section is a {type(entry).__name__}, not a dict"]
    problems = []
    if not isinstance(entry.get("name"), str):
        problems.append(f"its downstream name is {entry.get('name')!r}, not a string")
    if not isinstance(entry.get("class_name", ""), str):
        problems.append(f"its downstream class_name is {entry.get('class_name')!r}, not a string")
    kwargs = entry.get("kwargs")
    if not (isinstance(kwargs, dict) and all(isinstance(k, str) for k in kwargs)):
        problems.append(f"its downstream kwargs are {type(kwargs).__name__}, not a dict of named arguments")
    state = entry.get("state_dict")
    if not (
        isinstance(state, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        problems.append("its downstream state_dict is not a dict of tensors")
    return problems


def _plain(value):
    """Tuples as lists, so that stored and derived constructor arguments compare equal."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def build(entry: dict) -> nn.Module:
    """The inference model of a predictor-file entry, with its weights, in eval mode.

    Only a registered model class is built (the entry's name is looked up in :mod:`distilmos.registry`,
    never imported), with the constructor arguments its class reads off the weights: the stored
    ``kwargs`` must agree with them, so a file cannot pass other arguments to a constructor.
    """
    name = entry["name"]
    cls = model_class(name)
    if entry.get("class_name", cls.__name__) != cls.__name__:
        raise DownstreamExportError(
            f"the file's {name} model is a {entry['class_name']}, but this version's "
            f"{name} expert uses {cls.__name__}: export it again with this version"
        )
    try:
        derived = cls.kwargs_from_state(entry["state_dict"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise DownstreamExportError(f"the {name} model's weights are not those of a {cls.__name__} ({exc!r})") from exc
    stored = entry["kwargs"]
    differ = sorted(k for k in stored if k not in derived or _plain(stored[k]) != _plain(derived[k]))
    if differ:
        raise DownstreamExportError(
            f"the {name} model's constructor arguments {', '.join(f'{k}={stored[k]!r}' for k in differ)} do not match "
            f"its weights ({', '.join(f'{k}={derived.get(k)!r}' for k in differ)})"
        )
    return registry.build_model(name, derived, entry["state_dict"])
