#!/usr/bin/env python
"""Make an experiment folder safe to resume: remove checkpoints that a kill left half-written.

    python local/prune_checkpoints.py --expdir exp/distilmos_wavlm_base_k200_seed0

s3prl writes checkpoints in place (``torch.save`` straight to ``states-<step>.ckpt``), so a job killed
while saving leaves a truncated file, and ``run_downstream.py -a`` would pick it as the newest and fail
to load it. A checkpoint is a zip archive whose directory sits at its very end; a file without a
readable directory is incomplete. Such ``states-*.ckpt`` and ``best-states-*.ckpt`` files are removed;
the training then resumes from the newest whole one (or starts anew when none is left).
"""

import argparse
import glob
import os
import re
import sys
import zipfile


def is_whole(path: str) -> bool:
    """True when ``path`` is a complete ``torch.save`` archive (its zip directory can be read)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def step_of(path: str) -> int:
    return int(re.search(r"states-(\d+)\.ckpt$", path).group(1))


def prune(expdir: str):
    """Remove incomplete checkpoints; return ``(removed paths, newest whole states-*.ckpt or None)``."""
    removed = []
    for path in glob.glob(os.path.join(expdir, "states-*.ckpt")) + glob.glob(
        os.path.join(expdir, "best-states-*.ckpt")
    ):
        if not is_whole(path):
            os.remove(path)
            removed.append(path)
    states = sorted(glob.glob(os.path.join(expdir, "states-*.ckpt")), key=step_of)
    return removed, (states[-1] if states else None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expdir", required=True)
    args = parser.parse_args(argv)
    removed, newest = prune(args.expdir)
    for path in removed:
        print(f"removed incomplete checkpoint {path}", file=sys.stderr)
    print(f"resuming from {newest}" if newest else f"no checkpoint in {args.expdir}: training starts at step 0")


if __name__ == "__main__":
    main()
