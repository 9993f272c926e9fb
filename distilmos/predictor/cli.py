"""``distilmos-predict``: export a trained model, show its card, score audio with it.

    distilmos-predict export -e exp/my_exp/best-states-val.ckpt -o my_model.pt
    distilmos-predict import --source hf://BaleYang/DistilMOS --backbone wavlm -o distilmos_authors_wavlm.pt
    distilmos-predict info my_model.pt
    distilmos-predict score my_model.pt wavs/ more.wav list.csv -o scores.csv
    distilmos-predict score peer://distillmos wavs/ -o distillmos_scores.csv

MODEL, wherever one is taken: a predictor file, hf://<owner>/<repo>/<path>[@revision] (fetched into the
Hugging Face cache; HF_HUB_OFFLINE=1 reads the cache only), or peer://distillmos, peer://dnsmos/p808,
peer://dnsmos/ovrl (another package's released predictor; pip install 'distilmos[peers]').

(also ``python -m distilmos.predictor ...``). See ``distilmos-predict COMMAND -h``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from array import array
from collections.abc import Sequence

import torch

from distilmos.data.batching import AUTO, parse_max_pad
from distilmos.errors import ToolkitError, reports_errors

from .predictor import CPU_AUTO_WORKERS, DEFAULT_CHUNK_SIZE, FEW_FILES

SCORE_EPILOG = """\
inputs: audio files; folders (every audio file under them, recursively); .csv data lists with a wav_path
column (and optionally score, system_id; paths relative to the CSV's folder); other files are plain lists,
one "wav[,score[,system]]" per line. Any sample rate and channel count: audio is downmixed to mono and
resampled to 16 kHz.

long files: a file longer than --max_seconds is scored in the fewest equal windows of at most
--max_seconds that overlap by at least --chunk_overlap seconds, spread from its first sample to its
last; its score is the mean of the window scores weighted by window length (--max_seconds 0: never cut).

batching: windows are sorted by length and batched (--batch_size, --max_batch_seconds of padded audio).
WavLM, HuBERT and wav2vec 2.0 upstreams run a padding-exact forward: a file's score does not depend on
the other files in its batch, and padding is not capped (--max_pad auto). Other upstreams may let padding
shift their features slightly; for them auto caps each window's padding at 0.02 of its batch's longest.
--max_pad 0 or --batch_size 1 gives every file its score alone (to float rounding) with any upstream.

trust: a predictor file runs no code of its own. One whose upstream is stored as a module:callable (or as
a hub upstream with a checkpoint to load) is refused unless --trust_remote_code is given: that imports and
runs code from outside the file. Give it only for files you trust. An hf:// file is read as a local one:
the same rule applies after it is fetched.

peers: peer://distillmos, peer://dnsmos/p808 and peer://dnsmos/ovrl (also /sig, /bak) score with their own
package's model and windowing (--max_seconds and --chunk_overlap do not apply) through this command's
reading, resampling, batching and failure handling; their scores are the package's own on 16 kHz input.

output: CSV "wav_path,pred" (plus "score" when a list gives scores), in input order, to -o or stdout
(every file the run writes is checked to be writable before anything is scored);
--jsonl (or -o *.jsonl) writes one JSON object per line instead. --system_posterior (MoE-MOS) adds
"top_system,top_system_prob" and one "p:<system>" column per training system (JSON: "system_posterior").
A model trained with an uncertainty head (modelrc.uncertainty) adds "pred_std" after "pred": its predicted
standard deviation; with scores, --metrics then also holds std_err_LCC/std_err_SRCC (predicted std against
the absolute error) and a calibration plot is written beside it (<metrics stem>_calibration.png).
Files that cannot be scored (missing, empty, truncated, undecodable, non-finite) are reported and skipped;
the run goes on, prints a summary, and exits with status 1 if any file failed. When the inputs carry
scores, utterance- and system-level metrics (MSE, LCC, SRCC, KTAU) are printed, as the trainer computes them.

streaming and resuming (-o OUT): inputs are read lazily and scored in chunks of --chunk_size files; after
each chunk its rows are appended to OUT in input order, and its failed files to OUT.failed.tsv
("wav_path<TAB>reason"), both flushed. OUT.run.json records the model's sha256 and the settings the rows
depend on. Rerunning the same command after a kill continues where OUT ends (a torn last line is cut,
at most one chunk is redone) and finishes with the bytes of an uninterrupted run; the failed files are
not retried unless --retry_failed; another model or other settings are refused (--overwrite starts
afresh). A second run into the same OUT is refused while the first runs (OUT.lock).

shards (--nshard N --rank R; under torchrun: WORLD_SIZE, RANK, and the device cuda:LOCAL_RANK): rank R
scores the chunks k with k % N == R into OUT.part-R-of-N (streamed and resumable alike), then
"distilmos-predict merge" writes OUT, the same bytes as one process; under torchrun rank 0 merges when
every rank is done. A shard exits 0 when its part is finished (failed files are the merge's to report).

examples:
  distilmos-predict score model.pt corpus/wavs -o scores.csv
  distilmos-predict score model.pt data/bvcc/test.csv --device cuda -o test_scores.csv
  distilmos-predict score model.pt a.wav b.flac --jsonl
  torchrun --nproc_per_node 4 -m distilmos.predictor score model.pt corpus/wavs -o scores.csv
"""

MERGE_EPILOG = """example (a SLURM array of 8 tasks, then a merge job that waits for it):
  jid=$(sbatch --parsable --array=0-7 --wrap 'distilmos-predict score model.pt corpus/wavs -o scores.csv \
      --nshard $SLURM_ARRAY_TASK_COUNT --rank $SLURM_ARRAY_TASK_ID')
  sbatch --dependency=afterok:$jid --wrap 'distilmos-predict merge -o scores.csv --nshard 8 corpus/wavs'
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distilmos-predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    exp = sub.add_parser(
        "export",
        help="experiment checkpoint -> self-contained predictor file",
        description="Write a predictor file from an s3prl experiment checkpoint: the fine-tuned "
        "upstream, the featurizer and the expert's inference model, with a model card; "
        "no optimizer state and no training-only heads.",
    )
    exp.add_argument("-e", "--checkpoint", required=True, help="states-N.ckpt or best-states-<split>.ckpt")
    exp.add_argument("-o", "--out", required=True, help="predictor file to write")
    exp.add_argument(
        "--no_check",
        action="store_true",
        help="skip checking that the rebuilt network predicts what the runner's modules predict",
    )

    imp = sub.add_parser(
        "import",
        help="the DistilMOS authors' released checkpoint -> predictor file",
        description="Write a predictor file from the DistilMOS authors' checkpoint (Hugging Face "
        "BaleYang/DistilMOS: <backbone>/model.pth.tar and model_cfg.yaml), checked "
        "against their code's layout; the card names the source files and their sha256.",
    )
    imp.add_argument(
        "--source",
        required=True,
        nargs="+",
        metavar="DIR_OR_FILES",
        help="the repository (hf://BaleYang/DistilMOS, or its downloaded folder), its wavlm/ or w2v2/ folder, "
        "or model.pth.tar and model_cfg.yaml (local or hf://)",
    )
    imp.add_argument("--backbone", required=True, choices=("wavlm", "w2v2"), help="which of the authors' models")
    imp.add_argument("-o", "--out", required=True, help="predictor file to write")

    info = sub.add_parser(
        "info",
        help="print a model's card",
        description="Print the model card of a predictor file, hf:// file or peer:// predictor (YAML, or JSON "
        "with --json).",
    )
    info.add_argument("model", help="predictor file, hf://<owner>/<repo>/<path>[@revision] or peer://<name>")
    info.add_argument("--json", action="store_true", help="print JSON")

    score = sub.add_parser(
        "score",
        help="score audio files, folders or lists",
        description="Score audio with a predictor file.",
        epilog=SCORE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    score.add_argument(
        "model",
        help="predictor file (distilmos-predict export), hf://<owner>/<repo>/<path>[@revision] or peer://<name>",
    )
    score.add_argument("inputs", nargs="+", metavar="INPUT", help="audio file, folder, .csv data list or plain list")
    score.add_argument("-o", "--out", help="output file (default: stdout)")
    score.add_argument("--jsonl", action="store_true", help="write JSON lines instead of CSV")
    score.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N (default: cuda:$LOCAL_RANK if available, else cpu)"
    )
    score.add_argument("--batch_size", type=int, default=16, help="windows per batch (default 16; 1: one by one)")
    score.add_argument(
        "--max_batch_seconds", type=float, default=160.0, help="padded audio per batch, seconds (default 160)"
    )
    score.add_argument(
        "--max_pad",
        type=parse_max_pad,
        default=AUTO,
        help="most padding a window may get, as a fraction of its batch's longest, or none "
        "(default auto: no cap for WavLM / HuBERT / wav2vec 2.0, else 0.02; see below)",
    )
    score.add_argument(
        "--max_seconds",
        type=float,
        default=30.0,
        help="longer files are scored in overlapping windows of at most this length (default 30; 0: never)",
    )
    score.add_argument(
        "--chunk_overlap", type=float, default=5.0, help="least overlap of neighbouring windows, seconds (default 5)"
    )
    score.add_argument(
        "--num_workers",
        type=_workers,
        default=AUTO,
        help="processes decoding audio ahead of the model (default auto: up to 4 on a GPU, "
        f"{CPU_AUTO_WORKERS or 'none'} on a CPU, none for under {FEW_FILES} files)",
    )
    score.add_argument(
        "--chunk_size",
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        help=f"files scored together and then written (default {DEFAULT_CHUNK_SIZE}); a rerun after a kill "
        "redoes at most one chunk",
    )
    stream = score.add_argument_group("resuming and sharding (with -o)")
    stream.add_argument("--overwrite", action="store_true", help="start the output afresh instead of continuing it")
    stream.add_argument(
        "--retry_failed",
        action="store_true",
        help="score the files of OUT.failed.tsv again (a rerun otherwise leaves them as they are)",
    )
    stream.add_argument("--nshard", type=int, default=None, help="number of shards (default: WORLD_SIZE, else 1)")
    stream.add_argument("--rank", type=int, default=None, help="this shard, 0..nshard-1 (default: RANK, else 0)")
    score.add_argument(
        "--system_delim", help="system of an utterance without a system column: its file stem before this string"
    )
    score.add_argument("--metrics", metavar="JSON", help="also write the metrics to this file")
    score.add_argument(
        "--system_posterior",
        action="store_true",
        help="models with a system-classification head (MoE-MOS): also write the most likely "
        "training system, its probability and the posterior of every system",
    )
    score.add_argument(
        "--trust_remote_code",
        action="store_true",
        help="let a predictor file whose upstream is a module:callable (or a hub upstream with a "
        "checkpoint to load) import and run that code; only for files you trust",
    )
    score.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    merge = sub.add_parser(
        "merge",
        help="join the parts of a sharded score run into one output",
        description="Write OUT (and OUT.failed.tsv, OUT.run.json) from the finished parts OUT.part-R-of-N of a "
        "score run with --nshard N, in input order: the same bytes as a one-process run. Give the inputs of "
        "the score run, in the same order. Refuses a part that is missing or unfinished, naming it; removes "
        "the parts when done.",
        epilog=MERGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    merge.add_argument("inputs", nargs="+", metavar="INPUT", help="the inputs of the score run, in the same order")
    merge.add_argument("-o", "--out", required=True, help="the score run's output")
    merge.add_argument("--nshard", type=int, required=True, help="the score run's shard count")
    merge.add_argument(
        "--system_delim", help="system of an utterance without a system column: its file stem before this string"
    )
    merge.add_argument("--metrics", metavar="JSON", help="also write the metrics to this file")
    return parser


def _workers(text: str) -> int | str:
    if text == AUTO:
        return AUTO
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0 or 'auto', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0 or 'auto', got {text!r}")
    return value


# ValueError: settings out of range (batch size, overlap)
@reports_errors(catch=(ToolkitError, ValueError), prefix="distilmos-predict: error")
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 some files failed, 2 unusable input)."""
    args = build_parser().parse_args(argv)
    # s3prl's upstream code triggers these on every run; they say nothing about the user's input
    warnings.filterwarnings("ignore", message=r".*weight_norm.* is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask", category=UserWarning)
    # subnormal floats (GELU tails) make CPU matmuls several times slower; flushing them changes no score
    torch.set_flush_denormal(True)
    commands = {"export": _export, "import": _import, "info": _info, "score": _score, "merge": _merge}
    return commands[args.command](args)


def _export(args) -> int:
    from .export import export

    card = export(args.checkpoint, args.out, check=not args.no_check)
    up, down = card["upstream"], card["downstream"]
    model = f"{down['expert']} ({down['variant']}) on {up['name']}, step {card['experiment']['step']}"
    upstream = "embedded" if up["embedded"] else f"rebuilt from {up['name']!r} when loaded"
    return _written(args.out, model, upstream, down["dropped"], "training-only entries")


def _import(args) -> int:
    from .import_authors import import_authors

    card = import_authors(args.source, args.backbone, args.out)
    source = card["source"]["checkpoint"]
    model = f"the DistilMOS authors' {args.backbone} model ({source['file']}, sha256 {source['sha256'][:12]})"
    upstream = f"{card['upstream']['kind']} embedded"
    return _written(args.out, model, upstream, card["downstream"]["dropped"], "entries inference does not use")


def _written(out: str, model: str, upstream: str, dropped: dict, entries: str) -> int:
    """Say (on stderr) what the predictor file just written holds and what of the source it left out."""
    modules = ", ".join(dropped["modules"]) or "none"
    print(f"{out}: {model}; upstream {upstream}; dropped {dropped['keys']} {entries} ({modules})", file=sys.stderr)
    return 0


def _info(args) -> int:
    from .fileformat import FORMAT_VERSION
    from .sources import is_peer, model_card

    card = model_card(args.model)
    if not is_peer(args.model):
        card = dict(card, format_version=FORMAT_VERSION)
    if args.json:
        print(json.dumps(card, indent=2))
    else:
        import yaml

        print(yaml.safe_dump(card, sort_keys=False, allow_unicode=True), end="")
    return 0


def _score(args) -> int:
    from .inputs import iter_entries
    from .predictor import load
    from .shards import default_device, shard_spec

    nshard, rank, under_torchrun = shard_spec(args.nshard, args.rank)
    if not args.out and (nshard > 1 or args.overwrite or args.retry_failed):
        raise ValueError("--nshard, --overwrite and --retry_failed are about an output file: give -o")
    if args.chunk_size < 1:
        raise ValueError(f"--chunk_size must be >= 1, got {args.chunk_size}")
    jsonl = args.jsonl or bool(args.out and args.out.lower().endswith(".jsonl"))
    _check_outputs(args.out, args.metrics, nshard, rank, under_torchrun)
    predictor = load(
        args.model,
        device=default_device() if args.device in (None, "auto") else args.device,
        max_seconds=args.max_seconds,
        chunk_overlap=args.chunk_overlap,
        batch_size=args.batch_size,
        max_batch_seconds=args.max_batch_seconds,
        max_pad=args.max_pad,
        trust_remote_code=args.trust_remote_code,
    )
    classes = predictor.system_classes if args.system_posterior else None
    if args.system_posterior and not classes:
        raise ValueError(
            f"{args.model}: this model has no system-classification head; --system_posterior needs one "
            "(e.g. a moe_mos model)"
        )
    # one pass over the inputs before any scoring: a bad list is refused now, not hours in; the count
    # gives the progress bar its length; whether any input has a true score decides the columns
    total, with_score = 0, False
    for entry in iter_entries(args.inputs, args.system_delim):
        total += 1
        with_score = with_score or entry.score is not None
    if not total:
        raise ValueError(f"no audio files in {' '.join(args.inputs)}")
    from .streaming import ScoreFormat

    fmt = ScoreFormat(jsonl, with_score, tuple(classes or ()), predictor.has_std)
    score_kwargs = {"num_workers": args.num_workers, "posterior": bool(classes), "progress": not args.quiet}
    if not args.out:
        return _score_to_stdout(args, predictor, fmt, total, score_kwargs)
    return _score_to_file(args, predictor, fmt, total, score_kwargs, nshard, rank, under_torchrun)


def _check_outputs(out: str | None, metrics: str | None, nshard: int, rank: int, merging: bool) -> None:
    """Before any scoring: every file the run will write can be written (no finished work is lost to an
    output that cannot be)."""
    from .shards import part_paths
    from .streaming import Target, check_output_paths

    paths = []
    if out:
        final = Target(out)
        paths += [(out, "output file (-o)")] + [(p, "output file") for p in final.files() + [final.lock]]
        ranks = range(nshard) if merging or nshard == 1 else [rank]
        paths += [(p, "shard part") for r in ranks if nshard > 1 for p in part_paths(out, nshard, r)]
    if metrics:
        paths.append((metrics, "metrics file (--metrics)"))
    check_output_paths(paths)


def _settings(args, predictor) -> dict:
    """What the rows depend on beyond the model and the columns (checked when a run continues an output)."""
    return {
        "max_seconds": predictor.max_seconds,
        "chunk_overlap": predictor.chunk_overlap,
        "batch_size": predictor.batch_size,
        "max_batch_seconds": predictor.max_batch_seconds,
        "max_pad": predictor.max_pad,
        "chunk_size": args.chunk_size,
    }


def _score_to_stdout(args, predictor, fmt, total: int, score_kwargs: dict) -> int:
    from .inputs import iter_entries

    start = time.perf_counter()
    pending, failed, shown, metrics = [], 0, [], _MetricInputs()
    scored = windowed = 0
    sys.stdout.write(fmt.header().decode("utf-8"))

    def paths():
        for entry in iter_entries(args.inputs, args.system_delim):
            pending.append(entry)
            yield entry.wav_path

    for results in predictor.score_chunks(paths(), chunk_size=args.chunk_size, total=total, **score_kwargs):
        entries = pending[: len(results)]
        del pending[: len(results)]
        sys.stdout.write(b"".join(fmt.row(e, r) for e, r in zip(entries, results) if r.ok).decode("utf-8"))
        sys.stdout.flush()
        for entry, result in zip(entries, results):
            if result.ok:
                scored += 1
                windowed += result.windows > 1
                metrics.add(entry, result.pred, result.std)
            else:
                failed += 1
                if len(shown) < SHOWN_FAILURES:
                    shown.append(result.error)
    _print_summary(scored, scored + failed, time.perf_counter() - start, windowed, predictor.max_seconds)
    _print_failures(shown, failed, None)
    if fmt.with_score:
        _report_metrics(metrics, args.metrics)
    return 1 if failed else 0


def _score_to_file(args, predictor, fmt, total: int, score_kwargs: dict, nshard: int, rank: int, merge: bool) -> int:
    from distilmos.locks import RunLock

    from .inputs import iter_entries
    from .shards import already_merged, log, part_target, shard_entries, shard_size
    from .streaming import StreamJob, Target, run_record, run_target, write_json

    start = time.perf_counter()
    shard = {"nshard": nshard, "rank": rank} if nshard > 1 else None
    record = run_record(
        args.model,
        fmt,
        _settings(args, predictor),
        shard,
        model_path=os.path.abspath(args.model) if os.path.exists(args.model) else args.model,
        inputs=[os.path.abspath(i) for i in args.inputs],
        device=str(predictor.device),
        torch=torch.__version__,
    )

    def all_entries():
        return iter_entries(args.inputs, args.system_delim)

    if nshard > 1 and not args.overwrite and already_merged(args.out, record, fmt, all_entries):
        log(f"{args.out} is already scored and merged; nothing to do (--overwrite scores it afresh)")
        if args.retry_failed:
            log(f"to retry its failed files, run the same command without --nshard/--rank (one process, on {args.out})")
        return _finish(args, fmt, Target(args.out), all_entries, start, predictor.max_seconds, None)
    target = part_target(args.out, nshard, rank) if nshard > 1 else Target(args.out)
    job = StreamJob(
        score_chunks=predictor.score_chunks,
        entries=(lambda: shard_entries(all_entries(), args.chunk_size, nshard, rank)) if nshard > 1 else all_entries,
        total=shard_size(total, args.chunk_size, nshard, rank),
        fmt=fmt,
        record=record,
        chunk_size=args.chunk_size,
        overwrite=args.overwrite,
        retry_failed=args.retry_failed,
        score_kwargs=score_kwargs,
    )
    with RunLock(target.lock, f"output {target.path}"):
        totals = run_target(target, job)
        if nshard > 1:
            write_json(target.done, totals.finished())
    if nshard == 1:
        return _finish(args, fmt, target, all_entries, start, predictor.max_seconds, totals)
    log(
        f"rank {rank} of {nshard}: {target.path} holds {totals.scored} of {totals.inputs} file(s) "
        f"({totals.new} scored now; {totals.failed} could not be scored, listed in {target.sidecar})"
    )
    if not (merge and rank == 0):
        if nshard > 1 and not merge:
            log(f"when every rank is done: distilmos-predict merge -o {args.out} --nshard {nshard} INPUTS...")
        return 0  # a part's failed files are the merged output's to report (and a dependent merge must run)
    from .shards import wait_for_parts

    wait_for_parts(args.out, nshard, log)
    return _merge_and_finish(args, args.out, nshard, all_entries, start, predictor.max_seconds)


def _merge(args) -> int:
    from .inputs import iter_entries

    if args.nshard < 1:
        raise ValueError(f"--nshard must be >= 1, got {args.nshard}")
    _check_outputs(args.out, args.metrics, args.nshard, 0, True)
    return _merge_and_finish(
        args, args.out, args.nshard, lambda: iter_entries(args.inputs, args.system_delim), time.perf_counter(), None
    )


def _merge_and_finish(args, out: str, nshard: int, entries, start: float, max_seconds) -> int:
    from distilmos.locks import RunLock

    from .shards import log, merge_parts
    from .streaming import Target

    target = Target(out)
    with RunLock(target.lock, f"output {out}"):
        totals, fmt = merge_parts(out, nshard, entries)
    log(f"merged {nshard} parts into {out}")
    return _finish(args, fmt, target, entries, start, max_seconds, totals)


def _finish(args, fmt, target, entries, start: float, max_seconds, totals) -> int:
    """The summary of a finished output (its failures from the sidecar) and, with true scores, the metrics
    from its rows, streamed back."""
    from .streaming import failures, scored_rows

    shown, failed = failures(target, SHOWN_FAILURES)
    if totals is not None:
        elapsed = time.perf_counter() - start
        _print_summary(totals.scored, totals.inputs, elapsed, totals.windowed, max_seconds, totals)
    _print_failures(shown, failed, target.sidecar)
    if fmt.with_score:
        metrics = _MetricInputs()
        for entry, pred, std in scored_rows(target, fmt, entries()):
            metrics.add(entry, pred, std)
        _report_metrics(metrics, args.metrics)
    return 1 if failed else 0


#: failed files a summary names one by one (the sidecar lists them all)
SHOWN_FAILURES = 20


def _print_summary(scored: int, inputs: int, elapsed: float, windowed: int, max_seconds, totals=None) -> None:
    line = f"distilmos-predict: scored {scored} of {inputs} file(s) in {elapsed:.1f} s"
    if totals is not None and totals.recovered:
        line += f" ({totals.recovered} done by an earlier run, {totals.new} now"
        line += f", {totals.retried} failed file(s) retried)" if totals.retried else ")"
    if windowed:
        line += f" ({windowed} longer than {max_seconds:g} s, scored in windows)"
    print(line, file=sys.stderr)


def _print_failures(shown: list[str], failed: int, sidecar: str | None) -> None:
    if not failed:
        return
    where = f", listed in {sidecar}" if sidecar else ""
    print(f"distilmos-predict: {failed} file(s) could not be scored and were skipped{where}:", file=sys.stderr)
    for message in shown:
        print(f"  {message}", file=sys.stderr)
    if failed > len(shown):
        print(f"  ... and {failed - len(shown)} more", file=sys.stderr)


class _MetricInputs:
    """True score, prediction (and predicted std) and system of every scored input with a true score, compactly
    (a few bytes an input: a list of millions stays small)."""

    def __init__(self):
        self.true, self.pred, self.std, self.systems = array("d"), array("d"), array("d"), []
        self._names: dict[str, str] = {}

    def add(self, entry, pred: float, std: float | None = None) -> None:
        if entry.score is None:
            return
        self.true.append(entry.score)
        self.pred.append(pred)
        if std is not None:
            self.std.append(std)
        self.systems.append(self._names.setdefault(entry.system_id, entry.system_id))


def _report_metrics(inputs: _MetricInputs, out_json: str | None) -> None:
    from distilmos.eval.metrics import compute_metrics

    if not inputs.true:
        print("distilmos-predict: no scored file has a true score; no metrics", file=sys.stderr)
        return
    metrics = compute_metrics(inputs.true, inputs.pred, inputs.systems)
    if inputs.std and len(inputs.std) == len(inputs.pred):  # a model with an uncertainty head
        from distilmos.eval.calibration import calibration_bins, plot_calibration
        from distilmos.eval.metrics import uncertainty_metrics

        metrics.update(uncertainty_metrics(inputs.true, inputs.pred, inputs.std))
        if out_json:
            bins = calibration_bins(inputs.true, inputs.pred, inputs.std)
            plot = plot_calibration(bins, calibration_path(out_json), "scored inputs")
            print(f"distilmos-predict: calibration plot {plot}", file=sys.stderr)
    print(format_metrics(metrics), file=sys.stderr)
    if out_json:
        from distilmos.fileio import atomic_write

        with atomic_write(out_json) as handle:
            json.dump(
                {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()},
                handle,
                indent=2,
            )


def calibration_path(metrics_json: str) -> str:
    """Where ``--metrics M.json`` puts the calibration plot: ``M_calibration.png``."""
    return os.path.splitext(metrics_json)[0] + "_calibration.png"


def format_metrics(metrics: dict) -> str:
    """A small table: utterance and system level, MSE LCC SRCC KTAU."""
    lines = [
        f"metrics over {metrics['n_utt']} utterance(s), {metrics['n_sys']} system(s):",
        "        MSE     LCC    SRCC    KTAU",
    ]
    for level in ("utt", "sys"):
        values = [metrics[f"{level}_{k}"] for k in ("MSE", "LCC", "SRCC", "KTAU")]
        lines.append(f"  {level} " + " ".join(f"{v:7.3f}" if math.isfinite(v) else "    nan" for v in values))
    if "std_err_SRCC" in metrics:
        lines.append(
            "  predicted std vs |error|: "
            + " ".join(f"{k[8:]} {metrics[k]:.3f}" for k in ("std_err_LCC", "std_err_SRCC"))
            + f", mean std {metrics['std_mean']:.3f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
