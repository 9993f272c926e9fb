"""``distilmos-predict``: export a trained model, show its card, score audio with it.

    distilmos-predict export -e exp/my_exp/best-states-val.ckpt -o my_model.pt
    distilmos-predict import --source BaleYang-DistilMOS --backbone wavlm -o distilmos_authors_wavlm.pt
    distilmos-predict info my_model.pt
    distilmos-predict score my_model.pt wavs/ more.wav list.csv -o scores.csv

(also ``python -m distilmos.predictor ...``). See ``distilmos-predict COMMAND -h``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
import warnings
from collections.abc import Sequence
from typing import IO

import torch

from distilmos.data.batching import AUTO, parse_max_pad

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
runs code from outside the file. Give it only for files you trust.

output: CSV "wav_path,pred" (plus "score" when a list gives scores), in input order, to -o or stdout
(-o and --metrics are checked to be writable before anything is scored);
--jsonl (or -o *.jsonl) writes one JSON object per line instead. --system_posterior (MoE-MOS) adds
"top_system,top_system_prob" and one "p:<system>" column per training system (JSON: "system_posterior").
Files that cannot be scored (missing, empty, truncated, undecodable, non-finite) are reported and skipped;
the run goes on, prints a summary, and exits with status 1 if any file failed. When the inputs carry
scores, utterance- and system-level metrics (MSE, LCC, SRCC, KTAU) are printed, as the trainer computes them.

examples:
  distilmos-predict score model.pt corpus/wavs -o scores.csv
  distilmos-predict score model.pt data/bvcc/test.csv --device cuda -o test_scores.csv
  distilmos-predict score model.pt a.wav b.flac --jsonl
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
        help="the downloaded repository folder, its wavlm/ or w2v2/ folder, or model.pth.tar and model_cfg.yaml",
    )
    imp.add_argument("--backbone", required=True, choices=("wavlm", "w2v2"), help="which of the authors' models")
    imp.add_argument("-o", "--out", required=True, help="predictor file to write")

    info = sub.add_parser(
        "info",
        help="print a predictor file's model card",
        description="Print the model card of a predictor file (YAML, or JSON with --json).",
    )
    info.add_argument("model", help="predictor file")
    info.add_argument("--json", action="store_true", help="print JSON")

    score = sub.add_parser(
        "score",
        help="score audio files, folders or lists",
        description="Score audio with a predictor file.",
        epilog=SCORE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    score.add_argument("model", help="predictor file (distilmos-predict export)")
    score.add_argument("inputs", nargs="+", metavar="INPUT", help="audio file, folder, .csv data list or plain list")
    score.add_argument("-o", "--out", help="output file (default: stdout)")
    score.add_argument("--jsonl", action="store_true", help="write JSON lines instead of CSV")
    score.add_argument("--device", default="auto", help="cpu, cuda, cuda:N (default: cuda if available)")
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
    score.add_argument("--num_workers", type=int, default=0, help="processes reading audio ahead (default 0)")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 some files failed, 2 unusable input)."""
    args = build_parser().parse_args(argv)
    from distilmos.errors import ToolkitError

    # s3prl's upstream code triggers these on every run; they say nothing about the user's input
    warnings.filterwarnings("ignore", message=r".*weight_norm.* is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask", category=UserWarning)
    # subnormal floats (GELU tails) make CPU matmuls several times slower; flushing them changes no score
    torch.set_flush_denormal(True)
    try:
        return {"export": _export, "import": _import, "info": _info, "score": _score}[args.command](args)
    except (ToolkitError, ValueError) as exc:  # ValueError: settings out of range (batch size, overlap)
        print(f"distilmos-predict: error: {exc}", file=sys.stderr)
        return 2


def _export(args) -> int:
    from .export import export

    card = export(args.checkpoint, args.out, check=not args.no_check)
    up, down = card["upstream"], card["downstream"]
    print(
        f"{args.out}: {down['expert']} ({down['variant']}) on {up['name']}, step {card['experiment']['step']}; "
        f"upstream {'embedded' if up['embedded'] else 'rebuilt from ' + repr(up['name']) + ' when loaded'}; "
        f"dropped {down['dropped']['keys']} training-only entries ({', '.join(down['dropped']['modules']) or 'none'})",
        file=sys.stderr,
    )
    return 0


def _import(args) -> int:
    from .import_authors import import_authors

    card = import_authors(args.source, args.backbone, args.out)
    source, dropped = card["source"]["checkpoint"], card["downstream"]["dropped"]
    print(
        f"{args.out}: the DistilMOS authors' {args.backbone} model ({source['file']}, "
        f"sha256 {source['sha256'][:12]}); upstream {card['upstream']['kind']} embedded; dropped {dropped['keys']} "
        f"entries inference does not use ({', '.join(dropped['modules']) or 'none'})",
        file=sys.stderr,
    )
    return 0


def _info(args) -> int:
    from .fileformat import FORMAT_VERSION, read_predictor

    blob = read_predictor(args.model)
    card = dict(blob["card"], format_version=FORMAT_VERSION)
    if args.json:
        print(json.dumps(card, indent=2))
    else:
        import yaml

        print(yaml.safe_dump(card, sort_keys=False, allow_unicode=True), end="")
    return 0


def _score(args) -> int:
    from distilmos.fileio import check_writable_file

    from .inputs import collect
    from .predictor import load

    # before any scoring: no finished work is lost to an output that cannot be written
    for path, what in ((args.out, "output file (-o)"), (args.metrics, "metrics file (--metrics)")):
        if path:
            check_writable_file(path, what)
    predictor = load(
        args.model,
        device=args.device,
        max_seconds=args.max_seconds,
        chunk_overlap=args.chunk_overlap,
        batch_size=args.batch_size,
        max_batch_seconds=args.max_batch_seconds,
        max_pad=args.max_pad,
        trust_remote_code=args.trust_remote_code,
    )
    entries = collect(args.inputs, args.system_delim)
    if not entries:
        raise ValueError(f"no audio files in {' '.join(args.inputs)}")
    start = time.perf_counter()
    classes = predictor.system_classes if args.system_posterior else None
    if args.system_posterior and not classes:
        raise ValueError(
            f"{args.model}: this model has no system-classification head; --system_posterior needs one "
            "(e.g. a moe_mos model)"
        )
    results = predictor.score_files(
        [e.wav_path for e in entries], progress=not args.quiet, num_workers=args.num_workers, posterior=bool(classes)
    )
    elapsed = time.perf_counter() - start
    jsonl = args.jsonl or bool(args.out and args.out.lower().endswith(".jsonl"))
    with_score = any(e.score is not None for e in entries)
    if args.out:
        from distilmos.fileio import atomic_write

        with atomic_write(args.out, "w", newline="", encoding="utf-8") as handle:
            write_scores(handle, entries, results, with_score, jsonl, classes)
    else:
        write_scores(sys.stdout, entries, results, with_score, jsonl, classes)
        sys.stdout.flush()
    failed = [r for r in results if not r.ok]
    _print_summary(results, failed, elapsed, predictor.max_seconds)
    if with_score:
        _print_metrics(entries, results, args.metrics)
    return 1 if failed else 0


def write_scores(
    handle: IO, entries, results, with_score: bool, jsonl: bool, classes: Sequence[str] | None = None
) -> None:
    """Rows of the scored files, in input order: CSV ``wav_path,pred[,score]`` or JSON lines; with
    ``classes`` (the system posterior was asked for) also the most likely system and every probability."""
    rows = [(e, r) for e, r in zip(entries, results) if r.ok]

    def top(result):
        best = max(range(len(classes)), key=result.posterior.__getitem__)
        return classes[best], result.posterior[best]

    if jsonl:
        for entry, result in rows:
            record = {"wav_path": entry.wav_path, "pred": round(result.pred, 6)}
            if with_score:
                record["score"] = entry.score
            if classes:
                record["top_system"], prob = top(result)
                record["top_system_prob"] = round(prob, 6)
                record["system_posterior"] = {c: round(p, 6) for c, p in zip(classes, result.posterior)}
            handle.write(json.dumps(record) + "\n")
        return
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(
        ["wav_path", "pred"]
        + (["score"] if with_score else [])
        + (["top_system", "top_system_prob"] + [f"p:{c}" for c in classes] if classes else [])
    )
    for entry, result in rows:
        row = [entry.wav_path, f"{result.pred:.6f}"]
        if with_score:
            row.append("" if entry.score is None else repr(entry.score))
        if classes:
            name, prob = top(result)
            row += [name, f"{prob:.6f}"] + [f"{p:.6f}" for p in result.posterior]
        writer.writerow(row)


def _print_summary(results, failed, elapsed: float, max_seconds: float) -> None:
    windowed = sum(1 for r in results if r.ok and r.windows > 1)
    line = f"distilmos-predict: scored {len(results) - len(failed)} of {len(results)} file(s) in {elapsed:.1f} s"
    if windowed:
        line += f" ({windowed} longer than {max_seconds:g} s, scored in windows)"
    print(line, file=sys.stderr)
    if failed:
        print(f"distilmos-predict: {len(failed)} file(s) could not be scored and were skipped:", file=sys.stderr)
        for result in failed:
            print(f"  {result.error}", file=sys.stderr)


def _print_metrics(entries, results, out_json: str | None) -> None:
    from distilmos.eval.metrics import compute_metrics

    scored = [(e, r) for e, r in zip(entries, results) if r.ok and e.score is not None]
    if not scored:
        print("distilmos-predict: no scored file has a true score; no metrics", file=sys.stderr)
        return
    metrics = compute_metrics(
        [e.score for e, _ in scored], [r.pred for _, r in scored], [e.system_id for e, _ in scored]
    )
    print(format_metrics(metrics), file=sys.stderr)
    if out_json:
        from distilmos.fileio import atomic_write

        with atomic_write(out_json) as handle:
            json.dump(
                {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()},
                handle,
                indent=2,
            )


def format_metrics(metrics: dict) -> str:
    """A small table: utterance and system level, MSE LCC SRCC KTAU."""
    lines = [
        f"metrics over {metrics['n_utt']} utterance(s), {metrics['n_sys']} system(s):",
        "        MSE     LCC    SRCC    KTAU",
    ]
    for level in ("utt", "sys"):
        values = [metrics[f"{level}_{k}"] for k in ("MSE", "LCC", "SRCC", "KTAU")]
        lines.append(f"  {level} " + " ".join(f"{v:7.3f}" if math.isfinite(v) else "    nan" for v in values))
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
