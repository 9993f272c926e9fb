#!/usr/bin/env python
"""Run several ``distilmos-tokens`` commands in one process.

    python local/tokens.py "fit --csv data/bvcc/train.csv -u wavlm_base --out tokens/wavlm_base_k200" \
        "dump --csv data/bvcc/train.csv --store tokens/wavlm_base_k200 --split train" \
        "dump --csv data/bvcc/val.csv --store tokens/wavlm_base_k200 --split val"

Each argument is one command line of ``distilmos-tokens`` (shell-quoted words); they run in
order and the first failure stops the rest with its exit status. The point is start-up time: one
import of torch and s3prl instead of one per split. Under ``torchrun`` every rank runs the same list,
and each command takes its shard from ``RANK``/``WORLD_SIZE`` as on the command line.
"""

import argparse
import shlex
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "commands", nargs="+", help='one quoted upstream_tokens command line each, e.g. "dump --csv ..."'
    )
    args = parser.parse_args(argv)

    from upstream_tokens.cli import main as upstream_tokens

    for command in args.commands:
        words = shlex.split(command)
        print(f"upstream_tokens {command}", file=sys.stderr, flush=True)
        try:
            status = upstream_tokens(words)
        except SystemExit as exc:  # argparse errors exit; report which command they belong to
            status = exc.code if isinstance(exc.code, int) else 2
        if status:
            print(f"failed ({status}): distilmos-tokens {command}", file=sys.stderr)
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
