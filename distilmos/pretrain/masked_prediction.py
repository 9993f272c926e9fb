"""HuBERT-style masked prediction with s3prl's own ``HubertModel``: targets, the model, one training step,
masked-prediction accuracy.

Iteration 1 predicts k-means clusters of MFCC frames (13 cepstra + deltas + delta-deltas at the model's
50 Hz frame rate, so one target per output frame); a later iteration predicts k-means clusters of a layer of
the previous model. The loss is HuBERT's: cross entropy of the cosine-similarity logits over the *masked*
frames (the unmasked ones are not scored), plus 10 x the feature penalty.

s3prl draws mask spans with NumPy's global random generator; :func:`numpy_seeded` gives every draw a
seed of its own and puts the global state back, so runs are reproducible and nothing else is disturbed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from distilmos.data.audio import SAMPLE_RATE
from distilmos.upstream.tiny import model_config

FEATURE_PENALTY = 10.0  # HuBERT's weight of the squared-feature penalty
FRAME_SHIFT = 320  # samples per output frame of the convolutional front end (20 ms at 16 kHz)
RECEPTIVE_FIELD = 400  # samples seen by the first output frame (25 ms)


@contextlib.contextmanager
def numpy_seeded(seed: Sequence[int]) -> Iterator[None]:
    """Run a block with NumPy's global generator seeded from ``seed``; restore the previous state after."""
    state = np.random.get_state()
    np.random.seed(np.random.SeedSequence(list(seed)).generate_state(1)[0])
    try:
        yield
    finally:
        np.random.set_state(state)


def n_frames(n_samples: int) -> int:
    """Frames the front end (and the MFCC below) give for ``n_samples`` samples."""
    return 0 if n_samples < RECEPTIVE_FIELD else 1 + (n_samples - RECEPTIVE_FIELD) // FRAME_SHIFT


def mfcc_frames(wav: torch.Tensor) -> torch.Tensor:
    """``[n_frames(len(wav)), 39]`` MFCCs with deltas, one per model frame (25 ms window, 20 ms shift)."""
    import torchaudio

    mfcc = torchaudio.compliance.kaldi.mfcc(
        wav.unsqueeze(0) * 32768,
        sample_frequency=SAMPLE_RATE,
        frame_length=25.0,
        frame_shift=20.0,
        num_ceps=13,
        use_energy=False,
        dither=0.0,
    )
    d1 = torchaudio.functional.compute_deltas(mfcc.T)
    d2 = torchaudio.functional.compute_deltas(d1)
    return torch.cat([mfcc.T, d1, d2], dim=0).T.contiguous()


def fit_kmeans(frames: Sequence[torch.Tensor], k: int, seed: int, max_frames: int = 100_000):
    """A standardiser and MiniBatchKMeans over (a seeded sample of) the frames; returns ``assign(frames)``."""
    from sklearn.cluster import MiniBatchKMeans

    pool = torch.cat(list(frames)).double().numpy()
    rng = np.random.default_rng(seed)
    if len(pool) > max_frames:
        pool = pool[np.sort(rng.choice(len(pool), size=max_frames, replace=False))]
    # Standardise first: raw MFCC c0 (level) or one large activation would otherwise decide every cluster.
    mean, std = pool.mean(0), pool.std(0) + 1e-8
    kmeans = MiniBatchKMeans(n_clusters=k, batch_size=4096, n_init=3, max_iter=100, random_state=seed)
    kmeans.fit((pool - mean) / std)

    def assign(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(kmeans.predict((x.double().numpy() - mean) / std).astype(np.int64))

    return assign


def hubert_config(n_classes: int, size: str = "tiny", **overrides) -> dict:
    """The ``model_cfg`` of a HuBERT at ``size`` pretrained with ``n_classes`` targets (kept in the checkpoint)."""
    # The Base models' front end (GroupNorm over time, post-LN transformer), trained here: the per-frame
    # LayerNorm front end the random tiny checkpoints use did not learn even frame-wise cluster prediction
    # from raw (unnormalised) audio in our trials, while this one did within 100 steps.
    cfg = model_config("hubert", size, frontend="group_norm")
    # only the masked frames are scored (HuBERT's pred_nomask_weight 0): skip computing the others
    cfg.update(skip_nomask=True, mask_prob=0.65, mask_length=10)
    cfg.update(overrides)
    return cfg


def build_model(model_cfg: dict, n_classes: int, seed: int):
    """A freshly initialised s3prl ``HubertModel`` and the checkpoint fields that describe it."""
    from s3prl.upstream.hubert.hubert_model import (
        HubertConfig,
        HubertModel,
        HubertPretrainingConfig,
    )
    from s3prl.upstream.utils import merge_with_parent

    torch.manual_seed(seed)
    task_cfg = {"sample_rate": SAMPLE_RATE, "normalize": False, "label_rate": model_cfg["label_rate"]}
    symbols = [[str(i) for i in range(n_classes)]]
    model = HubertModel(
        merge_with_parent(HubertConfig, dict(model_cfg)),
        merge_with_parent(HubertPretrainingConfig, dict(task_cfg)),
        symbols,
    )
    return model, {"task_cfg": task_cfg, "model_cfg": dict(model_cfg), "dictionaries_symbols": symbols}


def checkpoint(model, fields: dict) -> dict:
    """The ``hubert_local`` checkpoint dict of ``model`` (tensors and plain values only)."""
    weights = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    return {**fields, "model_weight": weights}


@dataclass
class Batch:
    """Equal-length waveform crops ``[B, samples]`` and their targets ``[B, frames]``."""

    wavs: torch.Tensor
    targets: torch.Tensor


def make_batch(
    wavs: list[torch.Tensor], targets: list[torch.Tensor], rng: np.random.Generator, crop_samples: int
) -> Batch:
    """Crop every utterance to the same length (the shortest in the batch, at most ``crop_samples``) at a
    frame-aligned random offset, so no padding is needed and targets stay aligned with frames."""
    length = min(crop_samples, *(len(w) for w in wavs))
    frames = n_frames(length)
    length = RECEPTIVE_FIELD + (frames - 1) * FRAME_SHIFT
    crops, crop_targets = [], []
    for wav, target in zip(wavs, targets):
        max_start = min(len(target) - frames, (len(wav) - length) // FRAME_SHIFT)
        start = int(rng.integers(0, max_start + 1))
        crops.append(wav[start * FRAME_SHIFT : start * FRAME_SHIFT + length])
        crop_targets.append(target[start : start + frames])
    return Batch(torch.stack(crops), torch.stack(crop_targets))


def masked_loss(model, batch: Batch, mask_seed: Sequence[int]) -> dict[str, torch.Tensor]:
    """HuBERT's loss and masked-prediction accuracy of one batch; the masks are drawn from ``mask_seed``."""
    padding = torch.zeros(batch.wavs.shape, dtype=torch.bool)
    with numpy_seeded(mask_seed):
        out = model(batch.wavs, target_list=[batch.targets], padding_mask=padding, mask=True)
    logits = out["logit_m_list"][0].float()  # [masked frames, 1 + classes]; column 0 is the true class
    target = logits.new_zeros(len(logits), dtype=torch.long)
    ce = F.cross_entropy(logits, target)
    loss = ce + FEATURE_PENALTY * out["features_pen"]
    # the true class sits in column 0 and also among the negatives (where it is set to -inf), so argmax 0
    # means the right cluster won
    correct = (logits.argmax(-1) == 0).float().sum()
    return {"loss": loss, "ce": ce.detach(), "correct": correct.detach(), "count": torch.tensor(len(logits))}


def train_step(model, optimizer, batch: Batch, mask_seed: Sequence[int], clip: float = 10.0) -> dict[str, float]:
    """One optimiser step; returns loss, cross entropy and masked accuracy as floats."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    out = masked_loss(model, batch, mask_seed)
    out["loss"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return {"loss": float(out["loss"].detach()), "ce": float(out["ce"]), "acc": float(out["correct"] / out["count"])}


@torch.no_grad()
def masked_accuracy(
    model,
    wavs: list[torch.Tensor],
    targets: list[torch.Tensor],
    seed: int,
    crop_samples: int = 64000,
    batch_size: int = 8,
) -> dict[str, float]:
    """Masked-prediction accuracy and cross entropy over utterances (eval mode; seeded crops and masks,
    so two models are scored on exactly the same frames)."""
    model.eval()
    rng = np.random.default_rng(seed)
    correct = count = ce_sum = 0.0
    for i in range(0, len(wavs), batch_size):
        batch = make_batch(wavs[i : i + batch_size], targets[i : i + batch_size], rng, crop_samples)
        out = masked_loss(model, batch, (seed, i))
        correct += float(out["correct"])
        count += float(out["count"])
        ce_sum += float(out["ce"]) * float(out["count"])
    return {"acc": correct / max(count, 1), "ce": ce_sum / max(count, 1), "frames": int(count)}


@torch.no_grad()
def layer_features(model, wav: torch.Tensor, layer: int | None = None) -> torch.Tensor:
    """``[frames, dim]`` output of transformer ``layer`` (1-based; default: the last) of one utterance."""
    model.eval()
    padding = torch.zeros(1, len(wav), dtype=torch.bool)
    x, _ = model.extract_features(wav.unsqueeze(0), padding_mask=padding, mask=False, output_layer=layer)
    return x[0]
