"""The inference models of this repository's experts, as a predictor file stores them.

An expert (``downstream/<name>/expert.py``) keeps its inference path in ``self.model`` and everything used
only in training (token predictors, distillation heads, the best-score buffer) beside it. A predictor
file keeps ``self.model`` alone: the expert's name, the model's constructor arguments and its weights.
The constructor arguments are read off the weights' shapes, so they always match the weights, whatever
config defaults the expert had when it was trained.

The model classes are imported from the experts' own ``model.py`` (as ``s3prl.downstream.<name>.model``,
the way the runner imports them), so the predictor runs exactly the code that was trained.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Callable, Dict, List

import torch
import torch.nn as nn

import distilmos


class DownstreamExportError(ValueError):
    """An expert, or expert weights, that cannot go into a predictor file."""


def _distilmos_kwargs(state: Dict[str, torch.Tensor]) -> dict:
    hidden_dim, upstream_dim = state["projector.weight"].shape
    kernels: List[int] = []
    while f"feature_processor.blocks.{len(kernels)}.conv.weight" in state:
        kernels.append(int(state[f"feature_processor.blocks.{len(kernels)}.conv.weight"].shape[-1]))
    return {"upstream_dim": int(upstream_dim), "hidden_dim": int(hidden_dim), "kernels": kernels,
            "blstm_conv_kernel": int(state["cnn_blstm.conv.weight"].shape[-1])}


def _ssl_mos_kwargs(state: Dict[str, torch.Tensor]) -> dict:
    return {"upstream_dim": int(state["output_layer.weight"].shape[1])}


@dataclass(frozen=True)
class InferenceModel:
    """Where an expert's inference model lives and how its constructor arguments follow from its weights."""

    class_name: str
    kwargs_from_state: Callable[[Dict[str, torch.Tensor]], dict]


#: expert name (``-d``) -> its inference model (``self.model`` of the expert, in ``<name>/model.py``)
MODELS: Dict[str, InferenceModel] = {
    "distilmos": InferenceModel("DistilMOSModel", _distilmos_kwargs),
    "ssl_mos": InferenceModel("SSLMOSModel", _ssl_mos_kwargs),
}

#: the attribute of an expert that holds its inference model (its state-dict prefix)
MODEL_PREFIX = "model."


def experts_dir() -> str:
    """The repository's ``downstream/`` folder (beside the ``distilmos`` package)."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(distilmos.__file__))), "downstream")


def model_class(name: str) -> type:
    """The inference model class of expert ``name``, imported from its ``model.py``."""
    if name not in MODELS:
        raise DownstreamExportError(f"expert {name!r} has no known inference model; known: {', '.join(MODELS)}")
    directory = experts_dir()
    if not os.path.isfile(os.path.join(directory, name, "model.py")):
        raise DownstreamExportError(
            f"the {name} expert's model.py is not at {directory}/{name}/: the predictor needs this repository's "
            "downstream/ folder beside the distilmos package (an editable install: pip install -e .)")
    from distilmos.s3prl_plugin import register_downstreams

    register_downstreams([directory])
    module = importlib.import_module(f"s3prl.downstream.{name}.model")
    return getattr(module, MODELS[name].class_name)


def split_state(name: str, expert_state: Dict[str, torch.Tensor]) -> tuple:
    """``(inference weights, dropped keys)`` of an expert's state dict (``ckpt["Downstream"]``)."""
    inference = {k[len(MODEL_PREFIX):]: v for k, v in expert_state.items() if k.startswith(MODEL_PREFIX)}
    if not inference:
        raise DownstreamExportError(f"the {name} expert's weights hold no {MODEL_PREFIX}* (inference model) entries")
    dropped = sorted(k for k in expert_state if not k.startswith(MODEL_PREFIX))
    return inference, dropped


def make_entry(name: str, expert_state: Dict[str, torch.Tensor]) -> tuple:
    """``(entry, dropped keys)``: the predictor-file entry of an expert's inference model."""
    model_class(name)  # a known expert whose code is at hand
    state, dropped = split_state(name, expert_state)
    try:
        kwargs = MODELS[name].kwargs_from_state(state)
    except KeyError as exc:
        raise DownstreamExportError(f"the {name} expert's weights lack {exc}: not the model this version knows") from exc
    entry = {"name": name, "class_name": MODELS[name].class_name, "kwargs": kwargs,
             "state_dict": {k: v.detach().cpu().clone() for k, v in state.items()}}
    build(entry)  # the weights must load strictly into the class they claim
    return entry, dropped


def build(entry: dict) -> nn.Module:
    """The inference model of a predictor-file entry, with its weights, in eval mode."""
    model = model_class(entry["name"])(**entry["kwargs"])
    model.load_state_dict(entry["state_dict"], strict=True)
    return model.eval().requires_grad_(False)
