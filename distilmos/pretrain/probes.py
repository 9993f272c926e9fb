"""Frozen linear probes: how well a property of an utterance (voice, speaking rate, degradation ...) can be
read linearly from each layer of an upstream.

Each utterance becomes, per layer, the mean and standard deviation over time of that layer's hidden states
(the standard deviation carries temporal cues such as rate); a logistic regression is fitted on the
training utterances and scored on held-out ones. Comparing a pretrained upstream with the same architecture
at random init says what pretraining put into the layers, beyond what the architecture gives for free.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


@torch.no_grad()
def pooled_layers(upstream, wavs: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """Per layer, ``[utterances, 2 * dim]`` mean+std pooled hidden states of an s3prl upstream (one utterance
    at a time, so padding never enters the statistics)."""
    upstream.eval()
    per_layer: list[list[np.ndarray]] = []
    for wav in wavs:
        hidden = upstream([wav])["hidden_states"]
        if not per_layer:
            per_layer = [[] for _ in hidden]
        for store, h in zip(per_layer, hidden):
            h = h[0].double()
            store.append(torch.cat([h.mean(0), h.std(0)]).numpy())
    return [np.stack(rows) for rows in per_layer]


def probe_accuracy(
    train_x: np.ndarray, train_y: Sequence[str], test_x: np.ndarray, test_y: Sequence[str], seed: int = 0
) -> float:
    """Held-out accuracy of a standardised multinomial logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0, random_state=seed))
    probe.fit(train_x, list(train_y))
    return float(np.mean(probe.predict(test_x) == np.asarray(list(test_y))))


def majority_rate(train_y: Sequence[str], test_y: Sequence[str]) -> float:
    """Accuracy of always answering the training set's most frequent class (the probe's chance level)."""
    values, counts = np.unique(list(train_y), return_counts=True)
    return float(np.mean(np.asarray(list(test_y)) == values[counts.argmax()]))


def probe_layers(
    features: list[np.ndarray], labels: Sequence[str], is_train: Sequence[bool], seed: int = 0
) -> dict[str, object]:
    """Probe every layer for one property; rows with an empty label are left out.

    Returns ``{"chance": majority rate, "classes": n, "layers": [accuracy of layer 0 ... N]}``.
    """
    labels = np.asarray(list(labels))
    keep = labels != ""
    train = keep & np.asarray(list(is_train))
    test = keep & ~np.asarray(list(is_train))
    return {
        "chance": majority_rate(labels[train], labels[test]),
        "classes": len(np.unique(labels[keep])),
        "layers": [probe_accuracy(x[train], labels[train], x[test], labels[test], seed) for x in features],
    }
