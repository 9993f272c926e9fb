"""The one way the compression commands read their YAML settings."""

from __future__ import annotations

import argparse

import yaml

from distilmos.errors import ConfigError


def flag_settings(args: argparse.Namespace, defaults: dict) -> dict:
    """The settings a command line gives: its flags named like a key of ``defaults`` (``None``: not given;
    :func:`load_settings` leaves those to the file and the defaults)."""
    return {key: value for key, value in vars(args).items() if key in defaults}


def load_settings(
    path: str | None, defaults: dict, overrides: dict | None = None, what: str = "", check_keys: bool = True
) -> dict:
    """``defaults``, updated by the YAML file at ``path`` (if any), then by the non-``None`` ``overrides``
    (command-line flags); with ``check_keys`` a key not in ``defaults`` is a ConfigError naming the file."""
    config = dict(defaults)
    if path:
        with open(path, encoding="utf-8") as handle:
            config.update(yaml.safe_load(handle) or {})
    config.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = sorted(set(config) - set(defaults)) if check_keys else []
    if unknown:
        raise ConfigError(f"{path or 'config'}: unknown {what} setting(s) {unknown}; known: {', '.join(defaults)}")
    return config
