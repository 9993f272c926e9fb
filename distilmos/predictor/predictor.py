"""Scoring audio with an exported predictor: :func:`load` and :class:`Predictor`.

    from distilmos.predictor import load
    predictor = load("model.pt")                        # device="cuda" / "cpu" (default: cuda if available)
    predictor.predict(wav=array_or_tensor, sr=44100)    # one score; any sample rate, mono or [samples, channels]
    predictor.predict(paths=["a.wav", "b.flac"])        # list of scores, in the order given
    predictor.predict(paths=[...], return_posterior=True)  # MoE-MOS: (score, {system: probability}) each
    predictor.score_files(["a.wav"])[0].std             # a model with an uncertainty head: its predicted std
    for result in predictor.score_iter(paths):         # any iterable, millions of files: FileResults in
        ...                                            # input order, chunk by chunk, memory flat

How a list of files is scored at scale: paths are taken ``chunk_size`` at a time; each chunk is scored as
below (its results depend on the chunk alone) while worker processes decode the audio of the next batches;
results come back chunk by chunk, in input order (:meth:`Predictor.score_chunks`, :meth:`Predictor.score_iter`;
``distilmos-predict score`` streams them to a resumable output, :mod:`distilmos.predictor.streaming`).

How a chunk of inputs is scored: every input is resampled to 16 kHz mono; one longer than ``max_seconds``
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

import itertools
import math
import os
import sys
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from distilmos.data.audio import SAMPLE_RATE, AudioError, load_audio, probe_audio, samples_at_16k, to_mono_16k
from distilmos.data.batching import AUTO, MaxPad, plan_batches, resolve_max_pad
from distilmos.data.datalist import too_short
from distilmos.errors import ToolkitError
from distilmos.upstream.padding_exact import is_padding_exact

from . import downstreams, peers, upstream_entry
from .chunking import chunk_windows, weighted_mean
from .fileformat import EXPORT_HINT, PredictorFileError, read_predictor
from .pipeline import FeatureSelector, PredictorPipeline
from .sources import is_peer, resolve

Audio = np.ndarray | torch.Tensor

#: inputs scored together (:meth:`Predictor.score_chunks`): their windows are length-sorted and batched
DEFAULT_CHUNK_SIZE = 512
#: audio reading processes ``num_workers="auto"`` starts on a CPU (:func:`resolve_num_workers`)
CPU_AUTO_WORKERS = 0
#: below this many files, ``"auto"`` reads in the scoring process
FEW_FILES = 64


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
    std: float | None = None  # the predicted standard deviation, for a model with an uncertainty head

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
        self.max_pad = resolve_max_pad(max_pad, pipeline.batch_independent, who="distilmos-predict")
        self.device = resolve_device(device)
        self.pipeline.to(self.device)
        self._check_settings()

    @property
    def system_classes(self) -> list[str]:
        """The synthesis systems a model with a system-classification head (MoE-MOS) tells apart, in the
        order of its posteriors; empty for other models."""
        return list(getattr(self.pipeline.downstream, "class_names", None) or [])

    @property
    def has_std(self) -> bool:
        """Whether the model predicts a standard deviation with each score (``modelrc.uncertainty``): each
        :class:`FileResult` then carries ``std`` (a long file's: its windows' std weighted by length)."""
        return bool(getattr(getattr(self.pipeline, "downstream", None), "uncertainty", False))

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
        chunk = _Chunk(0, names, lengths, {}, self)
        bar = _progress_bar(len(wavs), progress)
        try:
            for b in range(len(chunk.batches)):
                audio = {i: wavs[i] for i in chunk.inputs_of(b)}
                bar.update(len(chunk.consume(b, audio, posterior)))
        finally:
            bar.close()
        return chunk.finish()

    def score_files(self, paths: Sequence[str], *, num_workers: int | str = 0, **options) -> list[FileResult]:
        """Score audio files (any rate and channel count soundfile reads); results in input order (with
        ``posterior``, each result's system posterior too): :meth:`score_iter` as a list, with the keyword
        options of :meth:`score_chunks` (but reading in this process unless ``num_workers`` is given).

        A file that is missing, unreadable, empty, truncated, holds non-finite samples, or whose score
        is not finite gets a :class:`FileResult` with ``error`` set; the others are scored regardless.
        ``on_result`` is called with each result as it completes (completion order).
        """
        return list(self.score_iter([str(p) for p in paths], num_workers=num_workers, **options))

    def score_iter(self, paths: Iterable[str], **options) -> Iterator[FileResult]:
        """Score audio files as they come: one :class:`FileResult` per path, in input order, yielded chunk by
        chunk (:meth:`score_chunks`, whose keyword options it takes); ``paths`` may be any iterable (a
        generator over millions of files: it is read ``chunk_size`` paths at a time). ``FileResult.index``
        counts from 0 over ``paths``."""
        for results in self.score_chunks(paths, **options):
            yield from results

    def score_chunks(
        self,
        paths: Iterable[str],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        num_workers: int | str = AUTO,
        posterior: bool = False,
        progress: bool = False,
        total: int | None = None,
        initial: int = 0,
        on_result: Callable[[FileResult], None] | None = None,
    ) -> Iterator[list[FileResult]]:
        """Score ``paths`` in consecutive chunks of ``chunk_size``; yield each chunk's results (in input order)
        once the whole chunk is scored.

        Within a chunk, windows are sorted by length and batched (:meth:`plan`), so a chunk's results depend
        on the chunk alone: the same chunk gives the same floats in any run. Audio is decoded by
        ``num_workers`` processes (``"auto"``: :func:`resolve_num_workers`) reading ahead of the model,
        across chunk boundaries; memory holds one chunk's results and the batches read ahead, whatever
        the number of paths. ``total`` (default: ``len(paths)`` when it has one) and ``initial`` (inputs
        already done, e.g. by an earlier run) set the progress bar's length, rate and ETA.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if total is None and hasattr(paths, "__len__"):
            total = len(paths)
        workers = resolve_num_workers(num_workers, self.device, total)
        self._check_settings()
        chunks: deque[_Chunk] = deque()

        def jobs() -> Iterator[tuple[int, int, tuple]]:
            """What to read, batch by batch, planning each chunk as the reader reaches it; an empty job
            ``(chunk, -1, ())`` closes every chunk (a chunk of unreadable files has no batch)."""
            for number, (start, chunk_paths) in enumerate(_chunked(paths, chunk_size)):
                chunk = self._plan_files(start, chunk_paths)
                chunks.append(chunk)
                for b in range(len(chunk.batches)):
                    yield number, b, tuple((i, chunk.names[i]) for i in chunk.inputs_of(b))
                yield number, -1, ()

        bar = _progress_bar(total, progress, initial)
        try:
            for (_, b, _), audio in _read_ahead(jobs(), workers):
                chunk = chunks[0]
                if b >= 0:
                    done = chunk.consume(b, audio, posterior)
                else:
                    chunks.popleft()
                    done = chunk.early  # failed before any batch: reported when their chunk ends
                for result in done:
                    bar.update(1)
                    if on_result:
                        on_result(result)
                if b < 0:
                    yield chunk.finish()
        finally:
            bar.close()

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

    def _plan_files(self, start: int, paths: list[str]) -> _Chunk:
        """A chunk of files: each one's length from its header (or why it cannot be read), then the plan."""
        lengths: list[int | None] = []
        errors: dict[int, str] = {}
        for i, path in enumerate(paths):
            try:
                if os.path.isfile(path) and os.path.getsize(path) == 0:
                    raise AudioError(f"{path}: file is empty (0 bytes)")
                info = probe_audio(path)
                lengths.append(samples_at_16k(info.frames, info.samplerate))
            except AudioError as exc:
                lengths.append(None)
                errors[i] = str(exc)
        return _Chunk(start, paths, lengths, errors, self)

    def _forward(
        self, batch: list[tuple[str, torch.Tensor]], posterior: bool = False
    ) -> list[tuple[float, list[float] | None, float | None] | str]:
        """``(prediction, system posterior or None, std or None)`` for ``(name, waveform)`` pairs in one forward;
        if that fails, each alone (one that still fails gets a message naming it)."""
        if not batch:
            return []
        try:
            with torch.inference_mode():
                wavs = [w for _, w in batch]
                if not posterior and not self.has_std:
                    return [(float(p), None, None) for p in self.pipeline(wavs).float().cpu()]
                out = self.pipeline.analyze(wavs)
                probs = torch.softmax(out["system_logits"].float(), dim=-1).cpu().tolist() if posterior else None
                stds = out["std"].float().cpu().tolist() if self.has_std else [None] * len(wavs)
                return [
                    (float(p), probs[k] if posterior else None, stds[k])
                    for k, p in enumerate(out["pred"].float().cpu())
                ]
        except Exception as exc:  # noqa: BLE001 - one bad input (too short, out of memory) must not stop the run
            if len(batch) > 1:
                return [self._forward([one], posterior)[0] for one in batch]
            name, wav = batch[0]
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return [f"{name}: cannot be scored ({len(wav)} samples at 16 kHz): {type(exc).__name__}: {reason}"]


def _progress_bar(total: int | None, enabled: bool, initial: int = 0) -> tqdm:
    return tqdm(
        total=total,
        initial=initial,
        desc="score",
        unit="file",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
        smoothing=0.05,  # the rate over the last minutes, not the last batch: a steady ETA
    )


def _chunked(items: Iterable, size: int) -> Iterator[tuple[int, list]]:
    """``(index of the first, [items])`` of consecutive chunks of ``size`` items, taken lazily."""
    iterator = iter(items)
    start = 0
    while chunk := [str(p) for p in itertools.islice(iterator, size)]:
        yield start, chunk
        start += len(chunk)


class _Chunk:
    """One chunk being scored: its inputs' windows, their batches, and the results as they complete.

    Every input ends with one :class:`FileResult` (``index`` = ``start`` + its place in the chunk): scored,
    or failed with the reason (unreadable header, too short, unreadable audio, a forward that fails alone,
    a prediction that is not finite)."""

    def __init__(self, start: int, names: Sequence[str], lengths: Sequence[int | None], errors: dict, predictor):
        self.start, self.names, self.predictor = start, list(names), predictor
        self.results: dict[int, FileResult] = {i: FileResult(start + i, names[i], error=e) for i, e in errors.items()}
        shortest = predictor.pipeline.min_samples  # shorter inputs give the upstream no frame
        for i, n in enumerate(lengths):
            if n is not None and n < shortest:
                self.results[i] = FileResult(start + i, names[i], error=f"{names[i]}: {too_short(n, shortest)}")
        self.early = list(self.results.values())
        self.items, self.batches = predictor.plan([None if i in self.results else n for i, n in enumerate(lengths)])
        self.pending: dict[int, int] = defaultdict(int)
        for i, _, _ in self.items:
            self.pending[i] += 1
        self.parts: dict[int, list[tuple[float, int, list[float] | None, float | None]]] = defaultdict(list)

    def inputs_of(self, b: int) -> list[int]:
        """The inputs (places in the chunk) with a window in batch ``b``, each once, still to be scored."""
        return [i for i in dict.fromkeys(self.items[k][0] for k in self.batches[b]) if i not in self.results]

    def _fail(self, i: int, message: str) -> FileResult:
        self.parts.pop(i, None)
        self.results[i] = FileResult(self.start + i, self.names[i], error=message, windows=self.pending[i])
        return self.results[i]

    def consume(self, b: int, audio: dict, posterior: bool) -> list[FileResult]:
        """Run batch ``b`` on ``audio`` (``{input: waveform, or why it could not be read}``); return the
        inputs it completed."""
        done, runnable = [], []
        for k in self.batches[b]:
            i, start, end = self.items[k]
            if i in self.results:
                continue
            if isinstance(audio[i], str):
                done.append(self._fail(i, audio[i]))
                continue
            runnable.append((k, self.names[i], audio[i][start:end]))
        outputs = self.predictor._forward([(name, w) for _, name, w in runnable], posterior)
        for (k, _, wav), output in zip(runnable, outputs):
            i = self.items[k][0]
            if i in self.results:
                continue
            if isinstance(output, str):
                done.append(self._fail(i, output))
                continue
            pred, post, std = output
            self.parts[i].append((pred, len(wav), post, std))
            if len(self.parts[i]) == self.pending[i]:
                preds, sizes, posts, stds = zip(*self.parts.pop(i))
                score = weighted_mean(preds, sizes)
                if not math.isfinite(score):
                    done.append(self._fail(i, f"{self.names[i]}: the prediction is not finite ({score})"))
                    continue
                # a long file's posterior: its windows' posteriors weighted by length, like its score
                merged = [weighted_mean(column, sizes) for column in zip(*posts)] if posterior else None
                std = weighted_mean(stds, sizes) if stds[0] is not None else None
                self.results[i] = FileResult(
                    self.start + i, self.names[i], pred=score, windows=self.pending[i], posterior=merged, std=std
                )
                done.append(self.results[i])
        return done

    def finish(self) -> list[FileResult]:
        """Every input's result, in input order."""
        return [self.results[i] for i in range(len(self.names))]


def _read_audio(job: tuple[int, int, tuple]) -> tuple[tuple, dict]:
    """``(job, {input: waveform or why it cannot be read})``: the files of one batch, each read once."""
    audio: dict[int, torch.Tensor | str] = {}
    for i, path in job[2]:
        try:
            audio[i] = load_audio(path)
        except AudioError as exc:
            audio[i] = str(exc)
        except Exception as exc:  # noqa: BLE001 - a decoder crash on one file must not stop the run
            audio[i] = f"{path}: cannot read audio ({type(exc).__name__}: {exc})"
    return job, audio


class _Reader(torch.utils.data.Dataset):
    """A DataLoader's dataset whose keys are the jobs themselves (what to read), so that the jobs can come
    from a generator planned as the reading goes."""

    def __getitem__(self, job):
        return _read_audio(job)


def _identity(item):
    return item


def _read_ahead(jobs: Iterator[tuple], num_workers: int) -> Iterator[tuple[tuple, dict]]:
    """:func:`_read_audio` of every job, in order; with ``num_workers`` processes reading ahead of the
    caller (the same processes for every chunk: no start-up per chunk)."""
    if num_workers <= 0:
        return map(_read_audio, jobs)
    return iter(
        torch.utils.data.DataLoader(
            _Reader(), batch_size=None, sampler=_Jobs(jobs), num_workers=num_workers, collate_fn=_identity
        )
    )


class _Jobs(torch.utils.data.Sampler):
    """A sampler over a one-shot iterator of jobs."""

    def __init__(self, jobs: Iterator[tuple]):
        self.jobs = jobs

    def __iter__(self) -> Iterator[tuple]:
        return self.jobs


def resolve_num_workers(num_workers: int | str, device: torch.device | str, total: int | None = None) -> int:
    """Audio reading processes: ``num_workers`` itself, or for ``"auto"`` what pays on ``device`` (measured
    with ``egs/bench/score_bench.py``): on a GPU, up to 4 processes (the model outpaces one decoder); on a
    CPU, :data:`CPU_AUTO_WORKERS`; none for fewer than :data:`FEW_FILES` files, where starting a process
    costs more than it saves."""
    if num_workers != AUTO:
        if int(num_workers) < 0:
            raise ValueError(f"num_workers must be >= 0 or 'auto', got {num_workers}")
        return int(num_workers)
    if total is not None and total < FEW_FILES:
        return 0
    if torch.device(device).type == "cuda":
        return max(1, min(4, (os.cpu_count() or 2) - 1))
    return CPU_AUTO_WORKERS


def load(path: str, device: str | None = None, *, trust_remote_code: bool = False, **settings) -> Predictor:
    """Load a model onto ``device``: a predictor file (made by ``distilmos-predict export`` or ``import``), an
    ``hf://<owner>/<repo>/<file>[@revision]`` one (fetched into the Hugging Face cache, then read as a local
    file is), or a ``peer://`` predictor of another package (see :mod:`distilmos.predictor.sources`).

    ``settings`` are :class:`Predictor`'s: ``max_seconds``, ``chunk_overlap``, ``batch_size``,
    ``max_batch_seconds``, ``max_pad`` (default: :func:`default_max_pad`). Raises
    :class:`~distilmos.predictor.fileformat.PredictorFileError` naming the file when it is not a
    predictor file, has another format version or contents that do not rebuild;
    :class:`~distilmos.predictor.sources.SourceError` for an ``hf://`` file that cannot be fetched (offline
    and not cached, no such repository or file); :class:`~distilmos.predictor.peers.PeerError` for an
    unknown peer or one whose package (the ``peers`` extra) is not installed.

    Loading runs no code the file names, wherever the file came from: an upstream stored as a
    ``module:callable`` (or as a hub name with a checkpoint to load) raises
    :class:`~distilmos.predictor.upstream_entry.RemoteCodeError` unless ``trust_remote_code=True`` (only for
    files you trust; see :mod:`distilmos.predictor.upstream_entry`). A peer runs its own package's code,
    installed by you.
    """
    if is_peer(path):
        pipeline = peers.build(path)
        # the package's own windowing replaces the engine's (PeerPipeline.settings)
        return Predictor(pipeline, pipeline.card(), device=device, source=path, **{**settings, **pipeline.settings})
    blob = read_predictor(resolve(path))
    return Predictor(
        build_pipeline(blob, source=str(path), trust_remote_code=trust_remote_code),
        blob["card"],
        device=device,
        source=str(path),
        **settings,
    )
