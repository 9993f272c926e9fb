"""Two small synthetic MOS corpora in the exact folder layouts of BVCC and SOMOS.

    distilmos-standins bvcc_somos --out_dir D [--seed 0] [--bvcc_systems 12]
        [--bvcc_utts_per_system 20] [--somos_systems 8] [--somos_utts_per_system 12]

The audio is speech-like (:mod:`.speech`), degraded per system (:mod:`.degradations`); each system's true
quality falls with the severity of its degradations, and listener ratings are drawn around it. This lets
the real data preparation, training and evaluation code run end to end without the real corpora.

Layout written under ``D``::

    bvcc/DATA/wav/<sysID>-<uttID>.wav                       16 kHz mono PCM16
    bvcc/DATA/sets/{train,val,test}_mos_list.txt             "sys64e2f-utt9c183cd.wav,3.25"
    bvcc/DATA/sets/{TRAINSET,DEVSET}                         "sysID,uttID.wav,rating,ignore,listenerinfo"
    somos/audios/<domain>_<year>_<sentence>_<system>.wav     22050 Hz, mono (a few stereo) PCM16
    somos/training_files/split1/clean/{train,valid,test}_mos_list.txt   header "utteranceId,mean"
    record.json                                               everything generated, for tests

BVCC has one system that appears only in val/test (an unseen system) and exactly one all-silent train
file, as the real corpus does. SOMOS systems use degradations partly unseen in BVCC, so that zero-shot
evaluation on it is meaningful. The same seed gives byte-identical files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from distilmos.errors import ConfigError

from .degradations import BVCC_KINDS, DEGRADATIONS, SOMOS_KINDS, degrade
from .output import check_out_dir
from .speech import synthesize_speech

BVCC_SR = 16000
SOMOS_SR = 22050

BVCC_RATINGS_PER_UTT = 8
BVCC_LISTENERS = 40
SOMOS_LISTENERS = 60
SOMOS_RATINGS_RANGE = (10, 18)  # SOMOS utterances have a varying number of ratings; [low, high)
SCORE_DECIMALS = 6

# Quality model: a clean system scores about QUALITY_CLEAN and one at total severity 1 about
# QUALITY_CLEAN - QUALITY_SLOPE; both are then kept inside QUALITY_RANGE.
QUALITY_CLEAN = 4.6
QUALITY_SLOPE = 3.1
QUALITY_RANGE = (1.3, 4.7)

SOMOS_DOMAINS = ("novel", "news", "wiki", "conv")
LISTENER_AGES = ("18-24", "25-34", "35-44", "45-54", "55-64")
LISTENER_GENDERS = ("Female", "Male")


# --------------------------------------------------------------------------------------------------
# Systems, utterances and ratings
# --------------------------------------------------------------------------------------------------


@dataclass
class System:
    """A synthetic 'TTS/VC system': its degradations (kind -> severity) and true quality."""

    name: str
    corpus: str
    severities: dict[str, float]
    quality: float
    offset: float  # the part of the quality not explained by severity (naturalness, prosody, ...)
    unseen: bool = False

    def record(self) -> dict:
        """This system's entry in record.json."""
        return {
            "corpus": self.corpus,
            "degradations": [DEGRADATIONS[k].label(s) for k, s in self.severities.items()],
            "severity": round(float(sum(self.severities.values())), 3),
            "quality": round(self.quality, 3),
            "unseen": self.unseen,
        }


@dataclass
class Utterance:
    """One planned audio file: what to synthesise, how to degrade it and how it was rated."""

    wav: str
    system: System
    split: str
    audio_seed: int
    duration_s: float
    severities: dict[str, float]
    ratings: list[int]
    listeners: list[int]
    sample_rate: int
    channels: int = 1
    silent: bool = False
    score: float = field(init=False)

    def __post_init__(self):
        # The score is what the list file will hold: the rating mean at the written precision.
        self.score = float(format_score(float(np.mean(self.ratings))))


def quality_from_severity(total_severity: float) -> float:
    """The quality of a system with this much total degradation, before the per-system offset."""
    return QUALITY_CLEAN - QUALITY_SLOPE * min(total_severity, 1.0)


def plan_systems(
    rng: np.random.Generator,
    names: Sequence[str],
    corpus: str,
    kinds: Sequence[str],
    n_clean: int,
    lowest_severity: float,
) -> list[System]:
    """Systems whose total severities are spread evenly (in random order) so that their qualities span
    the whole MOS scale; ``n_clean`` systems have no degradation. Each degraded system has 1 or 2 kinds,
    the total severity split between them."""
    n_degraded = len(names) - n_clean
    targets = np.clip(np.linspace(lowest_severity, 1.0, n_degraded) + rng.normal(0, 0.03, n_degraded), 0.05, 1.0)
    targets = np.concatenate([np.zeros(n_clean), rng.permutation(targets)])
    systems = []
    for name, total in zip(names, targets):
        severities: dict[str, float] = {}
        if total > 0:
            chosen = rng.choice(kinds, size=int(rng.integers(1, 3)), replace=False)
            shares = rng.dirichlet(np.full(len(chosen), 4.0))  # fairly even split between the kinds
            severities = {str(k): float(total * w) for k, w in zip(chosen, shares)}
        offset = float(rng.normal(0, 0.1))
        quality = float(np.clip(quality_from_severity(total) + offset, *QUALITY_RANGE))
        systems.append(System(name, corpus, severities, quality, offset))
    return systems


def utterance_severities(rng: np.random.Generator, system: System) -> dict[str, float]:
    """The system's severities, varied per utterance: the same degradation hurts some sentences more."""
    return {k: float(np.clip(s * math.exp(rng.normal(0, 0.2)), 0.0, 1.0)) for k, s in system.severities.items()}


def utterance_quality(rng: np.random.Generator, system: System, severities: dict[str, float]) -> float:
    """True quality of one utterance: follows its own severities, plus a little independent variation."""
    return quality_from_severity(sum(severities.values())) + system.offset + float(rng.normal(0, 0.2))


def rate(rng: np.random.Generator, quality: float, biases: np.ndarray, n_ratings: int) -> tuple[list[int], list[int]]:
    """Ratings by ``n_ratings`` distinct listeners: round(quality + listener bias + noise) within 1..5."""
    listeners = rng.choice(len(biases), size=n_ratings, replace=False)
    raw = quality + biases[listeners] + rng.normal(0, 0.6, size=n_ratings)
    return [int(r) for r in np.clip(np.rint(raw), 1, 5)], [int(i) for i in listeners]


def plan_utterance(
    rng: np.random.Generator,
    system: System,
    wav: str,
    split: str,
    biases: np.ndarray,
    n_ratings: int | tuple[int, int],
    sample_rate: int,
) -> Utterance:
    """One utterance of ``system``: its severities, quality and ratings by listeners of ``biases``, then its
    audio seed and duration, drawn in that order. ``n_ratings``: how many ratings, or the ``[low, high)``
    range to draw that number from (after the quality)."""
    severities = utterance_severities(rng, system)
    quality = utterance_quality(rng, system, severities)
    if isinstance(n_ratings, tuple):
        n_ratings = int(rng.integers(*n_ratings))
    ratings, raters = rate(rng, quality, biases, n_ratings)
    seed, duration = int(rng.integers(2**63)), float(rng.uniform(1.0, 4.0))
    return Utterance(wav, system, split, seed, duration, severities, ratings, raters, sample_rate)


def format_score(value: float) -> str:
    """A mean rating as written in the list files: at most 6 decimals, no trailing zeros (``3.375``)."""
    text = f"{value:.{SCORE_DECIMALS}f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def unique_hex_ids(rng: np.random.Generator, prefix: str, n_hex: int, count: int) -> list[str]:
    """``count`` distinct ids ``prefix`` + ``n_hex`` lowercase hex digits, in random order."""
    values = rng.choice(16**n_hex, size=count, replace=False)
    return [f"{prefix}{int(v):0{n_hex}x}" for v in values]


def split_sizes(n: int, fractions: tuple[float, float]) -> tuple[int, int, int]:
    """(train, val, test) counts for ``n`` items, val and test at least 1 each."""
    n_val = max(1, int(round(fractions[0] * n)))
    n_test = max(1, int(round(fractions[1] * n)))
    return n - n_val - n_test, n_val, n_test


# --------------------------------------------------------------------------------------------------
# BVCC
# --------------------------------------------------------------------------------------------------


def plan_bvcc(
    rng: np.random.Generator, n_systems: int, utts_per_system: int
) -> tuple[list[System], list[Utterance], list[str], np.ndarray]:
    """Systems, utterances (with splits and ratings), listener descriptions and listener biases of the BVCC-like
    corpus. Each listener rates with a systematic offset (normal, sd 0.4: some are harsher than others), as
    real listeners do; the listener files name them, so listener-aware training has something to learn."""
    names = unique_hex_ids(rng, "sys", 5, n_systems)
    n_clean = 2 if n_systems >= 8 else 1
    systems = plan_systems(rng, names, "bvcc", BVCC_KINDS, n_clean, lowest_severity=0.15)
    # One degraded system is only in val/test, as BVCC's test set holds systems unseen in training.
    unseen = systems[int(rng.integers(n_clean, n_systems))]
    unseen.unseen = True

    biases = rng.normal(0, 0.4, BVCC_LISTENERS)
    listeners = [
        f"{{}}_{rng.choice(LISTENER_AGES)}_{rng.choice(LISTENER_GENDERS)}_{rng.choice(['Yes', 'No'])}_Listener{i + 1}"
        for i in range(BVCC_LISTENERS)
    ]
    utt_ids = iter(unique_hex_ids(rng, "utt", 7, n_systems * utts_per_system))

    utterances = []
    for system in systems:
        if system.unseen:
            splits = ["val"] * (utts_per_system // 2) + ["test"] * (utts_per_system - utts_per_system // 2)
        else:
            n_train, n_val, n_test = split_sizes(utts_per_system, (0.15, 0.15))
            splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
        for split in rng.permutation(splits):
            wav = f"{system.name}-{next(utt_ids)}.wav"
            utterances.append(plan_utterance(rng, system, wav, str(split), biases, BVCC_RATINGS_PER_UTT, BVCC_SR))
    _make_one_silent(rng, utterances, biases)
    return systems, utterances, listeners, biases


def _make_one_silent(rng: np.random.Generator, utterances: list[Utterance], biases: np.ndarray) -> None:
    """Turn one degraded train utterance into an all-zero file with a low quality, as in real BVCC."""
    candidates = [i for i, u in enumerate(utterances) if u.split == "train" and u.system.severities]
    candidates = candidates or [i for i, u in enumerate(utterances) if u.split == "train"]
    index = candidates[int(rng.integers(len(candidates)))]
    ratings, raters = rate(rng, float(rng.uniform(1.5, 2.3)), biases, BVCC_RATINGS_PER_UTT)
    utterances[index] = dataclasses.replace(
        utterances[index], severities={}, ratings=ratings, listeners=raters, silent=True
    )


def write_bvcc(root: Path, utterances: list[Utterance], listeners: list[str]) -> None:
    """Audio, mos lists and listener files under ``root`` (= D/bvcc)."""
    sets = root / "DATA" / "sets"
    write_audio_and_lists(root / "DATA" / "wav", sets, utterances, ("train", "val", "test"))
    for split, name in (("train", "TRAINSET"), ("val", "DEVSET")):
        lines = [
            f"{u.system.name},{u.wav},{r},x,{listeners[who]}"
            for u in utterances
            if u.split == split
            for r, who in zip(u.ratings, u.listeners)
        ]
        (sets / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# SOMOS
# --------------------------------------------------------------------------------------------------


def plan_somos(rng: np.random.Generator, n_systems: int, utts_per_system: int) -> tuple[list[System], list[Utterance]]:
    """Systems and utterances (with splits and ratings) of the SOMOS-like corpus.

    As in SOMOS, all systems read from one pool of sentences, so a sentence id recurs across systems.
    """
    names = [f"{int(v):03d}" for v in np.sort(rng.choice(201, size=n_systems, replace=False))]
    systems = plan_systems(rng, names, "somos", SOMOS_KINDS, n_clean=0, lowest_severity=0.1)
    sentences = sorted(
        {
            (str(rng.choice(SOMOS_DOMAINS)), int(rng.integers(1990, 2021)), int(rng.integers(10000)))
            for _ in range(2 * utts_per_system)
        }
    )
    if len(sentences) < utts_per_system:
        raise RuntimeError("sentence pool too small; try another seed")  # only after many id collisions

    biases = rng.normal(0, 0.4, SOMOS_LISTENERS)
    utterances = []
    for system in systems:
        for s in rng.choice(len(sentences), size=utts_per_system, replace=False):
            domain, year, sentence = sentences[s]
            wav = f"{domain}_{year}_{sentence:04d}_{system.name}.wav"
            utterances.append(plan_utterance(rng, system, wav, "", biases, SOMOS_RATINGS_RANGE, SOMOS_SR))

    # Split over the whole corpus ~60/20/20 (not per system), and make a few files stereo.
    n_train, n_valid, n_test = split_sizes(len(utterances), (0.2, 0.2))
    for utt, split in zip(utterances, rng.permutation(["train"] * n_train + ["valid"] * n_valid + ["test"] * n_test)):
        utt.split = str(split)
    for i in rng.choice(len(utterances), size=max(1, round(0.05 * len(utterances))), replace=False):
        utterances[i].channels = 2
    return systems, utterances


def write_somos(root: Path, utterances: list[Utterance]) -> None:
    """Audio and mos lists under ``root`` (= D/somos)."""
    lists = root / "training_files" / "split1" / "clean"
    write_audio_and_lists(root / "audios", lists, utterances, ("train", "valid", "test"), header=["utteranceId,mean"])


# --------------------------------------------------------------------------------------------------
# Audio rendering and the whole corpus
# --------------------------------------------------------------------------------------------------


def render(utt: Utterance) -> np.ndarray:
    """The waveform of one planned utterance: ``[samples]`` or, for stereo, ``[samples, 2]``."""
    rng = np.random.default_rng(utt.audio_seed)  # own stream: audio does not depend on file order
    n = int(round(utt.duration_s * utt.sample_rate))
    if utt.silent:
        return np.zeros(n)
    x = degrade(synthesize_speech(rng, utt.sample_rate, utt.duration_s), utt.sample_rate, rng, utt.severities)
    if utt.channels == 2:
        # A second microphone: slightly quieter and 0.5 ms later, so downmixing is not a no-op.
        delay = int(0.0005 * utt.sample_rate)
        x = np.stack([x, 0.9 * np.concatenate([np.zeros(delay), x[: len(x) - delay]])], axis=1)
    return x


def write_audio(path: Path, utt: Utterance) -> None:
    """Render ``utt`` into a 16-bit PCM WAV (deterministic bytes: no timestamps in the header)."""
    sf.write(str(path), render(utt), utt.sample_rate, subtype="PCM_16", format="WAV")


def write_audio_and_lists(
    audio_dir: Path, lists_dir: Path, utterances: list[Utterance], splits: Sequence[str], header: Sequence[str] = ()
) -> None:
    """Every utterance's audio in ``audio_dir`` and, in ``lists_dir``, one ``<split>_mos_list.txt`` per split:
    the ``header`` lines, then ``wav,mean rating`` rows sorted by file name."""
    audio_dir.mkdir(parents=True)
    lists_dir.mkdir(parents=True)
    for utt in utterances:
        write_audio(audio_dir / utt.wav, utt)
    for split in splits:
        rows = sorted(f"{u.wav},{format_score(u.score)}" for u in utterances if u.split == split)
        (lists_dir / f"{split}_mos_list.txt").write_text("".join(r + "\n" for r in [*header, *rows]), encoding="utf-8")


def _prepare_out_dir(out: Path) -> None:
    """Start from scratch, but only ever delete what an earlier run of this generator wrote."""
    ours = [out / "bvcc", out / "somos", out / "record.json"]
    check_out_dir(out, [])
    if (out / "record.json").is_file():
        for path in ours:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    check_out_dir(out, ours[:2])
    out.mkdir(parents=True, exist_ok=True)


def _utterance_record(utt: Utterance) -> dict:
    """One utterance's entry in record.json."""
    if utt.system.corpus == "bvcc":
        return {
            "wav": utt.wav,
            "system": utt.system.name,
            "score": utt.score,
            "ratings": utt.ratings,
            "listeners": utt.listeners,  # index into record["bvcc_listeners"], one per rating
            "silent": utt.silent,
        }
    return {
        "wav": utt.wav,
        "system": utt.system.name,
        "score": utt.score,
        "sample_rate": utt.sample_rate,
        "channels": utt.channels,
    }


def make_corpus(
    out_dir,
    seed: int = 0,
    *,
    bvcc_systems: int = 12,
    bvcc_utts_per_system: int = 20,
    somos_systems: int = 8,
    somos_utts_per_system: int = 12,
) -> dict:
    """Write the BVCC-like and SOMOS-like corpora and ``record.json`` under ``out_dir``; return the record."""
    if bvcc_systems < 2 or somos_systems < 1:
        raise ConfigError("need at least 2 BVCC systems (one is unseen) and 1 SOMOS system")
    if bvcc_utts_per_system < 3 or somos_utts_per_system < 1 or somos_systems * somos_utts_per_system < 3:
        raise ConfigError("need at least 3 BVCC utterances per system and 3 SOMOS utterances in all")
    out = Path(out_dir)
    _prepare_out_dir(out)
    rng = np.random.default_rng(seed)
    bvcc_sys, bvcc_utts, listeners, biases = plan_bvcc(rng, bvcc_systems, bvcc_utts_per_system)
    somos_sys, somos_utts = plan_somos(rng, somos_systems, somos_utts_per_system)
    write_bvcc(out / "bvcc", bvcc_utts, listeners)
    write_somos(out / "somos", somos_utts)

    record = {
        "seed": seed,
        "bvcc": {
            s: [_utterance_record(u) for u in sorted(bvcc_utts, key=lambda u: u.wav) if u.split == s]
            for s in ("train", "val", "test")
        },
        "somos": {
            s: [_utterance_record(u) for u in sorted(somos_utts, key=lambda u: u.wav) if u.split == s]
            for s in ("train", "valid", "test")
        },
        "systems": {s.name: s.record() for s in bvcc_sys + somos_sys},
        # the listener id the listener files give (their listenerinfo field) and the listener's rating offset
        "bvcc_listeners": [{"id": name, "bias": float(b)} for name, b in zip(listeners, biases)],
    }
    (out / "record.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record
