"""Scoring audio with an exported predictor: :func:`load` and :class:`Predictor`.

    from distilmos.predictor import load
    predictor = load("model.pt")                        # device="cuda" / "cpu" (default: cuda if available)
    predictor.predict(wav=array_or_tensor, sr=44100)    # one score; any sample rate, mono or [samples, channels]
    predictor.predict(paths=["a.wav", "b.flac"])        # list of scores, in the order given
    predictor.predict(paths=[...], return_posterior=True)  # MoE-MOS: (score, {system: probability}) each

How a set of inputs is scored: every input is resampled to 16 kHz mono; one longer than ``max_seconds``
is cut into overlapping windows (:mod:`distilmos.predictor.chunking`); the windows of all inputs are
sorted by length and batched (at most ``batch_size`` windows and ``max_batch_seconds`` of padded audio a
batch, and no window padded by more than ``max_pad`` of its batch's longest); a file's score is the
length-weighted mean of its windows' scores (and, for a model with a system-classification head, its
system posterior the length-weighted mean of its windows' posteriors).

Batching and padding: WavLM / HuBERT / wav2vec 2.0 upstreams (any size, hub names and ``*_local``) run
their padding-exact forward (:mod:`distilmos.upstream.padding_exact`), so a file's score does not depend on which
other files share its batch, and batches are bounded only by ``batch_size`` and ``max_batch_seconds``
(``max_pad`` ``"auto"``: no cap). Any other upstream sees a padded batch as a whole and may move a
padded utterance's features; for those ``"auto"`` caps padding at 2 % of the batch's longest
(:func:`default_max_pad`). ``max_pad=0`` (or ``batch_size=1``) gives every input its one-by-one score
for any upstream, to float rounding.
"""

from __future__ import annotations

import math
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from distilmos.data.audio import SAMPLE_RATE, AudioError, load_audio, probe_audio, samples_at_16k, to_mono_16k
from distilmos.data.batching import AUTO, MaxPad, plan_batches, resolve_max_pad
from distilmos.data.datalist import too_short
from distilmos.errors import ToolkitError
from distilmos.upstream.padding_exact import is_padding_exact, min_samples

from . import downstreams, upstream_entry
from .chunking import chunk_windows, weighted_mean
from .fileformat import EXPORT_HINT, PredictorFileError, read_predictor
from .pipeline import FeatureSelector, PredictorPipeline

Audio = np.ndarray | torch.Tensor


class PredictionError(ToolkitError, ValueError):
    """Inputs that could not be scored; the message names each one and why."""


@dataclass
class FileResult:
    """The outcome for one input: ``pred`` when scored, else ``error`` (naming the file and the reason)."""

    index: int
    path: str
    pred: float | None = None
    error: str | None = None
    windows: int = 1
    posterior: list[float] | None = None  # system-class probabilities, when asked for (Predictor.system_classes)

    @property
    def ok(self) -> bool:
        return self.error is None


def resolve_device(device: str | None) -> torch.device:
    """``None``/``"auto"``: CUDA when available, else the CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def default_max_pad(model: torch.nn.Module) -> float | None:
    """The default padding cap for an upstream (see the module docstring): none (``None``) for a
    padding-exact one, :data:`distilmos.data.batching.STRICT_MAX_PAD` for any other."""
    return resolve_max_pad(AUTO, is_padding_exact(model))


def build_pipeline(blob: dict, source: str = "predictor file", trust_remote_code: bool = False) -> PredictorPipeline:
    """The inference network of a predictor dict (see :func:`distilmos.predictor.fileformat.read_predictor`).

    Contents that do not rebuild (weights of other shapes, configs out of range) raise
    :class:`PredictorFileError` naming ``source``; ``trust_remote_code``: see :mod:`distilmos.predictor.upstream_entry`.
    """
    try:
        featurizer = FeatureSelector(**blob["featurizer"]["config"])
        featurizer.load_state_dict(blob["featurizer"]["state_dict"], strict=True)
        pipeline = PredictorPipeline(
            upstream_entry.rebuild(blob["upstream"], source, trust_remote_code=trust_remote_code),
            featurizer,
            downstreams.build(blob["downstream"]),
        )
    except ToolkitError as exc:
        if str(exc).startswith(source):
            raise
        raise PredictorFileError(f"{source}: not a valid predictor file: {exc}") from exc
    except (TypeError, KeyError, IndexError, ValueError, RuntimeError, AttributeError) as exc:
        reason = (str(exc).strip().splitlines() or [""])[0][:300]
        raise PredictorFileError(
            f"{source}: not a valid predictor file: its contents do not rebuild "
            f"({type(exc).__name__}: {reason}); {EXPORT_HINT}"
        ) from exc
    return pipeline.eval().requires_grad_(False)


class Predictor:
    """An exported MOS predictor; see the module docstring for how inputs are scored."""

    def __init__(
        self,
        pipeline: PredictorPipeline,
        card: dict,
        *,
        device: str | None = None,
        max_seconds: float = 30.0,
        chunk_overlap: float = 5.0,
        batch_size: int = 16,
        max_batch_seconds: float = 160.0,
        max_pad: MaxPad = AUTO,
        source: str = "<memory>",
    ):
        self.pipeline = pipeline
        self.card = card
        self.source = source
        self.max_seconds = max_seconds
        self.chunk_overlap = chunk_overlap
        self.batch_size = batch_size
        self.max_batch_seconds = max_batch_seconds
        self.max_pad = resolve_max_pad(max_pad, is_padding_exact(pipeline.upstream), who="distilmos-predict")
        self.device = resolve_device(device)
        self.pipeline.to(self.device)
        self._check_settings()

    @property
    def system_classes(self) -> list[str]:
        """The synthesis systems a model with a system-classification head (MoE-MOS) tells apart, in the
        order of its posteriors; empty for other models."""
        return list(getattr(self.pipeline.downstream, "class_names", None) or [])

    @property
    def sample_rate(self) -> int:
        """The rate every input is resampled to before scoring."""
        return SAMPLE_RATE

    def to(self, device: str | None) -> Predictor:
        """Move the network to ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"``)."""
        self.device = resolve_device(device)
        self.pipeline.to(self.device)
        return self

    def _check_settings(self) -> None:
        if self.max_seconds and not 0 <= self.chunk_overlap < self.max_seconds:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap} s) must be >= 0 and below max_seconds ({self.max_seconds} s)"
            )
        if self.batch_size < 1 or (self.max_pad is not None and self.max_pad < 0) or self.max_batch_seconds <= 0:
            raise ValueError("need batch_size >= 1, max_batch_seconds > 0 and max_pad >= 0 (or None: no cap)")

    # ---- public API --------------------------------------------------------------------------------
    def predict(
        self,
        wav: Audio | Sequence[Audio] | None = None,
        sr: int | None = None,
        *,
        paths: Sequence[str] | None = None,
        on_error: str = "raise",
        progress: bool = False,
        return_posterior: bool = False,
    ):
        """Score a waveform (``wav`` at ``sr`` Hz; 1-D, or 2-D with a channel axis) -> a float; a list
        of waveforms -> a list; or audio files (``paths``) -> a list in the order given.

        ``return_posterior=True`` (models with a system-classification head, e.g. MoE-MOS): each score
        becomes ``(score, {system: probability})`` over :attr:`system_classes`.

        A file that cannot be scored raises :class:`PredictionError` naming every such file
        (``on_error="raise"``), or gets NaN (``on_error="nan"``; with the posterior, ``(nan, {})``).
        """
        if (wav is None) == (paths is None):
            raise ValueError("give either wav= (with sr=) or paths=")
        if on_error not in ("raise", "nan"):
            raise ValueError(f"on_error must be 'raise' or 'nan', not {on_error!r}")
        if return_posterior and not self.system_classes:
            raise ValueError(
                f"{self.source}: this model has no system-classification head "
                f"(expert {self.card.get('downstream', {}).get('expert')!r}); no posterior to return"
            )
        if paths is not None:
            if isinstance(paths, (str, bytes)):
                raise ValueError("paths= takes a list of files; for one file use paths=[path]")
            results = self.score_files(list(paths), progress=progress, posterior=return_posterior)
            bad = [r.error for r in results if not r.ok]
            if bad and on_error == "raise":
                raise PredictionError(
                    f"{len(bad)} of {len(results)} file(s) could not be scored:\n  " + "\n  ".join(bad)
                )
            return [self._output(r, return_posterior) for r in results]
        if sr is None:
            raise ValueError("wav= needs its sample rate: sr=")
        single = isinstance(wav, (np.ndarray, torch.Tensor))
        waves = [wav] if single else list(wav)
        mono = [to_mono_16k(w, sr, source=f"wav[{i}]") for i, w in enumerate(waves)]
        results = self.score_waveforms(mono, posterior=return_posterior)
        bad = [r.error for r in results if not r.ok]
        if bad:
            raise PredictionError("\n".join(bad))
        scores = [self._output(r, return_posterior) for r in results]
        return scores[0] if single else scores

    def _output(self, result: FileResult, posterior: bool):
        """What :meth:`predict` returns for one input."""
        pred = result.pred if result.ok else math.nan
        if not posterior:
            return pred
        return pred, (dict(zip(self.system_classes, result.posterior)) if result.ok else {})

    def analyze(self, wav: Audio, sr: int) -> dict[str, torch.Tensor]:
        """Everything on the inference path for one waveform (no windowing): see
        :meth:`PredictorPipeline.analyze` (``pred``, ``features``, ``hidden_states``, and for DistilMOS
        the Feature Processor output ``processed``), batch dimension of 1, on the CPU."""
        with torch.inference_mode():
            out = self.pipeline.analyze([to_mono_16k(wav, sr)])
        return {k: (tuple(h.cpu() for h in v) if isinstance(v, tuple) else v.cpu()) for k, v in out.items()}

    def score_waveforms(
        self,
        wavs: Sequence[torch.Tensor],
        names: Sequence[str] | None = None,
        progress: bool = False,
        posterior: bool = False,
    ) -> list[FileResult]:
        """Score 16 kHz mono 1-D waveforms; results in input order (with ``posterior``, each result's
        system posterior too)."""
        names = list(names) if names is not None else [f"wav[{i}]" for i in range(len(wavs))]
        lengths = [len(w) for w in wavs]
        results = {
            r.index: r for r in self._run(names, lengths, lambda i: wavs[i], progress=progress, posterior=posterior)
        }
        return [results[i] for i in range(len(wavs))]

    def score_files(
        self,
        paths: Sequence[str],
        *,
        progress: bool = False,
        num_workers: int = 0,
        on_result: Callable[[FileResult], None] | None = None,
        posterior: bool = False,
    ) -> list[FileResult]:
        """Score audio files (any rate and channel count soundfile reads); results in input order (with
        ``posterior``, each result's system posterior too).

        A file that is missing, unreadable, empty, truncated, holds non-finite samples, or whose score
        is not finite gets a :class:`FileResult` with ``error`` set; the others are scored regardless.
        ``on_result`` is called with each result as it completes (completion order).
        """
        paths = [str(p) for p in paths]
        lengths: list[int | None] = []
        results: dict[int, FileResult] = {}
        for i, path in enumerate(paths):
            try:
                if os.path.isfile(path) and os.path.getsize(path) == 0:
                    raise AudioError(f"{path}: file is empty (0 bytes)")
                info = probe_audio(path)
                lengths.append(samples_at_16k(info.frames, info.samplerate))
            except AudioError as exc:
                lengths.append(None)
                results[i] = FileResult(i, path, error=str(exc))
        bar = tqdm(
            total=len(paths), desc="score", unit="file", file=sys.stderr, disable=not progress, dynamic_ncols=True
        )
        for result in results.values():
            bar.update(1)
            if on_result:
                on_result(result)
        try:
            for result in self._run(
                paths, lengths, lambda i: load_audio(paths[i]), num_workers=num_workers, posterior=posterior
            ):
                results[result.index] = result
                bar.update(1)
                if on_result:
                    on_result(result)
        finally:
            bar.close()
        return [results[i] for i in range(len(paths))]

    # ---- the engine ----------------------------------------------------------------------------------
    def windows(self, n_samples: int) -> list[tuple[int, int]]:
        """The ``(start, end)`` windows an input of ``n_samples`` (16 kHz) is scored in."""
        return chunk_windows(
            n_samples, round((self.max_seconds or 0) * SAMPLE_RATE), round(self.chunk_overlap * SAMPLE_RATE)
        )

    def plan(self, lengths: Sequence[int | None]) -> tuple[list[tuple[int, int, int]], list[list[int]]]:
        """``(windows, batches)``: every ``(input, start, end)`` window of the inputs with a known length,
        and the batches (lists of window indices) they are scored in."""
        self._check_settings()  # they are plain attributes, changeable after loading
        items = [(i, a, b) for i, n in enumerate(lengths) if n is not None for a, b in self.windows(n)]
        batches = plan_batches([b - a for _, a, b in items], self.max_batch_seconds, self.batch_size, self.max_pad)
        return items, batches

    def _run(
        self,
        names: Sequence[str],
        lengths: Sequence[int | None],
        fetch: Callable[[int], torch.Tensor],
        num_workers: int = 0,
        progress: bool = False,
        posterior: bool = False,
    ) -> Iterator[FileResult]:
        """Score the inputs with a known length; yield one :class:`FileResult` per input as it completes."""
        shortest = min_samples(self.pipeline.upstream) or 0  # shorter inputs give the upstream no frame
        for i, n in enumerate(lengths):
            if n is not None and n < shortest:
                yield FileResult(i, names[i], error=f"{names[i]}: {too_short(n, shortest)}")
        items, batches = self.plan([None if n is not None and n < shortest else n for n in lengths])
        pending: dict[int, int] = defaultdict(int)
        for i, _, _ in items:
            pending[i] += 1
        parts: dict[int, list[tuple[float, int, list[float] | None]]] = defaultdict(list)
        failed = set()
        bar = tqdm(
            total=len(pending), desc="score", unit="input", file=sys.stderr, disable=not progress, dynamic_ncols=True
        )

        def fail(i: int, message: str) -> FileResult:
            failed.add(i)
            bar.update(1)
            return FileResult(i, names[i], error=message, windows=pending[i])

        try:
            for batch, audio in _batch_audio(items, batches, fetch, names, num_workers):
                runnable = []
                for k in batch:
                    i, a, b = items[k]
                    if i in failed:
                        continue
                    if isinstance(audio[i], str):
                        yield fail(i, audio[i])
                        continue
                    runnable.append((k, names[i], audio[i][a:b]))
                outputs = self._forward([(name, w) for _, name, w in runnable], posterior)
                for (k, _, wav), output in zip(runnable, outputs):
                    i = items[k][0]
                    if i in failed:
                        continue
                    if isinstance(output, str):
                        yield fail(i, output)
                        continue
                    pred, post = output
                    parts[i].append((pred, len(wav), post))
                    if len(parts[i]) == pending[i]:
                        preds, sizes, posts = zip(*parts.pop(i))
                        score = weighted_mean(preds, sizes)
                        if not math.isfinite(score):
                            yield fail(i, f"{names[i]}: the prediction is not finite ({score})")
                            continue
                        # a long file's posterior: its windows' posteriors weighted by length, like its score
                        merged = [weighted_mean(column, sizes) for column in zip(*posts)] if posterior else None
                        bar.update(1)
                        yield FileResult(i, names[i], pred=score, windows=pending[i], posterior=merged)
        finally:
            bar.close()

    def _forward(
        self, batch: list[tuple[str, torch.Tensor]], posterior: bool = False
    ) -> list[tuple[float, list[float] | None] | str]:
        """``(prediction, system posterior or None)`` for ``(name, waveform)`` pairs in one forward; if that
        fails, each alone (one that still fails gets a message naming it)."""
        if not batch:
            return []
        try:
            with torch.inference_mode():
                wavs = [w for _, w in batch]
                if not posterior:
                    return [(float(p), None) for p in self.pipeline(wavs).float().cpu()]
                out = self.pipeline.analyze(wavs)
                probs = torch.softmax(out["system_logits"].float(), dim=-1).cpu().tolist()
                return [(float(p), q) for p, q in zip(out["pred"].float().cpu(), probs)]
        except Exception as exc:  # noqa: BLE001 - one bad input (too short, out of memory) must not stop the run
            if len(batch) > 1:
                return [self._forward([one], posterior)[0] for one in batch]
            name, wav = batch[0]
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return [f"{name}: cannot be scored ({len(wav)} samples at 16 kHz): {type(exc).__name__}: {reason}"]


def _batch_audio(items, batches, fetch, names, num_workers: int):
    """``(batch, {input: waveform or error message})`` per batch, read ahead by ``num_workers`` processes."""
    dataset = _BatchAudio(items, batches, fetch, names)
    if num_workers <= 0:
        return (dataset[b] for b in range(len(dataset)))
    return iter(torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=num_workers))


class _BatchAudio(torch.utils.data.Dataset):
    """The audio of one batch per item: each input in it read once, or the reason it cannot be read."""

    def __init__(self, items, batches, fetch, names):
        self.items, self.batches, self.fetch, self.names = items, batches, fetch, names

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int):
        audio: dict[int, torch.Tensor | str] = {}
        for k in self.batches[b]:
            i = self.items[k][0]
            if i in audio:
                continue
            try:
                audio[i] = self.fetch(i)
            except AudioError as exc:
                audio[i] = str(exc)
            except Exception as exc:  # noqa: BLE001 - a decoder crash on one file must not stop the run
                audio[i] = f"{self.names[i]}: cannot read audio ({type(exc).__name__}: {exc})"
        return self.batches[b], audio


def load(path: str, device: str | None = None, *, trust_remote_code: bool = False, **settings) -> Predictor:
    """Load a predictor file (made by ``distilmos-predict export``) onto ``device``.

    ``settings`` are :class:`Predictor`'s: ``max_seconds``, ``chunk_overlap``, ``batch_size``,
    ``max_batch_seconds``, ``max_pad`` (default: :func:`default_max_pad`). Raises
    :class:`~distilmos.predictor.fileformat.PredictorFileError` naming the file when it is not a
    predictor file, has another format version or contents that do not rebuild.

    Loading runs no code the file names: an upstream stored as a ``module:callable`` (or as a hub name
    with a checkpoint to load) raises :class:`~distilmos.predictor.upstream_entry.RemoteCodeError` unless
    ``trust_remote_code=True`` (only for files you trust; see :mod:`distilmos.predictor.upstream_entry`).
    """
    blob = read_predictor(path)
    return Predictor(
        build_pipeline(blob, source=str(path), trust_remote_code=trust_remote_code),
        blob["card"],
        device=device,
        source=str(path),
        **settings,
    )
