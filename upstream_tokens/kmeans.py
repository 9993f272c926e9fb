"""Online mini-batch k-means for every layer at once, with two interchangeable backends.

Both backends take the frames of all selected layers together, ``[n_layers, n_frames, dim]`` (the
frames of one upstream forward), and keep one independent clustering per layer:

- ``sklearn``: one :class:`sklearn.cluster.MiniBatchKMeans` per layer, fed through ``partial_fit``
  (the paper's recipe);
- ``torch``: the same algorithm (Sculley 2010: per-centre counts, centre += (x - centre) / count,
  greedy k-means++ seeding) written as batched tensor operations over the layers, on any device.

Feeding follows MiniBatchKMeans semantics: frames are buffered until ``init_size`` of them have arrived
(``partial_fit`` needs at least ``n_clusters`` frames in its first call); that buffer seeds the centres
(k-means++) and makes the first update; after that, every ``batch_size`` frames make one update step.
A last partial batch is used by :meth:`LayerwiseKMeans.finalize`. Memory stays at one buffer of at most
``init_size`` (then ``batch_size``) frames per layer beyond what the caller passes in.

``inertia`` is the *online* inertia: the sum over update steps of each mini-batch's squared distances
to the centres of that step (sklearn: after its update; torch: before it). The exact inertia against the
final centres is what ``dump`` reports per split.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from distilmos.errors import ToolkitError

BACKENDS = ("sklearn", "torch")


class KMeansError(ToolkitError, ValueError):
    """Clustering that cannot be done as asked (e.g. fewer frames than clusters)."""


def default_init_size(n_clusters: int, batch_size: int) -> int:
    """sklearn's rule: ``3 * batch_size``, raised to ``3 * n_clusters`` when that is smaller than k."""
    size = 3 * batch_size
    return 3 * n_clusters if size < n_clusters else size


class LayerwiseKMeans:
    """Buffering and bookkeeping shared by the backends; subclasses implement ``_first`` and ``_step``."""

    backend = ""
    buffer_device = torch.device("cpu")

    def __init__(
        self, n_layers: int, n_clusters: int, batch_size: int = 64, init_size: int | None = None, seed: int = 0
    ):
        if n_clusters < 1 or batch_size < 1 or n_layers < 1:
            raise KMeansError(
                f"need n_layers, n_clusters and batch_size >= 1 (got {n_layers}, {n_clusters}, {batch_size})"
            )
        self.n_layers, self.n_clusters, self.batch_size, self.seed = n_layers, n_clusters, batch_size, seed
        self.init_size = max(int(init_size or default_init_size(n_clusters, batch_size)), n_clusters)
        self.n_frames = 0
        self.n_steps = 0
        self._pending: list[torch.Tensor] = []
        self._n_pending = 0
        self._initialized = False
        self._finalized = False

    # -- feeding
    def partial_fit(self, frames: torch.Tensor) -> None:
        """Feed ``[n_layers, n, dim]`` frames (any device, any float dtype)."""
        if self._finalized:
            raise KMeansError("partial_fit after finalize")
        if frames.dim() != 3 or frames.shape[0] != self.n_layers:
            raise KMeansError(f"expected [{self.n_layers}, frames, dim], got {tuple(frames.shape)}")
        if frames.shape[1] == 0:
            return
        self.n_frames += frames.shape[1]
        # Buffer where the steps run: one transfer per forward batch, not one per mini-batch.
        self._pending.append(frames.to(self.buffer_device, torch.float32))
        self._n_pending += frames.shape[1]
        if not self._initialized and self._n_pending < self.init_size:
            return
        with self._compute_context():
            if not self._initialized:
                self._first(self._take(self.init_size))
                self._initialized = True
                self.n_steps += 1
            while self._n_pending >= self.batch_size:
                self._step(self._take(self.batch_size))
                self.n_steps += 1

    def _take(self, n: int) -> torch.Tensor:
        data = torch.cat(self._pending, dim=1) if len(self._pending) > 1 else self._pending[0]
        head, rest = data[:, :n], data[:, n:]
        self._pending = [rest] if rest.shape[1] else []
        self._n_pending = rest.shape[1]
        return head

    def finalize(self) -> LayerwiseKMeans:
        """Use the frames still buffered; after this the centres are final."""
        if self._finalized:
            return self
        if not self._initialized and self._n_pending < self.n_clusters:
            raise KMeansError(
                f"only {self._n_pending} frames were given for {self.n_clusters} clusters; "
                "use more data or a smaller --n_clusters"
            )
        with self._compute_context():
            if not self._initialized:
                self._first(self._take(self._n_pending))
                self._initialized = True
                self.n_steps += 1
            elif self._n_pending:
                self._step(self._take(self._n_pending))
                self.n_steps += 1
        self._finalized = True
        return self

    def _compute_context(self):
        """Context for a run of update steps (a backend may limit threads here)."""
        return contextlib.nullcontext()

    # -- results (valid after finalize)
    @property
    def cluster_centers(self) -> np.ndarray:
        """float32 ``[n_layers, k, dim]``."""
        raise NotImplementedError

    @property
    def counts(self) -> np.ndarray:
        """float64 ``[n_layers, k]``: frames each centre absorbed during fitting."""
        raise NotImplementedError

    @property
    def inertia(self) -> np.ndarray:
        """float64 ``[n_layers]``: online inertia (see the module docstring)."""
        raise NotImplementedError

    def _first(self, frames: torch.Tensor) -> None:
        raise NotImplementedError

    def _step(self, frames: torch.Tensor) -> None:
        raise NotImplementedError


class SklearnLayerwiseKMeans(LayerwiseKMeans):
    """One scikit-learn ``MiniBatchKMeans`` per layer, updated with ``partial_fit``."""

    backend = "sklearn"

    def __init__(
        self, n_layers, n_clusters, batch_size=64, init_size=None, seed=0, reassignment_ratio: float = 0.01, device=None
    ):
        super().__init__(n_layers, n_clusters, batch_size, init_size, seed)
        from sklearn.cluster import MiniBatchKMeans

        self.reassignment_ratio = reassignment_ratio
        # A distinct, fixed seed per layer: layers must not share random streams, and reruns must agree.
        self.models = [
            MiniBatchKMeans(
                n_clusters=n_clusters,
                batch_size=batch_size,
                init_size=self.init_size,
                n_init=1,
                init="k-means++",
                reassignment_ratio=reassignment_ratio,
                random_state=seed + i,
                compute_labels=True,
            )
            for i in range(n_layers)
        ]
        self._inertia = np.zeros(n_layers, dtype=np.float64)

    def _update(self, frames: torch.Tensor) -> None:
        data = frames.detach().to("cpu", torch.float32).numpy()
        with warnings.catch_warnings():
            # A first call with exactly init_size frames is expected; sklearn's size warnings are noise here.
            warnings.simplefilter("ignore", RuntimeWarning)
            for i, model in enumerate(self.models):
                model.partial_fit(data[i])
                self._inertia[i] += float(model.inertia_)

    _first = _update
    _step = _update

    def _compute_context(self):
        # A 64-frame step is far too small to share among OpenMP threads: threads only add
        # synchronisation, which turns into 10-50x slowdowns when the CPU is shared with other jobs.
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=1, user_api="openmp")

    @property
    def cluster_centers(self):
        return np.stack([m.cluster_centers_ for m in self.models]).astype(np.float32)

    @property
    def counts(self):
        return np.stack([m._counts for m in self.models]).astype(np.float64)  # noqa: SLF001 (no public counts)

    @property
    def inertia(self):
        return self._inertia.copy()


class TorchLayerwiseKMeans(LayerwiseKMeans):
    """Mini-batch k-means as batched tensor operations over the layers, on ``device``."""

    backend = "torch"

    def __init__(self, n_layers, n_clusters, batch_size=64, init_size=None, seed=0, device="cpu"):
        super().__init__(n_layers, n_clusters, batch_size, init_size, seed)
        self.device = self.buffer_device = torch.device(device)
        # Random draws come from a CPU generator, so a seed gives the same draws on every device.
        self._generator = torch.Generator().manual_seed(seed)
        self._centers: torch.Tensor | None = None  # [L, k, D]
        self._counts: torch.Tensor | None = None  # [L, k], float64
        self._inertia = torch.zeros(n_layers, dtype=torch.float64)

    def _first(self, frames):
        frames = frames.to(self.device)
        n = frames.shape[1]
        # Seed from a random subset of init_size frames (all of them here: the first buffer is that size).
        take = torch.randperm(n, generator=self._generator)[: self.init_size].to(self.device)
        self._centers = torch.stack(
            [kmeans_plus_plus(frames[i, take], self.n_clusters, self._generator) for i in range(self.n_layers)]
        )
        self._counts = torch.zeros(self.n_layers, self.n_clusters, dtype=torch.float64, device=self.device)
        self._step(frames)

    def _step(self, frames):
        frames = frames.to(self.device)
        labels, sqdist = assign(frames, self._centers)
        n_layers, k, dim = self._centers.shape
        # Work on the touched centres only (at most n_layers * batch_size of them), addressed in the
        # flattened [L*k] numbering, so a step costs O(batch) and not O(L * k * D).
        flat = (labels + torch.arange(n_layers, device=self.device).unsqueeze(1) * k).reshape(-1)
        touched, inverse = torch.unique(flat, return_inverse=True)
        hits = torch.zeros(len(touched), dtype=torch.float64, device=self.device)
        hits.index_add_(0, inverse, torch.ones_like(inverse, dtype=torch.float64))
        sums = torch.zeros(len(touched), dim, dtype=torch.float64, device=self.device)
        sums.index_add_(0, inverse, frames.reshape(-1, dim).double())
        centers, counts = self._centers.view(-1, dim), self._counts.view(-1)
        old = counts[touched]
        # Each centre moves to the running mean of every frame it has absorbed (Sculley's per-centre
        # learning rate 1/count, applied to the whole mini-batch at once, as sklearn does).
        centers[touched] = ((centers[touched].double() * old.unsqueeze(1) + sums) / (old + hits).unsqueeze(1)).float()
        counts[touched] = old + hits
        self._inertia += sqdist.double().sum(dim=1).cpu()

    @property
    def cluster_centers(self):
        return self._centers.float().cpu().numpy()

    @property
    def counts(self):
        return self._counts.cpu().numpy()

    @property
    def inertia(self):
        return self._inertia.numpy().copy()


def make_kmeans(
    backend: str,
    n_layers: int,
    n_clusters: int,
    batch_size: int = 64,
    init_size: int | None = None,
    seed: int = 0,
    device="cpu",
) -> LayerwiseKMeans:
    """A :class:`LayerwiseKMeans` of the named backend (``sklearn`` always runs on the CPU)."""
    if backend == "sklearn":
        return SklearnLayerwiseKMeans(n_layers, n_clusters, batch_size, init_size, seed)
    if backend == "torch":
        return TorchLayerwiseKMeans(n_layers, n_clusters, batch_size, init_size, seed, device=device)
    raise KMeansError(f"unknown k-means backend {backend!r}; choose from {', '.join(BACKENDS)}")


def squared_distances(x: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """``[..., n, k]`` squared Euclidean distances between ``x [..., n, D]`` and ``centers [..., k, D]``."""
    cross = torch.matmul(x, centers.transpose(-1, -2))
    dist = x.pow(2).sum(-1, keepdim=True) - 2 * cross + centers.pow(2).sum(-1).unsqueeze(-2)
    return dist.clamp_min_(0)


def assign(x: torch.Tensor, centers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centre of each frame: ``(labels [L, n] int64, squared distance [L, n])`` for
    ``x [L, n, D]`` and ``centers [L, k, D]`` (ties go to the lower index)."""
    dist = squared_distances(x.float(), centers.float())
    sqdist, labels = dist.min(dim=-1)
    return labels, sqdist


def kmeans_plus_plus(
    x: torch.Tensor, k: int, generator: torch.Generator, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, with 2 + log k trials per centre as in
    sklearn) of ``x [n, D]``; returns ``[k, D]``. Draws come from the CPU ``generator``."""
    n = x.shape[0]
    if n < k:
        raise KMeansError(f"k-means++ needs at least {k} points, got {n}")
    w = torch.ones(n, dtype=torch.float64, device=x.device) if weights is None else weights.double().to(x.device)
    trials = 2 + int(math.log(k))
    norms = x.pow(2).sum(-1)  # once: every candidate is measured against all points

    def dist_to(rows: torch.Tensor) -> torch.Tensor:  # [len(rows), n] squared distances
        return (norms[rows].unsqueeze(1) - 2 * x[rows] @ x.t() + norms.unsqueeze(0)).clamp_min_(0).double()

    first = int(torch.multinomial(w.cpu(), 1, generator=generator))
    chosen = [first]
    closest = dist_to(torch.tensor([first], device=x.device))[0]  # [n]
    for _ in range(1, k):
        potential = (closest * w).cumsum(0)
        total = float(potential[-1])
        if total <= 0:  # every point sits on a centre already: take unused points in order
            taken = set(chosen)
            unused = [i for i in range(n) if i not in taken]
            chosen.extend(unused[: k - len(chosen)])
            break
        draws = (torch.rand(trials, generator=generator, dtype=torch.float64) * total).to(x.device)
        candidates = torch.searchsorted(potential, draws).clamp_(max=n - 1)
        cand_dist = torch.minimum(closest.unsqueeze(0), dist_to(candidates))  # [t, n]
        best = int(torch.argmin((cand_dist * w).sum(1)))
        chosen.append(int(candidates[best]))
        closest = cand_dist[best]
    return x[torch.tensor(chosen, device=x.device)].clone()


def merge_centroids(
    shards: Sequence[tuple[np.ndarray, np.ndarray]], n_clusters: int, seed: int = 0, n_init: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Combine per-shard clusterings into one: per layer, weighted k-means (Lloyd, sklearn ``KMeans``)
    of all shards' centres with their counts as weights (the two-level scheme of Guha et al. 2003,
    "Clustering data streams").

    ``shards``: ``(centers [L, k, D], counts [L, k])`` per shard. Returns ``(centers float32 [L, k, D],
    counts float64 [L, k])``, the counts being the shard weight each merged centre took over.
    """
    from sklearn.cluster import KMeans

    centers = np.concatenate([c for c, _ in shards], axis=1)  # [L, S*k, D]
    counts = np.concatenate([w for _, w in shards], axis=1)  # [L, S*k]
    merged, merged_counts = [], []
    for layer in range(centers.shape[0]):
        keep = counts[layer] > 0
        points, weights = centers[layer][keep].astype(np.float64), counts[layer][keep].astype(np.float64)
        if len(points) < n_clusters:
            raise KMeansError(
                f"layer row {layer}: only {len(points)} used centres across shards for {n_clusters} clusters"
            )
        model = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed + layer)
        model.fit(points, sample_weight=weights)
        merged.append(model.cluster_centers_.astype(np.float32))
        merged_counts.append(np.bincount(model.labels_, weights=weights, minlength=n_clusters))
    return np.stack(merged), np.stack(merged_counts)
