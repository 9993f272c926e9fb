"""The toolkit's one error family.

Every error this toolkit raises about the user's input (a data list, an audio file, a token store, a
config, an upstream spec, a predictor file) is a :class:`ToolkitError`: its message alone says what is
wrong, where, and what to do. Entry points (``run_downstream.py``, ``distilmos-predict``,
``python -m upstream_tokens``) print such an error as one message and exit non-zero, without a Python
traceback; anything else (a bug, or an error of s3prl's own) keeps its traceback.

Each subclass also derives from ``ValueError``, so code that catches ``ValueError`` keeps working.
"""


class ToolkitError(Exception):
    """An error about the user's input whose message is complete on its own (see the module docstring)."""


class ConfigError(ToolkitError, ValueError):
    """A config value (or a combination of flags) that cannot be used; the message names the key."""


class OutputError(ToolkitError, OSError):
    """An output path (file or folder) that cannot be written; checked before the work that would fill it."""
