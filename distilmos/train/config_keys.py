"""Config sections that refuse keys they do not know, naming the closest known one.

A misspelt key (``runner.gradient_cliping``, ``datarc.train_bach_size``, ``-o config.runner.totl_steps=5``)
would otherwise be ignored, its default used in silence, or fail with a ``KeyError`` after the first step.
The known keys of a section come from the code that reads it, never from a second list: the defaults
dict the reader takes its values from (:data:`distilmos.train.loop.RUNNER`, ``MOSExpert.DATARC``, an
expert's ``MODELRC``), or the signature of the callable the section is handed to (a torch optimizer, a
scheduler of :mod:`distilmos.train.schedulers`).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping

from distilmos.errors import ConfigError


def unknown_keys(section: str, given: Mapping, known: Iterable[str]) -> str | None:
    """The message naming each key of ``given`` not in ``known`` (with the closest known key), or None."""
    known = sorted(set(known))
    unknown = [key for key in given if key not in known]
    if not unknown:
        return None
    named = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        named.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (
        f"unknown key{'s' if len(unknown) > 1 else ''} in {section}: {', '.join(named)}; "
        f"{section} takes {', '.join(known) or 'no keys'}"
    )


def check_keys(section: str, given: Mapping, known: Iterable[str]) -> None:
    """Raise :class:`ConfigError` when ``given`` holds a key not in ``known`` (see :func:`unknown_keys`)."""
    message = unknown_keys(section, given, known)
    if message:
        raise ConfigError(message)


def section(name: str, value, what: str = "a mapping of keys to values") -> dict:
    """``value`` as a dict (None: empty), or :class:`ConfigError` when it is not a mapping."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be {what}, not {type(value).__name__} {value!r}")
    return dict(value)


def with_defaults(name: str, given, defaults: Mapping, strict: bool = True) -> dict:
    """``defaults`` updated with the section ``given``; a key that is not in ``defaults`` is an error, or,
    with ``strict=False``, a warning printed once (for reading the config of an older run)."""
    given = section(name, given)
    message = unknown_keys(name, given, defaults)
    if message and strict:
        raise ConfigError(message)
    if message:
        print(f"[distilmos] warning: {message}; ignored")
    return {**defaults, **given}


def signature_keys(fn: Callable, skip: Iterable[str] = ()) -> set[str] | None:
    """The keyword arguments ``fn`` takes, less ``skip``; None when it takes ``**kwargs`` (any key)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - set(skip)
