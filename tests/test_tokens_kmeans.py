"""upstream_tokens building blocks without an upstream: k-means backends, layer specs, the frame law."""

import numpy as np
import pytest
import torch

from upstream_tokens.extract import FrameLaw, TokenExtractionError, calibrate_frame_law, parse_layers
from upstream_tokens.kmeans import KMeansError, assign, make_kmeans, merge_centroids


def planted(n_layers=3, k=6, n=3000, dim=16, seed=0):
    """Well-separated Gaussian blobs per layer: ``(x [L, n, D] float32, labels [L, n], means [L, k, D])``."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 8, (n_layers, k, dim))
    labels = rng.integers(0, k, (n_layers, n))
    x = np.take_along_axis(means, labels[..., None], 1) + rng.normal(0, 1, (n_layers, n, dim))
    return torch.tensor(x, dtype=torch.float32), labels, means


def purity(pred, true):
    """Fraction of points whose predicted cluster's majority true label is their own."""
    return sum(np.bincount(true[pred == c]).max() for c in np.unique(pred)) / len(true)


def feed(kmeans, x, chunks=(5, 37, 200, 512)):
    """Feed frames in uneven chunks (the first smaller than k) as forward batches would."""
    pos, i = 0, 0
    while pos < x.shape[1]:
        size = chunks[i % len(chunks)]
        kmeans.partial_fit(x[:, pos : pos + size])
        pos, i = pos + size, i + 1
    return kmeans.finalize()


@pytest.mark.parametrize("backend", ["sklearn", "torch"])
def test_planted_clusters_are_recovered(backend):
    x, labels, means = planted()
    kmeans = feed(make_kmeans(backend, 3, 6, batch_size=64, seed=0), x)
    centers = kmeans.cluster_centers
    assert centers.shape == (3, 6, 16) and centers.dtype == np.float32
    pred, _ = assign(x, torch.from_numpy(centers))
    for layer in range(3):
        assert purity(pred[layer].numpy(), labels[layer]) >= 0.95
        # every planted mean has a fitted centre near it
        gaps = np.linalg.norm(means[layer][:, None] - centers[layer][None], axis=-1).min(1)
        assert gaps.max() < 1.0
    assert kmeans.n_frames == 3000 and kmeans.counts.sum(1).tolist() == [3000.0] * 3
    assert (kmeans.inertia > 0).all()


def test_merged_shard_centroids_recover_planted_clusters():
    x, labels, _ = planted(seed=1)
    shards = []
    for rank in range(3):
        kmeans = feed(make_kmeans("torch", 3, 6, batch_size=64, seed=rank), x[:, rank::3])
        shards.append((kmeans.cluster_centers, kmeans.counts))
    centers, counts = merge_centroids(shards, 6, seed=0)
    assert centers.shape == (3, 6, 16) and counts.sum(1).tolist() == [3000.0] * 3
    pred, _ = assign(x, torch.from_numpy(centers))
    for layer in range(3):
        assert purity(pred[layer].numpy(), labels[layer]) >= 0.95


@pytest.mark.parametrize("backend", ["sklearn", "torch"])
def test_backends_are_seeded(backend):
    x, _, _ = planted(k=5, n=800, seed=2)
    a = feed(make_kmeans(backend, 3, 20, batch_size=32, seed=7), x).cluster_centers
    b = feed(make_kmeans(backend, 3, 20, batch_size=32, seed=7), x).cluster_centers
    c = feed(make_kmeans(backend, 3, 20, batch_size=32, seed=8), x).cluster_centers
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_buffering_and_too_few_frames():
    kmeans = make_kmeans("sklearn", 2, 10, batch_size=4)
    assert kmeans.init_size == 12  # sklearn's rule: 3 * batch_size (raised to 3 * k only below k)
    assert make_kmeans("sklearn", 1, 200, batch_size=64).init_size == 600
    kmeans.partial_fit(torch.randn(2, 3, 5))  # fewer frames than clusters: buffered, no error
    assert kmeans.n_steps == 0
    with pytest.raises(KMeansError, match="only 3 frames"):
        kmeans.finalize()
    small = make_kmeans("torch", 2, 10, batch_size=4)
    small.partial_fit(torch.randn(2, 12, 5))
    assert small.finalize().cluster_centers.shape == (2, 10, 5)  # fewer than init_size but >= k
    with pytest.raises(KMeansError, match="unknown k-means backend"):
        make_kmeans("faiss", 1, 2)


def test_parse_layers():
    assert parse_layers("all", 12) == list(range(1, 13))
    assert parse_layers(None, 3) == [1, 2, 3]
    assert parse_layers("1-4", 12) == [1, 2, 3, 4]
    assert parse_layers("9,3,6,3", 12) == [3, 6, 9]
    assert parse_layers("0,4-5", 12) == [0, 4, 5]
    assert parse_layers([2, 1], 3) == [1, 2]
    for bad in ("13", "1-x", "5-2", ""):
        with pytest.raises(ValueError):
            parse_layers(bad, 12)


def test_frame_law_calibration():
    conv = lambda n: (n - 400) // 320 + 1  # noqa: E731  (wav2vec 2.0 front end)
    law = calibrate_frame_law(conv, 320)
    assert law == FrameLaw(320, -80)
    assert all(law.frames(n) == conv(n) for n in range(400, 50000, 37))
    centred = lambda n: n // 160 + 1  # noqa: E731  (an STFT with centre padding)
    assert all(calibrate_frame_law(centred, 160).frames(n) == centred(n) for n in range(0, 9000, 11))
    with pytest.raises(TokenExtractionError, match="does not grow by one per 320"):
        calibrate_frame_law(lambda n: n // 160, 320)
