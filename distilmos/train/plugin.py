"""What s3prl needs to know about this toolkit, registered into s3prl's own namespaces.

Needed by the runner (:mod:`distilmos.train.runner`), by every expert (an expert imported by a stock s3prl
runner registers the schedulers its config names):

- this repository's ``downstream/*`` experts join s3prl's ``s3prl.downstream`` namespace, so ``-d distilmos``
  imports ``s3prl.downstream.distilmos.expert`` exactly as a stock s3prl checkout would;
- ``OneCycleLR`` and ``MoEStageLR`` join s3prl's scheduler registry (``scheduler: {name: OneCycleLR}``);
- this toolkit's own upstreams (``lfcc``, ``utterance_embedding``, ``ge2e_dvector``) join s3prl's hub, and
  ``-u package.module:callable`` joins it under that name;
- s3prl checkpoints (which hold an ``argparse.Namespace``) load under ``torch.load(weights_only=True)``
  (:func:`distilmos.fileio.allow_s3prl_checkpoints`, which the predictor calls too).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from distilmos.fileio import allow_s3prl_checkpoints
from distilmos.upstream.build import TOOLKIT_UPSTREAMS, is_callable_spec, resolve_upstream

from .schedulers import get_MoEStageLR, get_OneCycleLR


def register_downstreams(dirs: Iterable[str]) -> None:
    """Make every expert folder under ``dirs`` importable as ``s3prl.downstream.<name>``."""
    import s3prl.downstream as downstream_pkg

    for directory in dirs:
        directory = os.path.abspath(directory)
        if directory not in downstream_pkg.__path__:
            downstream_pkg.__path__.append(directory)


def register_schedulers() -> None:
    """Add ``OneCycleLR`` and ``MoEStageLR`` to s3prl's scheduler registry (looked up as ``get_<name>``)."""
    import s3prl.schedulers as schedulers

    schedulers.get_OneCycleLR = get_OneCycleLR
    schedulers.get_MoEStageLR = get_MoEStageLR


def register_upstreams() -> None:
    """Add this toolkit's own upstreams (:mod:`distilmos.upstream.hub`) to s3prl's hub, where its runner
    looks them up (``getattr(hub, name)``) and ``hub.options()`` lists them."""
    from s3prl import hub

    for name, factory in TOOLKIT_UPSTREAMS.items():
        setattr(hub, name, factory)


def register_upstream(spec: str) -> None:
    """Validate an upstream spec; a ``module:callable`` one is added to s3prl's hub under that name."""
    factory = resolve_upstream(spec)
    if is_callable_spec(spec):
        from s3prl import hub

        setattr(hub, spec, factory)


def register(downstream_dirs: Iterable[str]) -> None:
    """Every registration s3prl needs to run this toolkit's experts."""
    register_downstreams(downstream_dirs)
    register_schedulers()
    register_upstreams()
    allow_s3prl_checkpoints()
