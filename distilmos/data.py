"""Datasets and batching for MOS experts: data list CSVs in, ``(wavs, MOSBatch)`` batches out.

The s3prl runner iterates ``for wavs, *others in dataloader`` and hands ``others`` to the expert, so a
batch here is ``(wavs, MOSBatch)``: the waveforms for the upstream and everything else the expert needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from .audio import load_audio
from .batching import PlannedBatchSampler
from .datalist import Utterance


@dataclass
class MOSBatch:
    """Everything but the waveforms: targets, ids, and optional training targets."""

    scores: torch.Tensor  # [batch] float32 (NaN for an unscored utterance)
    systems: List[str]
    sample_ids: List[str]
    tokens: Optional[List[torch.Tensor]] = None  # per utterance LongTensor [frames, layers]
    wavs: Optional[List[torch.Tensor]] = None  # kept for a teacher forward (MSE distillation)


class MOSDataset(Dataset):
    """Utterances of a validated data list; optionally with k-means tokens from a token store.

    ``token_store`` is any object with ``tokens(sample_id) -> LongTensor[frames, layers]`` (see
    ``upstream_tokens.store.TokenStore``); it is opened lazily in each worker, so it is fork-safe.
    """

    def __init__(self, utterances: Sequence[Utterance], token_store=None, keep_wavs: bool = False):
        self.utterances = list(utterances)
        self.token_store = token_store
        self.keep_wavs = keep_wavs

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int):
        utt = self.utterances[index]
        tokens = self.token_store.tokens(utt.sample_id) if self.token_store is not None else None
        return load_audio(utt.wav_path), utt, tokens

    def collate(self, items) -> tuple:
        wavs = [wav for wav, _, _ in items]
        utts = [utt for _, utt, _ in items]
        batch = MOSBatch(
            scores=torch.tensor([u.score for u in utts], dtype=torch.float32),
            systems=[u.system_id for u in utts],
            sample_ids=[u.sample_id for u in utts],
            tokens=[t for _, _, t in items] if self.token_store is not None else None,
            wavs=wavs if self.keep_wavs else None,
        )
        return wavs, batch


def train_loader(dataset: MOSDataset, batch_size: int, num_workers: int, seed: int, epoch: int) -> DataLoader:
    """Shuffled batches, reshuffled per epoch from ``seed``; a DistributedSampler under DDP."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        sampler = DistributedSampler(dataset, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
    else:
        generator = torch.Generator().manual_seed(seed + epoch)
        sampler = RandomSampler(dataset, generator=generator)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=dataset.collate, drop_last=False)


def eval_loader(dataset: MOSDataset, batch_size: int, max_seconds: float, num_workers: int,
                max_pad: Optional[float] = None) -> DataLoader:
    """Deterministic batches of similar lengths over the whole split (on one process, as s3prl evaluates),
    by the toolkit's one batching rule (:func:`distilmos.batching.plan_batches`): at most ``batch_size``
    utterances and ``max_seconds`` of padded audio a batch, no utterance padded by more than ``max_pad``
    of its batch's longest (``None``: no cap)."""
    sampler = PlannedBatchSampler([u.num_samples for u in dataset.utterances], max_seconds, batch_size, max_pad)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=dataset.collate)
