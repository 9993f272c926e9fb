"""The callable a user names as ``package.module:callable`` (an upstream's factory, an embedder's factory)."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def import_callable(spec: str, what: str, error: type[Exception]) -> Callable:
    """The callable ``spec`` (``package.module:callable``) names; ``error`` with a message starting
    ``{what} {spec!r}:`` when its module cannot be imported or has no such callable."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"{what} {spec!r}: cannot import module {module_name!r} ({exc})") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise error(f"{what} {spec!r}: module {module_name!r} has no callable {attr!r}")
    return fn
