"""The upstreams this toolkit adds to s3prl's hub, by name: ``-u lfcc``, ``-u utterance_embedding -k
package.module:factory``, ``-u ge2e_dvector`` (:mod:`distilmos.train.plugin` registers them into ``s3prl.hub``;
:func:`distilmos.upstream.build.resolve_upstream` finds them without it)."""

from __future__ import annotations

from collections.abc import Callable

from .ge2e import ge2e_dvector
from .lfcc import lfcc
from .utterance import utterance_embedding

#: name -> factory, called as s3prl's runner calls a hub entry: ``factory(ckpt=..., model_config=..., refresh=...)``
UPSTREAMS: dict[str, Callable] = {
    "lfcc": lfcc,
    "utterance_embedding": utterance_embedding,
    "ge2e_dvector": ge2e_dvector,
}
