"""Frozen upstream features for token building: length-aware batches, one forward per batch, the
unpadded frames of every selected layer.

Frame count rule. The tokens of an utterance have exactly as many frames as the upstream gives for that
waveform *alone*. The upstream is asked once, at start-up, with a few short probe waveforms: from them
its frame law ``frames(n_samples) = (n_samples + offset) // rate`` is found (``rate`` is the downsample
rate; e.g. ``offset = -80`` for the wav2vec 2.0 / HuBERT / WavLM front end, 400-sample receptive field
and 320-sample hop). Every padded batch then checks the law against the frames the upstream returned
for its longest waveform, and each row keeps only its first ``frames(len(wav))`` frames. The law is
saved in the store's meta. For s3prl's WavLM / HuBERT / wav2vec 2.0 upstreams (padding-exact, see
below) it is the front end's convolution formula, which the runner's featurizer and the predictor cut
features at too. A downstream trims tokens and its own features to the shorter of the two and treats a
gap of more than 2 frames as a store/upstream mismatch.

Batching. s3prl's WavLM / HuBERT / wav2vec 2.0 upstreams are built with their padding-exact forward
(:mod:`distilmos.upstream.padding_exact`): a batched forward gives every row the frames it gets alone, so batches
are bounded only by size (``max_pad`` ``auto`` = no cap) and the tokens do not depend on batching. Any
other upstream may let padding move valid frames (the Base-size front end's GroupNorm over time did,
before it was made exact: about 0.7 % relative change and 1-2 % of tokens flipped per 1 % of padding), so
for those ``auto`` bounds the padding any row may receive to 2 % of its batch's longest; ``max_pad=0``
batches only equal lengths (batch-independent for any upstream, up to float rounding).
The batch plan is a pure function of the data list and the batching options, so a resumed or sharded
run forms exactly the same batches, and so the same tokens, as an uninterrupted single run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
from tqdm import tqdm

from distilmos.data.audio import load_audio, probe_audio, samples_at_16k
from distilmos.data.batching import AUTO, MaxPad, plan_batches, resolve_max_pad
from distilmos.data.datalist import Utterance, read_datalist
from distilmos.errors import ToolkitError
from distilmos.upstream.build import build_upstream
from distilmos.upstream.padding_exact import is_padding_exact
from distilmos.upstream.utterance import ONE_FRAME

log = logging.getLogger(__name__)


class TokenExtractionError(ToolkitError, RuntimeError):
    """An upstream whose outputs cannot be turned into per-utterance frames (the message says why)."""


class OptionError(ToolkitError, ValueError):
    """A ``--layers`` or batching option that cannot be used (the message says what to give)."""


# ------------------------------------------------------------------------------------------- layers


def parse_layers(spec: None | str | Sequence[int], n_layers: int) -> list[int]:
    """Layer numbers from ``"all"`` (1..N), ``"hidden_states"`` (0..N: every hidden state s3prl's
    featurizer sees), ``"last"`` (N), ``"1-12"``, ``"3,6,9"``, ``"0,4-6"`` or a list of ints.

    ``0`` is the pre-transformer features, ``n`` the output of transformer layer ``n``; the result is
    sorted and without duplicates.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "all"):
        return list(range(1, n_layers + 1))
    if isinstance(spec, str) and spec.strip().lower() == "hidden_states":
        return list(range(0, n_layers + 1))
    if isinstance(spec, str) and spec.strip().lower() == "last":
        return [n_layers]
    if isinstance(spec, str):
        layers = []
        for part in spec.replace(" ", "").split(","):
            match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
            if not match:
                raise OptionError(f"--layers {spec!r}: cannot read {part!r}; use all, 1-12 or 3,6,9")
            lo, hi = int(match.group(1)), int(match.group(2) or match.group(1))
            if hi < lo:
                raise OptionError(f"--layers {spec!r}: empty range {part!r}")
            layers.extend(range(lo, hi + 1))
    else:
        layers = [int(n) for n in spec]
    layers = sorted(set(layers))
    bad = [n for n in layers if not 0 <= n <= n_layers]
    if bad or not layers:
        raise OptionError(
            f"layers {bad or layers} out of range: this upstream has layers 0..{n_layers} "
            "(0 = pre-transformer features)"
        )
    return layers


# --------------------------------------------------------------------------------------- frame law


@dataclass(frozen=True)
class FrameLaw:
    """``frames(n) = max(0, (n + offset) // rate)``."""

    rate: int
    offset: int

    def frames(self, n_samples: int) -> int:
        return max(0, (int(n_samples) + self.offset) // self.rate)

    @property
    def min_samples(self) -> int:
        """The shortest waveform given a frame (the front end's receptive field: 400 for wav2vec 2.0 & co.)."""
        return max(1, self.rate - self.offset)


def calibrate_frame_law(count_frames: Callable[[int], int], rate: int, start: int | None = None) -> FrameLaw:
    """Find the frame law of an upstream from single-waveform probes (about 13 short forwards).

    ``count_frames(n)`` runs the upstream on one ``n``-sample waveform. The frame count must grow by one
    every ``rate`` samples; the step position is found by bisection and the law is checked at two more
    lengths. Raises :class:`TokenExtractionError` otherwise.
    """
    n0 = start or 16 * rate
    f0 = count_frames(n0)
    lo, hi = n0, n0 + rate
    if count_frames(hi) != f0 + 1:
        raise TokenExtractionError(
            f"the upstream's frame count does not grow by one per {rate} samples (its downsample rate): "
            f"{f0} frames at {n0} samples, {count_frames(hi)} at {hi}"
        )
    while hi - lo > 1:  # smallest length with f0 + 1 frames
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if count_frames(mid) > f0 else (mid, hi)
    law = FrameLaw(rate, (f0 + 1) * rate - hi)
    for n in (n0 + 3 * rate + rate // 3, n0 + 7 * rate + 1):
        if law.frames(n) != count_frames(n):
            raise TokenExtractionError(
                f"the upstream's frame count at {n} samples is {count_frames(n)}, "
                f"not the {law.frames(n)} its other lengths predict"
            )
    return law


# ---------------------------------------------------------------------------------------- batching


def audio_lengths(utterances: Sequence[Utterance]) -> list[int]:
    """Sample counts at 16 kHz, from the file headers (no decoding); the preflight's when it read them."""

    def length(utt: Utterance) -> int:
        if utt.num_samples:
            return utt.num_samples
        info = probe_audio(utt.wav_path)
        return samples_at_16k(info.frames, info.samplerate)

    return [length(utt) for utt in utterances]


@dataclass(frozen=True)
class Batching:
    """How the forward pass is batched (:func:`distilmos.data.batching.plan_batches`, the toolkit's one
    length-batching rule) and how audio is read ahead."""

    max_batch_seconds: float = 100.0
    max_batch_utts: int = 64
    max_pad: MaxPad = AUTO
    num_workers: int = 0

    def resolved(self, padding_exact: bool) -> Batching:
        """These options with ``max_pad`` ``auto`` decided for an upstream (:func:`resolve_max_pad`; a line on
        stderr says when it falls back to the cap)."""
        return replace(self, max_pad=resolve_max_pad(self.max_pad, padding_exact, who="upstream_tokens"))

    def plan(self, lengths: Sequence[int]) -> list[list[int]]:
        if self.max_pad == AUTO:
            raise ValueError("resolve max_pad 'auto' for the upstream first (Batching.resolved)")
        return plan_batches(lengths, self.max_batch_seconds, self.max_batch_utts, self.max_pad)

    def as_dict(self) -> dict:
        """The options that shape the batches (so the tokens); read-ahead workers do not."""
        return {
            "max_batch_seconds": self.max_batch_seconds,
            "max_batch_utts": self.max_batch_utts,
            "max_pad": self.max_pad,
        }


def check_shard(nshard: int, rank: int) -> None:
    """Refuse a shard spec outside ``nshard >= 1``, ``0 <= rank < nshard``."""
    if nshard < 1 or not 0 <= rank < nshard:
        raise OptionError(f"need nshard >= 1 and 0 <= rank < nshard (got nshard={nshard}, rank={rank})")


@dataclass(frozen=True)
class RunOptions:
    """How a ``fit``, ``dump`` or ``cache`` run goes, whatever it computes: the device, the forward
    batching, this process's shard of the planned batches, the progress bar, and whether it replaces what
    is there. The tool's functions take these as keyword arguments (``**run_options``)."""

    device: str | torch.device = "cpu"
    batching: Batching = Batching()
    nshard: int = 1
    rank: int = 0
    progress: bool = True
    overwrite: bool = False

    def __post_init__(self):
        check_shard(self.nshard, self.rank)  # before any long work

    def mine(self, batches: Iterable[int]) -> list[int]:
        """This rank's share of the planned batch numbers ``batches`` (``b % nshard == rank``), in their order;
        the shards partition exactly the batches an unsharded run does."""
        return [b for b in batches if b % self.nshard == self.rank]

    def desc(self, what: str) -> str:
        """The progress bar's label: ``what``, and this rank when sharded."""
        return what if self.nshard == 1 else f"{what} rank {self.rank}/{self.nshard}"


def read_list(csv_path: str, law: FrameLaw | None = None) -> tuple[list[Utterance], list[int]]:
    """A validated data list (scores not needed) and the 16 kHz sample count of each utterance; with the
    upstream's frame ``law``, a clip too short to give a frame is a bad row."""
    utterances = read_datalist(csv_path, require_score=False, min_samples=law.min_samples if law else 0)
    return utterances, audio_lengths(utterances)


class _BatchAudio(torch.utils.data.Dataset):
    """Audio of one planned batch per item (so DataLoader workers can read ahead)."""

    def __init__(self, utterances: Sequence[Utterance], batches: Sequence[Sequence[int]], order: Sequence[int]):
        self.utterances, self.batches, self.order = utterances, batches, list(order)

    def __len__(self):
        return len(self.order)

    def __getitem__(self, position):
        b = self.order[position]
        indices = list(self.batches[b])
        return b, indices, [load_audio(self.utterances[i].wav_path) for i in indices]


# --------------------------------------------------------------------------------------- extractor


@dataclass
class BatchFeatures:
    """The frames of one batch: ``feats [n_layers, sum(n_frames), dim]`` in row order."""

    batch: int
    indices: list[int]
    n_frames: list[int]
    feats: torch.Tensor


class FeatureExtractor:
    """A frozen upstream that turns a batch of waveforms into the unpadded frames of the selected layers
    with exactly one forward call."""

    def __init__(
        self,
        upstream: nn.Module,
        layers: None | str | Sequence[int] = "all",
        device: str | torch.device = "cpu",
        probe_seed: int = 0,
    ):
        self.device = torch.device(device)
        self.upstream = upstream.to(self.device).eval()
        for param in self.upstream.parameters():
            param.requires_grad_(False)
        self.downsample_rate = int(self.upstream.get_downsample_rates("hidden_states"))
        if self.downsample_rate >= ONE_FRAME:  # the probes below would be hours of audio
            raise TokenExtractionError(
                "the upstream gives one vector per utterance (an utterance embedding), not frames: it has no "
                "frame tokens or feature cache; train without --feature_cache (and with a variant without tokens)"
            )
        self.padding_exact = is_padding_exact(self.upstream)
        # Probe waveforms are seeded noise (silence can make some normalisations degenerate).
        probe = torch.randn(40 * self.downsample_rate, generator=torch.Generator().manual_seed(probe_seed)) * 0.1
        hidden = self._hidden_states([probe[: 16 * self.downsample_rate]])
        self.n_layers_upstream = len(hidden) - 1
        self.feature_dim = int(hidden[-1].shape[-1])
        self.frame_law = calibrate_frame_law(
            lambda n: int(self._hidden_states([probe[:n]])[0].shape[1]), self.downsample_rate
        )
        self.layers = parse_layers(layers, self.n_layers_upstream)
        dims = {int(hidden[n].shape[-1]) for n in self.layers}
        if len(dims) != 1:
            raise TokenExtractionError(f"selected layers {self.layers} have different feature sizes {sorted(dims)}")
        log.info(
            "upstream: %d transformer layers, dim %d, frame law (n %+d) // %d; layers %s",
            self.n_layers_upstream,
            self.feature_dim,
            self.frame_law.offset,
            self.frame_law.rate,
            self.layers,
        )

    @classmethod
    def from_spec(cls, upstream: str, ckpt: str | None = None, **kwargs) -> FeatureExtractor:
        """Build the upstream with :func:`distilmos.upstream.build.build_upstream` (hub name, ``*_local`` + ckpt,
        or ``module:callable``)."""
        return cls(build_upstream(upstream, ckpt), **kwargs)

    def _hidden_states(self, wavs: list[torch.Tensor]) -> list[torch.Tensor]:
        with torch.inference_mode():
            out = self.upstream([w.to(self.device) for w in wavs])
        hidden = out.get("hidden_states") if isinstance(out, dict) else None
        if not hidden:
            raise TokenExtractionError("the upstream returned no 'hidden_states'")
        return list(hidden)

    def __call__(self, wavs: list[torch.Tensor]) -> tuple[list[int], torch.Tensor]:
        """``(n_frames per row, feats [n_layers, sum(n_frames), dim])``: one upstream forward."""
        hidden = self._hidden_states(wavs)
        longest = max(len(w) for w in wavs)
        expected = self.frame_law.frames(longest)
        for n in self.layers:
            if hidden[n].shape[:2] != (len(wavs), expected):
                raise TokenExtractionError(
                    f"layer {n}: the upstream gave {tuple(hidden[n].shape[:2])} (batch, frames) for {len(wavs)} "
                    f"waveforms, the longest of {longest} samples; its frame law predicts {expected} frames"
                )
        n_frames = [self.frame_law.frames(len(w)) for w in wavs]
        device = hidden[self.layers[0]].device
        valid = torch.arange(expected, device=device).unsqueeze(0) < torch.tensor(n_frames, device=device).unsqueeze(1)
        # Filled layer by layer: one copy of the valid frames, not a stack of the padded ones first.
        feats = torch.empty(len(self.layers), sum(n_frames), self.feature_dim, device=device)
        for i, n in enumerate(self.layers):
            feats[i] = hidden[n][valid]
        return n_frames, feats

    def iter_batches(
        self,
        utterances: Sequence[Utterance],
        batches: Sequence[Sequence[int]],
        order: Sequence[int],
        *,
        num_workers: int = 0,
        progress: bool = True,
        desc: str = "",
    ) -> Iterator[BatchFeatures]:
        """Run the planned ``batches`` in ``order``; audio is read ahead by ``num_workers`` processes."""
        loader = torch.utils.data.DataLoader(
            _BatchAudio(utterances, batches, order), batch_size=None, shuffle=False, num_workers=num_workers
        )
        total = sum(len(batches[b]) for b in order)
        with tqdm(total=total, unit="utt", desc=desc, disable=not progress, dynamic_ncols=True) as bar:
            for b, indices, wavs in loader:
                n_frames, feats = self(wavs)
                yield BatchFeatures(int(b), list(indices), n_frames, feats)
                bar.update(len(indices))
