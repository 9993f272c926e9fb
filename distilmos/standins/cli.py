"""``distilmos-standins`` (or ``python -m distilmos.standins``): one subcommand per generator.

    distilmos-standins bvcc_somos --out_dir D [--seed 0] [--bvcc_systems 12] ...
    distilmos-standins mosbench --out_dir D [--seed 0] [--corpora "singmos nisqa"] [--utts 4]

Bad input (sizes a corpus cannot have, an unknown corpus, an output folder holding other files) is one
message and exit status 2; nothing is written then.
"""

from __future__ import annotations

import argparse
import os
import time

from distilmos.errors import reports_errors

from . import bvcc_somos, mosbench

#: the sizes of the BVCC and SOMOS layouts: option (as ``make_corpus`` names it), default, help
BVCC_SOMOS_SIZES = (
    ("bvcc_systems", 12, "including the one unseen system"),
    ("bvcc_utts_per_system", 20, None),
    ("somos_systems", 8, None),
    ("somos_utts_per_system", 12, None),
)


def _parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="distilmos-standins", description=__doc__, formatter_class=raw)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{bvcc_somos,mosbench}")

    p = sub.add_parser("bvcc_somos", help="BVCC and SOMOS layouts", description=bvcc_somos.__doc__, formatter_class=raw)
    p.add_argument("--out_dir", required=True, help="folder to write bvcc/, somos/ and record.json into")
    p.add_argument("--seed", type=int, default=0)
    for name, default, text in BVCC_SOMOS_SIZES:
        p.add_argument(f"--{name}", type=int, default=default, help=text)

    p = sub.add_parser("mosbench", help="MOS-Bench layouts", description=mosbench.__doc__, formatter_class=raw)
    p.add_argument("--out_dir", required=True, help="folder to write one folder per corpus into")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--corpora", default=" ".join(mosbench.GENERATORS), help="space-separated corpus names")
    p.add_argument("--utts", type=int, default=4, help="utterances per system and split")
    return parser


@reports_errors
def main(argv: list[str] | None = None) -> int:
    """Write the stand-in corpora the subcommand names; exit status 0, or 2 with one error message."""
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    if args.command == "bvcc_somos":
        sizes = {name: getattr(args, name) for name, _, _ in BVCC_SOMOS_SIZES}
        record = bvcc_somos.make_corpus(args.out_dir, args.seed, **sizes)
        record = {corpus: record[corpus] for corpus in ("bvcc", "somos")}
    else:
        record = mosbench.make_mosbench(args.out_dir, args.seed, args.corpora.split(), args.utts)
    for corpus, splits in record.items():
        sizes = ", ".join(f"{split} {len(utts)}" for split, utts in splits.items())
        print(f"{os.path.join(args.out_dir, corpus)}: {sizes}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
