"""The predictor file: one ``torch.save`` of plain dicts, lists, numbers, strings and tensors.

It loads with ``torch.load(..., weights_only=True)`` (no pickled classes), and holds::

    format          "distilmos-predictor"
    format_version  FORMAT_VERSION
    card            the model card (plain values; see :mod:`distilmos.predictor.export`)
    upstream        how to rebuild the fine-tuned upstream (see :mod:`distilmos.predictor.upstream_entry`)
    featurizer      the layer selection / weighted sum (see :class:`distilmos.predictor.pipeline.FeatureSelector`)
    downstream      the expert's inference model: name, constructor arguments, weights

A reader refuses, naming the file, anything that is not such a file, that has another format version, or
whose sections do not have the structure above (each checked by the code that rebuilds it).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from distilmos.errors import ToolkitError
from distilmos.fileio import atomic_write

from . import downstreams, upstream_entry
from .pipeline import FeatureSelector

FORMAT = "distilmos-predictor"
FORMAT_VERSION = 1
SECTIONS = ("card", "upstream", "featurizer", "downstream")
EXPORT_HINT = "make one from an experiment checkpoint with: distilmos-predict export -e CHECKPOINT -o MODEL.pt"


class PredictorFileError(ToolkitError, ValueError):
    """A file that is not a usable predictor file; the message names the file and says what to do."""


def write_predictor(blob: dict[str, Any], path: str, *, check: bool = False) -> None:
    """Write a predictor dict (atomically: a killed export never leaves a half-written file); with ``check``,
    read the file back as every loader does (``weights_only=True``) and remove it if it does not load."""
    missing = [key for key in SECTIONS if key not in blob]
    if missing:
        raise ValueError(f"predictor dict lacks {missing}")
    with atomic_write(path, "wb") as handle:
        torch.save(dict(blob, format=FORMAT, format_version=FORMAT_VERSION), handle)
    if check:
        try:
            read_predictor(path)
        except PredictorFileError:
            os.remove(path)
            raise


def read_predictor(path: str) -> dict[str, Any]:
    """Read a predictor file; raise :class:`PredictorFileError` naming ``path`` if it is not one.

    Tensors are memory-mapped, so a large upstream is not copied while the model is rebuilt.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PredictorFileError(f"{path}: no such predictor file")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # not a zip/pickle, or pickled classes (e.g. an s3prl checkpoint's Namespace)
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        reason = next((line for line in lines if "Unsupported global" in line), lines[0])
        looks_like_experiment = "Namespace" in str(exc)
        raise PredictorFileError(
            f"{path}: not a DistilMOS predictor file"
            + (" (it looks like an s3prl experiment checkpoint)" if looks_like_experiment else f" ({reason[:200]})")
            + f"; {EXPORT_HINT}"
        ) from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        experiment = isinstance(blob, dict) and {"Downstream", "Args"} <= set(blob)
        raise PredictorFileError(
            f"{path}: not a DistilMOS predictor file"
            + (" (it is an s3prl experiment checkpoint)" if experiment else "")
            + f"; {EXPORT_HINT}"
        )
    version = blob.get("format_version")
    if version != FORMAT_VERSION:
        raise PredictorFileError(
            f"{path}: predictor file format version {version!r}, but this version of distilmos reads version "
            f"{FORMAT_VERSION}; export it again from its experiment checkpoint with this version "
            "(distilmos-predict export -e CHECKPOINT -o MODEL.pt), or use the distilmos version that wrote it"
            + (f" ({blob['card'].get('toolkit', {}).get('distilmos')})" if isinstance(blob.get("card"), dict) else "")
        )
    missing = [key for key in SECTIONS if key not in blob]
    if missing:
        raise PredictorFileError(f"{path}: predictor file is incomplete (no {', '.join(missing)}); {EXPORT_HINT}")
    problems = check_sections(blob)
    if problems:
        raise PredictorFileError(f"{path}: not a valid predictor file: {'; '.join(problems[:5])}; {EXPORT_HINT}")
    return blob


def check_sections(blob: dict[str, Any]) -> list:
    """What is wrong with the structure of a predictor dict's sections (empty: nothing)."""
    problems = [] if isinstance(blob["card"], dict) else [f"its card is a {type(blob['card']).__name__}, not a dict"]
    problems += upstream_entry.check_entry(blob["upstream"])
    featurizer = blob["featurizer"]
    if not isinstance(featurizer, dict):
        problems.append(f"its featurizer section is a {type(featurizer).__name__}, not a dict")
    else:
        problems += FeatureSelector.check_config(featurizer.get("config"))
        state = featurizer.get("state_dict")
        if not (isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())):
            problems.append("its featurizer state_dict is not a dict of tensors")
    return problems + downstreams.check_entry(blob["downstream"])
