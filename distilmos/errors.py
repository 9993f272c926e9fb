"""The toolkit's one error family, and how a command reports it.

Every error this toolkit raises about the user's input (a data list, an audio file, a token store, a
config, an upstream spec, a predictor file) is a :class:`ToolkitError`: its message alone says what is
wrong, where, and what to do. Entry points (``run_downstream.py``, ``distilmos-predict``,
``python -m upstream_tokens``) print such an error as one message and exit non-zero, without a Python
traceback (:func:`reports_errors`); anything else (a bug, or an error of s3prl's own) keeps its traceback.

Each subclass also derives from ``ValueError``, so code that catches ``ValueError`` keeps working.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable


class ToolkitError(Exception):
    """An error about the user's input whose message is complete on its own (see the module docstring)."""


class ConfigError(ToolkitError, ValueError):
    """A config value (or a combination of flags) that cannot be used; the message names the key."""


class OutputError(ToolkitError, OSError):
    """An output path (file or folder) that cannot be written; checked before the work that would fill it."""


def reports_errors(
    main: Callable[..., int] | None = None,
    *,
    catch: type[Exception] | tuple[type[Exception], ...] = ToolkitError,
    prefix: str = "error",
):
    """Decorate a command's ``main`` so that an error about the user's input (``catch``) is printed as the
    one line ``<prefix>: <message>`` on stderr and ``main`` returns exit status 2, without a traceback;
    any other exception keeps its traceback. Bare (``@reports_errors``) or with options
    (``@reports_errors(catch=ConfigError)``)."""

    def decorate(fn: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(fn)
        def run(*args, **kwargs) -> int:
            try:
                return fn(*args, **kwargs)
            except catch as exc:
                print(f"{prefix}: {exc}", file=sys.stderr)
                return 2

        return run

    return decorate if main is None else decorate(main)
