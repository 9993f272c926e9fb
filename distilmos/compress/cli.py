"""``distilmos-compress``: the compression steps of ``egs/compress`` as one command (``python -m
distilmos.compress`` too); each step is still its own module, ``python -m distilmos.compress.<step>``.

    distilmos-compress degrade --config egs/compress/conf/degrade.yaml --inputs clean/ --out_dir pool
    distilmos-compress pseudo-label --teacher teacher.pt --pool pool/pool.csv --out pseudo.csv
    distilmos-compress train-student --config egs/compress/conf/student.yaml --size xs --pseudo pseudo.csv ...
    distilmos-compress prune --teacher teacher.pt --train data/bvcc/train.csv --val data/bvcc/val.csv ...
    distilmos-compress evaluate --models teacher=teacher.pt student_xs=xs.pt ... --tests bvcc=data/bvcc/test.csv ...
    distilmos-compress STEP --help        # the options of one step
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: step name on the command line -> module of distilmos.compress (imported only when its step runs)
STEPS: dict[str, str] = {
    "degrade": "degrade",
    "pseudo-label": "pseudo_label",
    "train-student": "train_student",
    "prune": "prune",
    "evaluate": "evaluate",
}


def step_parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The option parser of the step in ``distilmos.compress.<module>``, described by that module's ``doc``
    (the same parser whether the step runs as ``distilmos-compress STEP`` or ``python -m``)."""
    return argparse.ArgumentParser(
        prog=f"python -m {__package__}.{module}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in STEPS:
        return importlib.import_module(f"{__package__}.{STEPS[argv[0]]}").main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="distilmos-compress",
        usage="distilmos-compress {" + ",".join(STEPS) + "} [options of the step]",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("step", choices=list(STEPS), help="the compression step to run (STEP --help: its options)")
    parser.parse_args(argv)  # not a step: prints the help (-h) or names the valid steps, exit status 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
