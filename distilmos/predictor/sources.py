"""Model references: what every command that takes a model accepts, and the one function that resolves them.

A model reference is one of

- a local path: a predictor file (``distilmos-predict export`` / ``import``), as always;
- ``hf://<owner>/<repo>/<path/in/repo>[@revision]``: a file in a Hugging Face repository, downloaded by
  ``huggingface_hub`` into its cache (``HF_HUB_CACHE`` / ``HF_HOME``; a cached copy is not downloaded again)
  and then read exactly as a local file is: the same format checks, and the same trust rule (a file that
  names code to run is refused without ``trust_remote_code``). ``HF_HUB_OFFLINE=1`` uses the cache only;
- ``peer://<name>``: a released predictor of another package (:mod:`distilmos.predictor.peers`:
  ``peer://distillmos``, ``peer://dnsmos/p808``, ``peer://dnsmos/ovrl`` ...), scored by the same engine.

:func:`resolve` turns a file reference into a local path; :func:`identity` says which model a reference is
(the file's sha256, or the peer's name and package version), for caches and records; :func:`model_card`
gives any reference's card.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from distilmos.errors import ToolkitError
from distilmos.fileio import sha256_file

HF_SCHEME = "hf://"
PEER_SCHEME = "peer://"
_TRUE = {"1", "on", "yes", "true"}


class SourceError(ToolkitError, ValueError):
    """A model reference that cannot be resolved; the message names it and says what to do."""


@dataclass(frozen=True)
class HubRef:
    """``hf://<repo_id>/<path>[@revision]``: ``path`` may be empty (the repository itself)."""

    repo_id: str
    path: str = ""
    revision: str | None = None

    def __str__(self) -> str:
        return (
            HF_SCHEME
            + "/".join(p for p in (self.repo_id, self.path) if p)
            + (f"@{self.revision}" if self.revision else "")
        )

    def child(self, *names: str) -> HubRef:
        """The reference of ``names`` under this one (a file in this folder of the repository)."""
        return HubRef(self.repo_id, "/".join(p.strip("/") for p in (self.path, *names) if p), self.revision)


def is_hub(ref) -> bool:
    return isinstance(ref, str) and ref.startswith(HF_SCHEME)


def is_peer(ref) -> bool:
    return isinstance(ref, str) and ref.startswith(PEER_SCHEME)


def parse_hub(ref: str) -> HubRef:
    """``hf://owner/repo[/path][@revision]`` -> :class:`HubRef`; anything else is a :class:`SourceError`."""
    body = ref[len(HF_SCHEME) :] if is_hub(ref) else ref
    revision = None
    if "@" in body:
        body, revision = body.rsplit("@", 1)
        if not revision:
            raise SourceError(f"{ref}: the revision after '@' must be a branch, tag or commit (e.g. @main)")
    parts = [p for p in body.split("/") if p]
    if len(parts) < 2 or any(p in (".", "..") for p in parts):
        raise SourceError(
            f"{ref}: a Hugging Face reference is hf://<owner>/<repo>/<path/in/repo>[@revision], "
            "e.g. hf://BaleYang/DistilMOS/wavlm/model.pth.tar"
        )
    return HubRef("/".join(parts[:2]), "/".join(parts[2:]), revision)


def _offline() -> bool:
    """``HF_HUB_OFFLINE`` as set now (``huggingface_hub`` reads it once, when first imported)."""
    from huggingface_hub import constants

    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE or bool(constants.HF_HUB_OFFLINE)


def _cache_dir() -> str:
    """The hub cache as the environment says now (``HF_HUB_CACHE``, else ``HF_HOME``/hub, else the default)."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return constants.HF_HUB_CACHE


def download(hub: HubRef) -> str:
    """The local path of the file ``hub`` names: from the hub cache, downloading it there when needed."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if not hub.path:
        raise SourceError(f"{hub}: names a repository, not a file; add the file's path in it, e.g. {hub}/model.pt")
    offline, cache = _offline(), _cache_dir()
    get = f"huggingface-cli download {hub.repo_id} {hub.path}" + (f" --revision {hub.revision}" if hub.revision else "")
    try:
        return hf_hub_download(hub.repo_id, hub.path, revision=hub.revision, cache_dir=cache, local_files_only=offline)
    except LocalEntryNotFoundError as exc:
        if offline:
            reason = f"not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE is set"
            fix = f"fetch it once online ({get}) or unset HF_HUB_OFFLINE"
        else:
            reason = f"cannot reach the Hugging Face Hub ({_cause(exc)}) and no copy is cached in {cache}"
            fix = f"connect, or copy the file into the cache ({get} on a machine online, with the same HF_HUB_CACHE)"
        raise SourceError(f"{hub}: {reason}; {fix}") from exc
    except GatedRepoError as exc:
        raise SourceError(f"{hub}: a gated repository: accept its terms on huggingface.co and log in") from exc
    except RepositoryNotFoundError as exc:
        raise SourceError(
            f"{hub}: no repository {hub.repo_id} on the Hugging Face Hub (private ones need huggingface-cli login)"
        ) from exc
    except RevisionNotFoundError as exc:
        raise SourceError(f"{hub}: {hub.repo_id} has no revision {hub.revision!r}") from exc
    except EntryNotFoundError as exc:
        raise SourceError(f"{hub}: {hub.repo_id} has no file {hub.path!r}") from exc
    except (HFValidationError, HfHubHTTPError, OSError) as exc:
        raise SourceError(f"{hub}: cannot download it: {_cause(exc)}") from exc


def _cause(exc: BaseException) -> str:
    """The first line of the deepest error behind ``exc`` (the library wraps connection errors)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return f"{type(exc).__name__}: {lines[0] if len(lines[0]) <= 160 else lines[0][:160] + '...'}"


def resolve(ref: str | os.PathLike) -> str:
    """The local file a model reference names: a local path unchanged, an ``hf://`` file from the hub cache
    (downloaded when needed; see the module docstring). A ``peer://`` reference names no file: use
    :func:`distilmos.predictor.load` or :mod:`distilmos.predictor.peers`."""
    ref = os.fspath(ref)
    if is_peer(ref):
        raise SourceError(f"{ref}: a peer predictor is not a file; load it with distilmos.predictor.load")
    if is_hub(ref):
        return download(parse_hub(ref))
    return ref


def hub_commit(path: str) -> str | None:
    """The commit of a file in the hub cache (``.../snapshots/<commit>/...``), else ``None``."""
    parts = os.path.abspath(path).split(os.sep)
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts[:-1] else None


def identity(ref: str | os.PathLike) -> dict:
    """Which model ``ref`` is, for caches and records: ``{"ref", "kind": "file", "path", "sha256"}`` (an
    ``hf://`` file also ``"commit"``), or ``{"ref", "kind": "peer", "peer", "package", "version"}``.
    ``key`` is a short name for a folder: ``file-<sha256[:16]>`` or ``peer-<name>-<version>``."""
    ref = os.fspath(ref)
    if is_peer(ref):
        from . import peers

        spec = peers.spec(ref)
        version = peers.package_version(spec)
        key = f"peer-{spec.name.replace('/', '-')}-{version}"
        return {"ref": ref, "kind": "peer", "peer": spec.name, "package": spec.package, "version": version, "key": key}
    path = resolve(ref)
    if not os.path.isfile(path):
        raise SourceError(f"{ref}: no such model file (a predictor file, an hf:// file or a peer:// predictor)")
    sha = sha256_file(path)
    record = {"ref": ref, "kind": "file", "path": os.path.abspath(path), "sha256": sha, "key": f"file-{sha[:16]}"}
    if is_hub(ref):
        record["commit"] = hub_commit(path)
    return record


def model_card(ref: str | os.PathLike) -> dict:
    """The model card of any reference: a predictor file's stored card, or a peer's (:mod:`.peers`)."""
    ref = os.fspath(ref)
    if is_peer(ref):
        from . import peers

        return peers.card(ref)
    from .fileformat import read_predictor

    return read_predictor(resolve(ref))["card"]
