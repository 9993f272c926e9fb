"""Every expert of the toolkit, registered once: its inference model and its variants.

This is the one place a new expert is added. The runner (default configs of ``-d``/``-v``), the recipes
(``egs/bvcc/run.sh --variant``: expert, config, flags, whether tokens are needed), the result tables
(row labels and order) and the predictor (which class rebuilds an expert's inference model) all read it.

An expert's inference model is a plain ``torch.nn.Module`` class of :mod:`distilmos.models` with
``forward(features [batch, frames, dim], lengths [batch]) -> {"pred": [batch], ...}`` and a static
``kwargs_from_state(state_dict) -> dict`` giving the constructor arguments that built a state dict, so a
predictor file can rebuild it from its weights alone. The expert keeps it as ``self.model``.

    python -m distilmos.registry --list              # every variant, its expert and label
    python -m distilmos.registry --shell no_token    # shell assignments for a recipe (expert=..., config=...)
    python -m distilmos.registry --token_variants    # the variants that need a token store, one a line

The model classes are named here as ``"module:Class"`` and imported when first asked for, so this
module and its command line stay light (the recipes ask it before anything else runs).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ConfigError, reports_errors

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Variant:
    """One trainable configuration of an expert: what a recipe's ``--variant`` names."""

    name: str
    label: str  # its row in result tables
    config: str  # config file in downstream/<expert>/
    runner_args: tuple[str, ...] = ()  # further run_downstream.py flags it needs
    fine_tune: bool = True  # trains the upstream too (-f)
    tokens: bool = False  # needs a token store (python -m upstream_tokens)
    waveforms: bool = False  # its training reads the waveforms too (a frozen teacher): no feature cache


@dataclass(frozen=True)
class Expert:
    """An s3prl downstream expert of this toolkit (``downstream/<name>/``)."""

    name: str
    model_path: str  # "module:Class" of the inference model (``self.model`` of the expert)
    variants: tuple[Variant, ...]

    @property
    def model(self) -> type:
        """The inference model class, imported on first use."""
        return _import(self.model_path)

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise ConfigError(
            f"expert {self.name!r} has no variant {name!r}; it has {', '.join(v.name for v in self.variants)}"
        )


EXPERTS: dict[str, Expert] = {
    e.name: e
    for e in (
        Expert(
            "distilmos",
            "distilmos.models.distilmos_model:DistilMOSModel",
            (
                Variant("distilmos", "DistilMOS (ours)", "config.yaml", tokens=True),
                Variant("no_token", "w/o token prediction", "config_no_token.yaml"),
                Variant("mse_distill", "MSE distillation", "config_mse_distill.yaml", waveforms=True),
                # DistilMOS with listener-aware training (modelrc.listener; needs the training listener list)
                Variant("distilmos_listener", "DistilMOS + listeners", "config_listener.yaml", tokens=True),
            ),
        ),
        Expert(
            "ssl_mos",
            "distilmos.models.ssl_mos:SSLMOSModel",
            (Variant("ssl_mos", "SSL-MOS", "config.yaml", runner_args=("-s", "last_hidden_state")),),
        ),
        # on frozen features: one layer (the upstream's output) as in the paper, or the learnable weighted sum
        Expert(
            "salf_mos",
            "distilmos.models.salf_mos:SALFMOSModel",
            (
                Variant(
                    "salf_mos", "SALF-MOS", "config.yaml", runner_args=("-s", "last_hidden_state"), fine_tune=False
                ),
                Variant("salf_mos_wsum", "SALF-MOS (weighted layers)", "config.yaml", fine_tune=False),
            ),
        ),
        Expert(
            "moe_mos",
            "distilmos.models.moe_mos:MoEMOSModel",
            (Variant("moe_mos", "MoE-MOS", "config.yaml", fine_tune=False),),
        ),
    )
}

#: inference models that are no s3prl expert, by the name a predictor file stores: the compact students of
#: egs/compress (trained by their own recipe; they read the waveform itself, no SSL upstream) and the DistilMOS
#: authors' released head (``distilmos-predict import``)
MODELS: dict[str, str] = {
    "student": "distilmos.models.student:StudentMOSModel",
    "distilmos_authors": "distilmos.models.distilmos_authors:DistilMOSAuthorsModel",
}

#: ``downstream_expert.datarc`` settings every expert reads, and their defaults; a config sets one to change it.
#: ``train_batch_size`` has no default: each expert's config gives its paper's batch (over all processes).
DATARC_DEFAULTS: dict[str, object] = {
    "eval_batch_size": 32,
    "eval_max_seconds": 320.0,  # length-bucketed evaluation batches: at most this much audio each
    "num_workers": 0,
    "best_split": "val",
    "best_metric": "utt_SRCC",  # keep best-states-<best_split>.ckpt by this metric on that split
}

#: variant name -> (expert, variant), in registration order (the order of table rows)
VARIANTS: dict[str, tuple[Expert, Variant]] = {v.name: (e, v) for e in EXPERTS.values() for v in e.variants}


def expert(name: str) -> Expert:
    """The registered expert ``name`` (``-d``), or a :class:`ConfigError` listing the known ones."""
    if name not in EXPERTS:
        raise ConfigError(f"unknown expert {name!r}; this toolkit has {', '.join(EXPERTS)}")
    return EXPERTS[name]


def variant(name: str) -> tuple[Expert, Variant]:
    """``(expert, variant)`` of a recipe variant name, or a :class:`ConfigError` listing the known ones."""
    if name not in VARIANTS:
        raise ConfigError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    return VARIANTS[name]


def label(name: str) -> str:
    """The table label of a variant (the name itself when it is not registered)."""
    return VARIANTS[name][1].label if name in VARIANTS else name


def model_class(expert_name: str) -> type:
    """The inference model class of an expert, or of a model registered in :data:`MODELS`."""
    if expert_name in MODELS:
        return _import(MODELS[expert_name])
    return expert(expert_name).model


def _import(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def build_model(expert_name: str, kwargs: dict, state: dict) -> nn.Module:
    """An expert's inference model with its weights (strictly loaded), in eval mode."""
    model = model_class(expert_name)(**kwargs)
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)


def uses_tokens(name: str) -> bool:
    """Whether the variant ``name`` needs a token store (False for a name that is not registered)."""
    return name in VARIANTS and VARIANTS[name][1].tokens


#: the run_downstream.py flags a variant's ``runner_args`` may hold: the s3prl argument each sets, its default
RUNNER_FLAGS: dict[str, tuple[str, str | None]] = {"-s": ("upstream_feature_selection", "hidden_states")}


def runner_settings(var: Variant) -> dict[str, str | None]:
    """The s3prl arguments (``Args`` of a checkpoint) a variant's runner flags set, defaults included."""
    settings = {attr: default for attr, default in RUNNER_FLAGS.values()}
    words = list(var.runner_args)
    for flag, value in zip(words[::2], words[1::2]):
        if flag not in RUNNER_FLAGS:
            raise ConfigError(f"variant {var.name!r}: runner flag {flag} is not in registry.RUNNER_FLAGS")
        settings[RUNNER_FLAGS[flag][0]] = value
    return settings


def variant_of(expert_name: str, args, config: dict) -> str:
    """The variant an experiment of ``expert_name`` was trained as, from its checkpoint's ``Args`` and ``Config``.

    The ``-v`` it was run with, or its config's ``downstream_expert.variant``, names it; otherwise it is
    the registered variant whose runner flags (``-s last_hidden_state`` ...) and config file match how it
    was run (``salf_mos`` and ``salf_mos_wsum`` differ only in ``-s``), else the expert's first variant.
    """
    named = getattr(args, "downstream_variant", None) or (config.get("downstream_expert") or {}).get("variant")
    if named:
        return named
    variants = expert(expert_name).variants
    given = {attr: getattr(args, attr, default) for attr, default in RUNNER_FLAGS.values()}
    same_flags = [v for v in variants if runner_settings(v) == given]
    same_config = [v for v in same_flags if v.config == os.path.basename(getattr(args, "config", None) or "")]
    return (same_config or same_flags or list(variants))[0].name


def token_variants() -> list[str]:
    """The variants registered with ``tokens=True``, in registration order."""
    return [name for name in VARIANTS if uses_tokens(name)]


def shell_assignments(name: str) -> str:
    """``expert=... config=... runner_args=(...) fine_tune=true|false tokens=true|false waveforms=true|false``
    for a recipe."""
    exp, var = variant(name)
    values = {
        "expert": exp.name,
        "config": var.config,
        "fine_tune": str(var.fine_tune).lower(),
        "tokens": str(var.tokens).lower(),
        "waveforms": str(var.waveforms).lower(),
    }
    lines = [f"{key}={shlex.quote(value)}" for key, value in values.items()]
    lines.append("runner_args=(" + " ".join(shlex.quote(a) for a in var.runner_args) + ")")
    return "\n".join(lines)


@reports_errors(catch=ConfigError)
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m distilmos.registry", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--list", action="store_true", help="print every variant: name, expert, label")
    group.add_argument("--shell", metavar="VARIANT", help="print a variant's settings as shell assignments")
    group.add_argument(
        "--token_variants", action="store_true", help="print the variants that need a token store, one a line"
    )
    args = parser.parse_args(argv)
    if args.list:
        for exp, var in VARIANTS.values():
            print(f"{var.name}\t{exp.name}\t{var.label}")
    elif args.token_variants:
        print("\n".join(token_variants()))
    else:
        print(shell_assignments(args.shell))
    return 0


if __name__ == "__main__":
    sys.exit(main())
