#!/usr/bin/env python
"""An unlabelled speech pool for pretraining a tiny upstream: eSpeak NG speech with varied voices, rates and
sentences, part of it degraded as the demo's systems are, plus (optionally) the demo generator's speech.

    python egs/pretrain_tiny/local/make_pool.py --out_dir pool [--n_utts 720] [--n_generated 120] [--seed 0]

Writes ``<out_dir>/wav/*.wav`` (16 kHz mono PCM16) and ``<out_dir>/pool.csv`` with the header
``wav_path,split,source,voice,rate,degradation,text``: ``split`` is ``train`` or ``heldout`` (the held-out part
scores the masked prediction and the linear probes), and ``voice``, ``rate`` (slow/medium/fast) and
``degradation`` (clean or a demo degradation kind) are the properties the probes try to read; they are empty
for the generated speech, which has no voice or rate classes. The same seed gives byte-identical files.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from espeak import OUTPUT_RATE, Espeak  # this recipe's local/espeak.py, beside this script
from tqdm import tqdm

from distilmos.standins.degradations import BVCC_KINDS, degrade
from distilmos.standins.speech import synthesize_speech

# eSpeak NG voice variants on two English accents: four male and four female voices. Only variants whose
# samples are the same in every process: f2, f3 and f5 add breath noise that differs from run to run.
VOICES = ("en-us+m1", "en-us+m3", "en+m2", "en+m4", "en-us+f1", "en-us+linda", "en+anika", "en+f4")
# words per minute, drawn uniformly within each class
RATES = {"slow": (105, 135), "medium": (160, 190), "fast": (240, 290)}
DEGRADED_FRACTION = 0.5  # half the espeak utterances get one of the demo's BVCC degradations
HELDOUT_EVERY = 7  # every 7th utterance is held out (about 14 %), so even a tiny pool has both splits
PEAK = 0.5

# A small seeded grammar, so that sentences vary without shipping a text corpus.
DETERMINERS = ("the", "a", "every", "one", "this", "that", "my", "our", "some")
ADJECTIVES = (
    "old",
    "quiet",
    "bright",
    "heavy",
    "small",
    "green",
    "careful",
    "hungry",
    "distant",
    "wooden",
    "silver",
    "patient",
    "sudden",
    "warm",
    "broken",
    "gentle",
    "narrow",
    "famous",
)
NOUNS = (
    "river",
    "teacher",
    "garden",
    "window",
    "doctor",
    "engine",
    "village",
    "letter",
    "captain",
    "forest",
    "kitchen",
    "bicycle",
    "market",
    "farmer",
    "mountain",
    "blanket",
    "student",
    "harbour",
    "violin",
    "lantern",
)
VERBS = (
    "carried",
    "opened",
    "painted",
    "followed",
    "watched",
    "repaired",
    "found",
    "visited",
    "described",
    "remembered",
    "measured",
    "borrowed",
    "pushed",
    "noticed",
    "ordered",
    "cleaned",
)
ADVERBS = (
    "slowly",
    "again",
    "yesterday",
    "twice",
    "quietly",
    "at dawn",
    "before lunch",
    "without a word",
    "in the rain",
    "after school",
)
PREPOSITIONS = ("near", "behind", "under", "beside", "across", "towards")
OPENERS = ("", "", "", "later, ", "however, ", "in the morning, ", "to everyone's surprise, ", "meanwhile, ")
QUESTIONS = ("", "", "", "did ", "why did ")


def sentence(rng: np.random.Generator) -> str:
    """One random sentence (5-16 words) from the grammar above."""

    def pick(words):
        return words[int(rng.integers(len(words)))]

    def phrase():
        adjective = pick(ADJECTIVES) + " " if rng.random() < 0.6 else ""
        return f"{pick(DETERMINERS)} {adjective}{pick(NOUNS)}"

    question = pick(QUESTIONS)
    verb = pick(VERBS)
    if question:  # "did the farmer open ..." needs the bare verb; the past form read aloud is close enough
        words = f"{question}{phrase()} {verb.removesuffix('ed') if verb.endswith('ed') else verb} {phrase()}"
    else:
        words = f"{pick(OPENERS)}{phrase()} {verb} {phrase()}"
    if rng.random() < 0.5:
        words += f" {pick(PREPOSITIONS)} {phrase()}"
    if rng.random() < 0.5:
        words += f" {pick(ADVERBS)}"
    return words[0].upper() + words[1:] + ("?" if question else ".")


def espeak_utterance(synth: Espeak, rng: np.random.Generator) -> tuple:
    """``(wav, labels)`` of one eSpeak utterance: random voice, rate class, pitch, 1-2 sentences, degradation."""
    voice = VOICES[int(rng.integers(len(VOICES)))]
    rate = list(RATES)[int(rng.integers(len(RATES)))]
    text = " ".join(sentence(rng) for _ in range(1 + int(rng.random() < 0.3)))
    wav = synth.say(
        text,
        voice=voice,
        rate=int(rng.integers(*RATES[rate])),
        pitch=int(rng.integers(30, 71)),
        pitch_range=int(rng.integers(30, 81)),
    ).astype(np.float64)
    wav *= PEAK / (np.abs(wav).max() + 1e-12)
    wav += 1e-4 * rng.standard_normal(len(wav))  # the demo's faint noise floor: no digital silence
    degradation = "clean"
    if rng.random() < DEGRADED_FRACTION:
        degradation = BVCC_KINDS[int(rng.integers(len(BVCC_KINDS)))]
        wav = degrade(wav, OUTPUT_RATE, rng, {degradation: float(rng.uniform(0.2, 1.0))})
    return wav, {"source": "espeak", "voice": voice, "rate": rate, "degradation": degradation, "text": text}


def generated_utterance(rng: np.random.Generator) -> tuple:
    """``(wav, labels)`` of the demo generator's speech-like audio, degraded like one of its systems."""
    wav = synthesize_speech(rng, OUTPUT_RATE, float(rng.uniform(1.5, 4.0)))
    degradation = "clean"
    if rng.random() < DEGRADED_FRACTION:
        degradation = BVCC_KINDS[int(rng.integers(len(BVCC_KINDS)))]
        wav = degrade(wav, OUTPUT_RATE, rng, {degradation: float(rng.uniform(0.2, 1.0))})
    return wav, {"source": "generated", "voice": "", "rate": "", "degradation": degradation, "text": ""}


def make_pool(out_dir, n_utts: int = 720, n_generated: int = 120, seed: int = 0, quiet: bool = False) -> str:
    """Write the pool under ``out_dir``; return the path of ``pool.csv``."""
    out = Path(out_dir)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    synth = Espeak() if n_utts > 0 else None
    kinds = ["espeak"] * n_utts + ["generated"] * n_generated
    rows = []
    for i, kind in enumerate(tqdm(kinds, desc="pool", disable=quiet)):
        # every utterance has its own stream, so one utterance does not depend on the others' lengths
        utt_rng = np.random.default_rng([seed, i])
        wav, labels = espeak_utterance(synth, utt_rng) if kind == "espeak" else generated_utterance(utt_rng)
        name = f"{kind}_{i:05d}.wav"
        sf.write(str(out / "wav" / name), wav, OUTPUT_RATE, subtype="PCM_16", format="WAV")
        split = "heldout" if i % HELDOUT_EVERY == HELDOUT_EVERY // 2 else "train"
        rows.append({"wav_path": f"wav/{name}", "split": split, **labels})
    csv_path = out / "pool.csv"
    tmp = out / ".pool.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(
            handle,
            fieldnames=["wav_path", "split", "source", "voice", "rate", "degradation", "text"],
            lineterminator="\n",
        )
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, csv_path)  # atomic: a killed run never leaves a pool.csv that looks whole
    return str(csv_path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--n_utts", type=int, default=720, help="eSpeak NG utterances")
    parser.add_argument("--n_generated", type=int, default=120, help="utterances of the demo's speech generator")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    path = make_pool(args.out_dir, args.n_utts, args.n_generated, args.seed, args.quiet)
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    seconds = sum(sf.info(os.path.join(args.out_dir, r["wav_path"])).duration for r in rows)
    print(
        f"{path}: {len(rows)} utterances, {seconds / 60:.1f} min of audio "
        f"({sum(r['split'] == 'heldout' for r in rows)} held out); done in {time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
