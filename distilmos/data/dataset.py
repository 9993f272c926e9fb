"""Datasets and batching for MOS experts: data list CSVs in, ``(wavs, MOSBatch)`` batches out.

The s3prl runner iterates ``for wavs, *others in dataloader`` and hands ``others`` to the expert, so a
batch here is ``(wavs, MOSBatch)``: the waveforms for the upstream and everything else the expert needs.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .audio import AudioError, load_audio
from .batching import PlannedBatchSampler
from .datalist import Utterance


@dataclass
class MOSBatch:
    """Everything but the waveforms: targets, ids, and optional training targets."""

    scores: torch.Tensor  # [batch] float32 (NaN for an unscored utterance)
    systems: list[str]
    sample_ids: list[str]
    tokens: list[torch.Tensor] | None = None  # per utterance LongTensor [frames, layers]
    wavs: list[torch.Tensor] | None = None  # kept for a teacher forward (MSE distillation)
    skipped: list[str] = field(default_factory=list)  # why each unreadable utterance of the batch was left out


class MOSDataset(Dataset):
    """Utterances of a validated data list; optionally with k-means tokens from a token store.

    ``token_store`` is any object with ``tokens(sample_id) -> LongTensor[frames, layers]`` (see
    :class:`distilmos.data.stores.TokenStore`); it is opened lazily in each worker, so it is fork-safe.

    Audio is checked when it is read (the preflight reads only headers): a file that cannot be decoded or
    holds NaN or infinite samples raises :class:`~distilmos.data.audio.AudioError` naming the file and its row
    in the data list, or, with ``skip_bad_audio``, is left out of its batch and named in ``batch.skipped``.
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        token_store=None,
        keep_wavs: bool = False,
        skip_bad_audio: bool = False,
        feature_store=None,
    ):
        self.utterances = list(utterances)
        self.token_store = token_store
        self.keep_wavs = keep_wavs
        self.skip_bad_audio = skip_bad_audio
        self.feature_store = feature_store

    def use_feature_cache(self, store, split: str) -> None:
        """Yield each utterance's cached hidden states (``store.features``) instead of its waveform;
        every utterance must be in the cache."""
        missing = [u.sample_id for u in self.utterances if u.sample_id not in store]
        if missing:
            origin = self.utterances[0].origin.rsplit(":", 1)[0] if self.utterances[0].origin else split
            raise store.error(
                f"{len(missing)} utterances of split {split!r} are not in feature cache {store.path} (first: "
                f"{missing[:3]}); cache them with `python -m upstream_tokens cache --csv {origin} --split {split} "
                f"--store {store.path} -u {store.meta['upstream']}`"
            )
        self.feature_store = store

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int):
        utt = self.utterances[index]
        tokens = self.token_store.tokens(utt.sample_id) if self.token_store is not None else None
        if self.feature_store is not None:
            return self.feature_store.features(utt.sample_id), utt, tokens
        try:
            wav = load_audio(utt.wav_path)
        except AudioError as exc:
            message = f"{utt.origin or 'data list'} [{utt.sample_id}]: {exc}"
            if self.skip_bad_audio:
                return message, utt, None
            raise AudioError(message) from exc
        return wav, utt, tokens

    def collate(self, items) -> tuple:
        skipped = [wav for wav, _, _ in items if isinstance(wav, str)]
        items = [item for item in items if not isinstance(item[0], str)]
        wavs = [wav for wav, _, _ in items]
        utts = [utt for _, utt, _ in items]
        batch = MOSBatch(
            scores=torch.tensor([u.score for u in utts], dtype=torch.float32),
            systems=[u.system_id for u in utts],
            sample_ids=[u.sample_id for u in utts],
            tokens=[t for _, _, t in items] if self.token_store is not None else None,
            wavs=wavs if self.keep_wavs else None,
            skipped=skipped,
        )
        return wavs, batch


class EpochOrderSampler(Sampler[int]):
    """The utterance order of one training epoch, from a seed, starting at any position.

    The order is a seeded permutation (``seed + epoch``); under ``torch.distributed`` each rank takes its
    share as :class:`~torch.utils.data.DistributedSampler` does (same seed on every rank). Starting at
    ``start`` lets a resumed run continue the interrupted epoch exactly where it stopped.
    """

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0):
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            sampler = DistributedSampler(range(n), shuffle=True, seed=seed)
            sampler.set_epoch(epoch)
            order = list(sampler)
        else:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        self.order = order[start:]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


def _quiet_worker(worker_id: int) -> None:
    # SIGTERM/SIGINT are the main process's to handle (it finishes the step and saves, see
    # distilmos.train.preemption); a worker killed by them would abort the step instead. Workers still exit
    # with their parent.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)


def train_loader(
    dataset: MOSDataset, batch_size: int, num_workers: int, seed: int, epoch: int, start_batch: int = 0
) -> DataLoader:
    """Shuffled batches, reshuffled per epoch from ``seed`` (each rank its share under DDP), starting
    after the epoch's first ``start_batch`` batches.

    The loader draws nothing from the global random generators (its worker seeds come from its own
    generator), so a run resumed mid-epoch sees the same random numbers as one that never stopped.
    """
    sampler = EpochOrderSampler(len(dataset), seed, epoch, start_batch * batch_size)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=dataset.collate,
        drop_last=False,
        worker_init_fn=_quiet_worker,
        generator=torch.Generator().manual_seed(seed + epoch),
    )


def eval_loader(
    dataset: MOSDataset, batch_size: int, max_seconds: float, num_workers: int, max_pad: float | None = None
) -> DataLoader:
    """Deterministic batches of similar lengths over the whole split (on one process, as s3prl evaluates),
    by the toolkit's one batching rule (:func:`distilmos.data.batching.plan_batches`): at most ``batch_size``
    utterances and ``max_seconds`` of padded audio a batch, no utterance padded by more than ``max_pad``
    of its batch's longest (``None``: no cap)."""
    sampler = PlannedBatchSampler([u.num_samples for u in dataset.utterances], max_seconds, batch_size, max_pad)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=dataset.collate)
