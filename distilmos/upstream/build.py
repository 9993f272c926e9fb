"""Resolving an upstream given by the user: an s3prl hub name, one of this toolkit's own upstreams
(:mod:`distilmos.upstream.hub`: ``lfcc``, ``utterance_embedding``, ``ge2e_dvector``), ``NAME_local`` with a
checkpoint, or a user's own ``package.module:callable``.

Conventions every upstream here follows (s3prl's): ``forward(wavs: List[Tensor]) -> {"hidden_states":
[h_0, ..., h_N]}`` with ``h_n: [batch, frames, dim]``, where ``h_0`` is the input of the first
transformer layer and ``h_n`` the output of layer ``n``; and ``get_downsample_rates(key) -> int``
(samples per frame).
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Callable

import torch.nn as nn

from distilmos.errors import ToolkitError

from .callable_spec import import_callable
from .hub import UPSTREAMS as TOOLKIT_UPSTREAMS
from .padding_exact import make_padding_exact


class UpstreamSpecError(ToolkitError, ValueError):
    """An upstream name, checkpoint or callable that cannot be used; the message says what to give instead."""


def hub_names() -> list[str]:
    """Every upstream name s3prl's hub offers, and this toolkit's own."""
    from s3prl import hub

    return sorted(set(hub.options()) | set(TOOLKIT_UPSTREAMS))


def is_callable_spec(spec: str) -> bool:
    """``package.module:callable`` rather than a hub name."""
    return ":" in spec


def _user_factory(spec: str) -> Callable[..., nn.Module]:
    fn = import_callable(spec, "upstream", UpstreamSpecError)

    def factory(**kwargs) -> nn.Module:
        # Pass only the arguments the user's callable declares (ckpt, model_config, refresh, ...).
        params = inspect.signature(fn).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            kwargs = {k: v for k, v in kwargs.items() if k in params}
        model = fn(**kwargs)
        check_upstream(model, spec)
        return model

    factory.__name__ = spec.partition(":")[2]
    factory.__doc__ = fn.__doc__
    return factory


def resolve_upstream(spec: str) -> Callable[..., nn.Module]:
    """The factory behind an upstream spec, called as ``factory(ckpt=..., model_config=..., refresh=...)``.

    An unknown hub name raises :class:`UpstreamSpecError` listing the closest valid names.
    """
    if is_callable_spec(spec):
        return _user_factory(spec)
    if spec in TOOLKIT_UPSTREAMS:
        return TOOLKIT_UPSTREAMS[spec]
    names = hub_names()
    if spec not in names:
        close = difflib.get_close_matches(spec, names, n=5, cutoff=0.6)
        hint = f" Closest names: {', '.join(close)}." if close else ""
        raise UpstreamSpecError(
            f"unknown upstream {spec!r}.{hint} Give an s3prl hub name (see s3prl.hub.options()), "
            "NAME_local with -k CHECKPOINT, or package.module:callable."
        )
    from s3prl import hub

    return getattr(hub, spec)


def check_upstream(model, spec: str) -> None:
    """Refuse an object that does not follow the s3prl upstream interface."""
    missing = [m for m in ("forward", "get_downsample_rates") if not callable(getattr(model, m, None))]
    if not isinstance(model, nn.Module) or missing:
        raise UpstreamSpecError(
            f"upstream {spec!r} returned {type(model).__name__}, which is not an s3prl-style upstream: it must be "
            "a torch.nn.Module with forward(wavs) -> {'hidden_states': [...]} and get_downsample_rates(key)"
            + (f" (missing {', '.join(missing)})" if missing else "")
        )


def check_local_checkpoint(spec: str, ckpt: str | None) -> None:
    """A ``NAME_local`` upstream needs an existing checkpoint file."""
    if spec.endswith("_local") and not (ckpt and os.path.isfile(ckpt)):
        raise UpstreamSpecError(f"upstream {spec!r} needs a local checkpoint: -k PATH (got {ckpt!r})")


def build_upstream(
    spec: str, ckpt: str | None = None, model_config: str | None = None, refresh: bool = False, exact: bool = True
) -> nn.Module:
    """Instantiate an upstream from a spec and optional checkpoint (see :func:`resolve_upstream`).

    With ``exact`` (the default), s3prl's WavLM / HuBERT / wav2vec 2.0 upstreams get their padding-exact
    forward (:func:`distilmos.upstream.padding_exact.make_padding_exact`); other upstreams are returned as built.
    """
    factory = resolve_upstream(spec)
    check_local_checkpoint(spec, ckpt)
    model = factory(ckpt=ckpt, model_config=model_config, refresh=refresh)
    check_upstream(model, spec)
    if exact:
        make_padding_exact(model)
    return model
