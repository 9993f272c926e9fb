"""The one length-batching rule of the toolkit, used wherever utterances of many lengths go through an
upstream together: the experts' evaluation loaders, token extraction, and the predictor.

Utterances are sorted by length (longest first, ties in list order) and cut greedily into batches of at
most ``max_batch_items`` utterances and ``max_batch_seconds`` of padded audio, and, when ``max_pad`` is
given, with no utterance padded by more than ``max_pad`` of its batch's longest.

Why a padding cap at all: padding is not neutral for every upstream. s3prl's WavLM, HuBERT and wav2vec
2.0 run a padding-exact forward here (:mod:`distilmos.upstream.padding_exact`) and need no cap; for any other
upstream, where results must not depend on batch composition, the cap keeps each utterance close to its
length alone. :func:`resolve_max_pad` turns the default ``"auto"`` into one or the other; ``max_pad=0``
batches only equal lengths.

The plan is a pure function of its arguments, so a resumed or sharded job forms exactly the batches an
uninterrupted single run forms.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler

from distilmos.errors import ConfigError

from .audio import SAMPLE_RATE

#: ``max_pad`` default: no cap for a padding-exact upstream, :data:`STRICT_MAX_PAD` for any other
AUTO = "auto"
#: the cap for upstreams whose padding can move valid frames (a 2 % pad changes ~1-4 % of k-means tokens)
STRICT_MAX_PAD = 0.02

MaxPad = float | None | str


def parse_max_pad(text: str) -> MaxPad:
    """A ``--max_pad`` value: ``auto``, ``none`` (no cap) or a fraction >= 0."""
    if text.lower() in (AUTO, "none"):
        return AUTO if text.lower() == AUTO else None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"takes auto, none or a fraction >= 0, not {text!r}")
    return value


def max_pad_setting(value, key: str = "eval_max_pad") -> MaxPad:
    """A padding cap from a config value: ``auto``, ``none`` (or null: no cap) or a number >= 0."""
    if value is None or isinstance(value, str):
        try:
            return None if value is None else parse_max_pad(value)
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"{key} {exc}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{key} takes auto, none or a fraction >= 0, not {value!r}")
    return float(value)


def resolve_max_pad(max_pad: MaxPad, padding_exact: bool, who: str | None = None) -> float | None:
    """The cap to plan with: ``"auto"`` is no cap (``None``) for a padding-exact upstream, else
    :data:`STRICT_MAX_PAD`; a number or ``None`` is kept. With ``who`` (the tool batching), one line
    on stderr says when ``auto`` falls back to the cap, so that a slower, smaller-batch run is explained."""
    if max_pad != AUTO:
        return max_pad
    if padding_exact:
        return None
    if who:
        print(
            f"[{who}] the upstream has no padding-exact forward (only s3prl's WavLM, HuBERT and wav2vec 2.0 "
            f"have one): max_pad auto keeps batches padded by at most {STRICT_MAX_PAD:g} of their longest",
            file=sys.stderr,
        )
    return STRICT_MAX_PAD


def plan_batches(
    lengths: Sequence[int], max_batch_seconds: float = 100.0, max_batch_items: int = 64, max_pad: float | None = None
) -> list[list[int]]:
    """Batches of indices into ``lengths`` (samples at 16 kHz); see the module docstring.

    ``max_pad=None`` sets no padding cap.
    """
    if max_batch_items < 1 or max_batch_seconds <= 0 or (max_pad is not None and max_pad < 0):
        raise ConfigError(
            f"batching needs at least 1 utterance and more than 0 s a batch and a padding cap >= 0 "
            f"(got max_batch_items={max_batch_items}, max_batch_seconds={max_batch_seconds}, "
            f"max_pad={max_pad})"
        )
    order = sorted(range(len(lengths)), key=lambda i: (-int(lengths[i]), i))
    budget = max_batch_seconds * SAMPLE_RATE
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current:
            longest = int(lengths[current[0]])
            fits = (
                len(current) < max_batch_items
                and longest * (len(current) + 1) <= budget
                and (max_pad is None or longest - int(lengths[i]) <= max_pad * longest)
            )
            if not fits:
                batches.append(current)
                current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class PlannedBatchSampler(Sampler[list[int]]):
    """A DataLoader ``batch_sampler`` over the batches of :func:`plan_batches`, in plan order."""

    def __init__(
        self, lengths: Sequence[int], max_batch_seconds: float, max_batch_items: int, max_pad: float | None = None
    ):
        self.batches = plan_batches(lengths, max_batch_seconds, max_batch_items, max_pad)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
