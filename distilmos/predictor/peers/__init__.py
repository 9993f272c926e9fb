"""Released MOS predictors of other packages, scored by this toolkit's engine: ``peer://<name>``.

    from distilmos.predictor import load
    load("peer://distillmos").predict(paths=["a.wav"])     # Distill-MOS (the distillmos package)
    load("peer://dnsmos/p808").predict(paths=["a.wav"])    # DNSMOS P.808 MOS (the speechmos package)
    load("peer://dnsmos/ovrl").predict(paths=["a.wav"])    # DNSMOS P.835 overall (OVRL)

Each peer is a pipeline with the interface :class:`distilmos.predictor.Predictor` drives (16 kHz mono 1-D
waveforms in, one score each out; see :class:`PeerPipeline`), so it goes through the same engine as a
predictor file: reading and resampling to 16 kHz, length-sorted batches, the failure handling and the
outputs. Windowing is the package's own (both packages define one), so the engine's ``max_seconds``
windows are off for peers; the scores equal the package's own API on the same 16 kHz waveforms.

The packages are an optional extra: ``pip install 'distilmos[peers]'`` (``pip install -e '.[peers]'`` in a
checkout); without them a peer reference gives one message naming the extra. Both ship their weights in
their wheels: nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from distilmos.errors import ToolkitError

from .base import PeerPipeline

SCHEME = "peer://"
EXTRA = "peers"
INSTALL_HINT = "pip install 'distilmos[peers]' (in a checkout: pip install -e '.[peers]')"


class PeerError(ToolkitError, ValueError):
    """A peer reference that cannot be used (unknown name, extra not installed); the message says why."""


@dataclass(frozen=True)
class PeerSpec:
    """One ``peer://<name>``: the package it comes from and how its pipeline is built."""

    name: str
    title: str  # the name a table prints
    package: str  # the distribution whose version identifies the model
    modules: tuple[str, ...]  # what must be importable
    builder: str  # "<module of this package>:<function>(spec) -> PeerPipeline"
    option: str | None = None  # the builder's choice within the package (DNSMOS's score)


_DNSMOS = ("speechmos", "onnxruntime", "librosa")
PEERS = {
    spec.name: spec
    for spec in (
        PeerSpec("distillmos", "Distill-MOS", "distillmos", ("distillmos",), "distill_mos:build"),
        PeerSpec("dnsmos/p808", "DNSMOS P.808", "speechmos", _DNSMOS, "dnsmos:build", "p808"),
        PeerSpec("dnsmos/ovrl", "DNSMOS P.835 OVRL", "speechmos", _DNSMOS, "dnsmos:build", "ovrl"),
        PeerSpec("dnsmos/sig", "DNSMOS P.835 SIG", "speechmos", _DNSMOS, "dnsmos:build", "sig"),
        PeerSpec("dnsmos/bak", "DNSMOS P.835 BAK", "speechmos", _DNSMOS, "dnsmos:build", "bak"),
    )
}


def spec(ref: str) -> PeerSpec:
    """The :class:`PeerSpec` of ``peer://<name>`` (or of ``<name>``); an unknown name lists the known ones."""
    name = ref[len(SCHEME) :] if ref.startswith(SCHEME) else ref
    name = name.strip("/").lower()
    if name == "dnsmos":
        raise PeerError(f"{ref}: DNSMOS gives several scores: name one, e.g. peer://dnsmos/p808 or peer://dnsmos/ovrl")
    if name not in PEERS:
        raise PeerError(f"{ref}: no such peer predictor; known: {', '.join(SCHEME + n for n in PEERS)}")
    return PEERS[name]


def missing(peer: PeerSpec) -> list[str]:
    """The modules of ``peer`` that are not installed."""
    return [m for m in peer.modules if importlib.util.find_spec(m) is None]


def require(peer: PeerSpec) -> None:
    """Raise :class:`PeerError` naming the extra when a module ``peer`` needs is not installed."""
    absent = missing(peer)
    if absent:
        raise PeerError(
            f"{SCHEME}{peer.name}: needs the optional extra '{EXTRA}' ({', '.join(absent)} not installed): "
            + INSTALL_HINT
        )


def package_version(peer: PeerSpec) -> str:
    """The installed version of the package ``peer`` comes from (part of its identity)."""
    from importlib import metadata

    require(peer)
    try:
        return metadata.version(peer.package)
    except metadata.PackageNotFoundError as exc:  # importable but not installed as a distribution
        raise PeerError(f"{SCHEME}{peer.name}: {peer.package} has no installed metadata; " + INSTALL_HINT) from exc


def build(ref: str) -> PeerPipeline:
    """The pipeline of ``peer://<name>`` (in eval mode), ready for :class:`distilmos.predictor.Predictor`."""
    peer = spec(ref)
    require(peer)
    module, function = peer.builder.split(":")
    pipeline = getattr(importlib.import_module(f"{__name__}.{module}"), function)(peer)
    return pipeline.eval().requires_grad_(False)


def card(ref: str) -> dict:
    """The model card of ``peer://<name>``: package and version, what the score is, parameters, windowing."""
    return build(ref).card()


__all__ = ["PEERS", "PeerError", "PeerPipeline", "PeerSpec", "build", "card", "spec", "package_version", "require"]
