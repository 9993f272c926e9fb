"""Datasets and batching for MOS experts: data list CSVs in, ``(wavs, MOSBatch)`` batches out.

The s3prl runner iterates ``for wavs, *others in dataloader`` and hands ``others`` to the expert, so a
batch here is ``(wavs, MOSBatch)``: the waveforms for the upstream and everything else the expert needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Sampler

from .audio import load_audio
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


class LengthBucketBatchSampler(Sampler[List[int]]):
    """Deterministic batches of similar durations (longest first), bounded by count and total seconds.

    Grouping similar lengths keeps padding, and so wasted upstream compute, small during evaluation.
    """

    def __init__(self, durations: Sequence[float], max_batch: int, max_seconds: float):
        order = sorted(range(len(durations)), key=lambda i: (-durations[i], i))
        self.batches: List[List[int]] = []
        current: List[int] = []
        for index in order:
            longest = durations[current[0]] if current else durations[index]
            if current and (len(current) >= max_batch or longest * (len(current) + 1) > max_seconds):
                self.batches.append(current)
                current = []
            current.append(index)
        if current:
            self.batches.append(current)

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


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


def eval_loader(dataset: MOSDataset, batch_size: int, max_seconds: float, num_workers: int) -> DataLoader:
    """Length-bucketed, deterministic batches over the whole split (on one process, as s3prl evaluates)."""
    durations = [u.duration for u in dataset.utterances]
    sampler = LengthBucketBatchSampler(durations, batch_size, max_seconds)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=dataset.collate)
