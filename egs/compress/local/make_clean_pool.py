#!/usr/bin/env python
"""Generated clean speech-like clips for the offline demo of egs/compress (the unlabelled pool's source).

    python egs/compress/local/make_clean_pool.py --out_dir D --n_clips 400 [--seed 0] [--seconds 1.5-3.5]

Uses the stand-in corpora's speech synthesiser (distilmos.standins.speech) without any degradation, so the
pool is clean in the way the demo's best systems are; a real run points --clean_dir at real clean speech.
"""

import argparse
import os
import sys

import numpy as np
import soundfile as sf
from tqdm import tqdm

from distilmos.standins.speech import synthesize_speech


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--n_clips", type=int, default=400)
    parser.add_argument("--seconds", default="1.5-3.5", help="MIN-MAX clip length")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    low, high = (float(v) for v in args.seconds.split("-"))
    os.makedirs(args.out_dir, exist_ok=True)
    for i in tqdm(range(args.n_clips), desc="clean pool", unit="clip", file=sys.stderr):
        rng = np.random.default_rng([args.seed, i])  # one clip's randomness is its own
        wav = synthesize_speech(rng, 16000, float(rng.uniform(low, high)))
        sf.write(os.path.join(args.out_dir, f"clean{i:05d}.wav"), wav.astype(np.float32), 16000, subtype="PCM_16")
    print(f"{args.n_clips} clean clips -> {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
