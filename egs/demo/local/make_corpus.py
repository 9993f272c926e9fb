#!/usr/bin/env python
"""Write two small synthetic MOS corpora in the exact folder layouts of BVCC and SOMOS.

    python egs/demo/local/make_corpus.py --out_dir D [--seed 0] [--bvcc_systems 12]
        [--bvcc_utts_per_system 20] [--somos_systems 8] [--somos_utts_per_system 12]

The audio is speech-like (a harmonic source with intonation and jitter, shaped by per-syllable formant
resonators, with fricatives and pauses), degraded per system; each system's true quality falls with the
severity of its degradations, and listener ratings are drawn around it. This lets the real data
preparation, training and evaluation code run end to end without the real corpora.

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

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import soundfile as sf
from scipy import ndimage, signal

BVCC_SR = 16000
SOMOS_SR = 22050
PEAK = 0.5  # clean speech is normalised to this peak, leaving headroom for additive degradations

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

# Vowel formants (F1, F2, F3) in Hz of an adult male voice; scaled up for higher voices.
VOWELS = np.array(
    [
        (730, 1090, 2440),  # a
        (530, 1840, 2480),  # e
        (270, 2290, 3010),  # i
        (570, 840, 2410),  # o
        (300, 870, 2240),  # u
        (660, 1720, 2410),  # ae
        (500, 1500, 2500),  # schwa
    ],
    dtype=float,
)
FORMANT_BANDWIDTHS = np.array([80.0, 110.0, 160.0])


# --------------------------------------------------------------------------------------------------
# Speech synthesis
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Syllable:
    """One syllable: an optional fricative onset followed by a voiced nucleus (sample indices)."""

    start: int
    voiced_start: int
    stop: int
    formants: tuple[float, float, float]
    loudness: float


def plan_syllables(rng: np.random.Generator, n_samples: int, sr: int) -> list[Syllable]:
    """Lay out syllables grouped into words and phrases, with gaps between them, filling ``n_samples``."""
    ms = sr / 1000.0
    t = int(rng.uniform(50, 200) * ms)  # leading silence
    end = n_samples - int(rng.uniform(50, 200) * ms)  # trailing silence
    formant_scale = rng.uniform(1.0, 1.2)
    syllables: list[Syllable] = []
    words_left_in_phrase = int(rng.integers(2, 5))
    while True:
        for _ in range(int(rng.integers(1, 4))):  # syllables of one word
            length = int(rng.uniform(80, 300) * ms)
            if t + length > end:
                return syllables or [_syllable(rng, t, min(end, t + int(150 * ms)), formant_scale, ms)]
            syllables.append(_syllable(rng, t, t + length, formant_scale, ms))
            t += length
        words_left_in_phrase -= 1
        if words_left_in_phrase == 0:  # phrase break: a clear pause
            t += int(rng.uniform(200, 400) * ms)
            words_left_in_phrase = int(rng.integers(2, 5))
        else:  # word boundary: a short gap, sometimes none (connected speech)
            t += int(rng.uniform(0, 120) * ms)


def _syllable(rng: np.random.Generator, start: int, stop: int, formant_scale: float, ms: float) -> Syllable:
    """Draw one syllable's vowel, loudness and (in about a third of them) a fricative onset."""
    fricative = int(rng.uniform(40, 120) * ms) if rng.random() < 0.3 else 0
    fricative = min(fricative, (stop - start) // 2)
    vowel = VOWELS[rng.integers(len(VOWELS))] * formant_scale * rng.uniform(0.95, 1.05, size=3)
    return Syllable(start, start + fricative, stop, tuple(float(f) for f in vowel), float(rng.uniform(0.5, 1.0)))


def pitch_contour(rng: np.random.Generator, syllables: Sequence[Syllable], n_samples: int, sr: int) -> np.ndarray:
    """Per-sample f0 in Hz: base pitch, declination, syllable accents and cycle-to-cycle jitter."""
    base = rng.uniform(90, 260)
    centres = np.array([(s.voiced_start + s.stop) / 2 for s in syllables])
    # Accents at syllable centres, joined linearly; declination lowers pitch over the utterance.
    accents = base * (1 + 0.12 * rng.standard_normal(len(centres))) * (1.1 - 0.2 * centres / n_samples)
    f0 = np.interp(np.arange(n_samples), centres, np.clip(accents, 0.7 * base, 1.4 * base))
    block = max(1, int(0.005 * sr))  # jitter changes about once per 5 ms (roughly per pitch period)
    jitter = 1 + 0.01 * rng.standard_normal(n_samples // block + 1)
    return f0 * np.repeat(jitter, block)[:n_samples]


def harmonic_source(phase: np.ndarray, n_harmonics: int) -> np.ndarray:
    """Sum of ``sin(k * phase) / k`` for k = 1..n_harmonics (a -6 dB/octave glottal-like spectrum).

    Uses the Chebyshev recurrence sin((k+1)x) = 2 cos(x) sin(kx) - sin((k-1)x), which costs one
    multiply-add per harmonic instead of one ``np.sin``.
    """
    two_cos = 2 * np.cos(phase)
    previous, current = np.zeros_like(phase), np.sin(phase)
    out = current.copy()
    for k in range(2, n_harmonics + 1):
        previous, current = current, two_cos * current - previous
        out += current / k
    return out


def formant_filter(freqs: Sequence[float], sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Cascade of 2-pole resonators with unity gain at DC, as ``(b, a)``."""
    b, a = np.ones(1), np.ones(1)
    for freq, bandwidth in zip(freqs, FORMANT_BANDWIDTHS):
        r = math.exp(-math.pi * bandwidth / sr)
        den = np.array([1.0, -2 * r * math.cos(2 * math.pi * min(freq, 0.45 * sr) / sr), r * r])
        a = np.convolve(a, den)
        b = b * den.sum()
    return b, a


def synthesize_speech(rng: np.random.Generator, sr: int, duration_s: float) -> np.ndarray:
    """A speech-like float64 waveform with peak ``PEAK``."""
    n = int(round(duration_s * sr))
    syllables = plan_syllables(rng, n, sr)
    f0 = pitch_contour(rng, syllables, n, sr)
    phase = np.mod(2 * np.pi * np.cumsum(f0) / sr, 2 * np.pi)
    n_harmonics = max(1, int(5000 / f0.max()))  # keep the source band-limited well below Nyquist
    voiced = harmonic_source(phase, n_harmonics) + 0.05 * rng.standard_normal(n)  # + breath noise

    envelope = np.zeros(n)
    fricatives = np.zeros(n)
    for syl in syllables:
        length = syl.stop - syl.voiced_start
        envelope[syl.voiced_start : syl.stop] = syl.loudness * np.sin(np.pi * (np.arange(length) + 0.5) / length) ** 0.6
        if syl.voiced_start > syl.start:
            fricatives[syl.start : syl.voiced_start] = fricative_noise(rng, syl.voiced_start - syl.start, sr)

    # Vocal-tract filtering with per-syllable formants; the filter state carries across syllables so
    # the transitions are continuous rather than clicks.
    speech = np.zeros(n)
    source = voiced * envelope
    state = np.zeros(2 * len(FORMANT_BANDWIDTHS))
    bounds = [s.start for s in syllables[1:]] + [n]
    previous = 0
    for syl, stop in zip(syllables, bounds):
        b, a = formant_filter(syl.formants, sr)
        speech[previous:stop], state = signal.lfilter(b, a, source[previous:stop], zi=state)
        previous = stop
    speech /= np.abs(speech).max() + 1e-12
    speech += 0.3 * fricatives
    speech *= PEAK / (np.abs(speech).max() + 1e-12)
    return speech + 1e-4 * rng.standard_normal(n)  # a faint noise floor, as in any recording


def fricative_noise(rng: np.random.Generator, length: int, sr: int) -> np.ndarray:
    """A band-pass noise burst (2.5-6 kHz) with a smooth envelope, peak about 1."""
    centre = min(rng.uniform(2500, 6000), 0.4 * sr)
    b, a = signal.butter(2, [0.6 * centre, min(1.4 * centre, 0.48 * sr)], btype="bandpass", fs=sr)
    burst = signal.lfilter(b, a, rng.standard_normal(length)) * np.hanning(length)
    return burst / (np.abs(burst).max() + 1e-12)


# --------------------------------------------------------------------------------------------------
# Degradations: each maps a severity in (0, 1] to concrete parameters, shared by apply and label
# --------------------------------------------------------------------------------------------------
# The small functions below are those severity -> parameter maps; the ranges follow the brief (SNR
# 30..0 dB, low-pass 4..2 kHz, 8..4 bits, ...). Every apply function takes (x, sr, rng, severity) so
# that they can be chained uniformly, even where it needs no randomness.


def _snr_db(severity: float) -> float:
    return 30.0 - 30.0 * severity


def _clip_level(severity: float) -> float:
    return 1.0 - 0.9 * severity


def _cutoff_hz(severity: float) -> float:
    return 4000.0 - 2000.0 * severity


def _bits(severity: float) -> int:
    return int(round(8 - 4 * severity))


def _loss_fraction(severity: float) -> float:
    return 0.03 + 0.22 * severity


def _rt60_s(severity: float) -> float:
    return 0.2 + 1.0 * severity


def _robot_mix(severity: float) -> float:
    return 0.5 + 0.5 * severity


def _tremolo_depth(severity: float) -> float:
    return 0.3 + 0.65 * severity


def _warp_amount(severity: float) -> float:
    return 0.04 + 0.16 * severity


def _smear_bins(severity: float) -> int:
    return 3 + int(round(25 * severity))


def add_noise(x: np.ndarray, sr: int, rng: np.random.Generator, severity: float, pink: bool = False) -> np.ndarray:
    """Additive white (or pink) noise at an SNR that falls from 30 dB to 0 dB with severity."""
    noise = rng.standard_normal(len(x))
    if pink:  # 1/f power: shape white noise by 1/sqrt(f) in the frequency domain
        spectrum = np.fft.rfft(noise)
        spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
        spectrum[0] = 0
        noise = np.fft.irfft(spectrum, n=len(x))
    gain = math.sqrt(np.mean(x**2) / (np.mean(noise**2) * 10 ** (_snr_db(severity) / 10)))
    return x + gain * noise


def clip_hard(x: np.ndarray, sr: int, rng: np.random.Generator, severity: float) -> np.ndarray:
    """Overdrive: clip at a fraction of the peak, then restore the peak level."""
    level = _clip_level(severity) * np.abs(x).max()
    return np.clip(x, -level, level) * (PEAK / max(level, 1e-12))


def low_pass(x: np.ndarray, sr: int, rng: np.random.Generator, severity: float) -> np.ndarray:
    """Band limiting with an 8th-order Butterworth low-pass at 2-4 kHz."""
    return signal.sosfilt(signal.butter(8, _cutoff_hz(severity), fs=sr, output="sos"), x)


def quantize(x: np.ndarray, sr: int, rng: np.random.Generator, severity: float) -> np.ndarray:
    """Coarse uniform quantisation of the [-1, 1] range to 4-8 bits."""
    steps = 2 ** (_bits(severity) - 1)
    return np.round(x * steps) / steps


def packet_loss(x: np.ndarray, sr: int, rng: np.random.Generator, severity: float) -> np.ndarray:
    """Zero random 20-60 ms chunks covering about 3-25 % of the signal."""
    lengths = (
        rng.uniform(0.020, 0.060, size=max(1, int(_loss_fraction(severity) * len(x) / (0.04 * sr)))) * sr
    ).astype(int)
    starts = rng.integers(0, max(1, len(x) - lengths.max()), size=len(lengths))
    edges = np.zeros(len(x) + 1)  # +1 at each gap start, -1 at each end; cumsum > 0 marks lost samples
    np.add.at(edges, starts, 1)
    np.add.at(edges, starts + lengths, -1)
    return np.where(np.cumsum(edges)[:-1] > 0, 0.0, x)


def reverberate(x: np.ndarray, sr: int, rng: np.random.Generator, severity: float) -> np.ndarray:
    """Convolution with an exponentially decaying noise tail; RT60 and wet level grow with severity."""
    rt60 = _rt60_s(severity)
    t = np.arange(int(rt60 * sr)) / sr
    tail = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)  # -60 dB at t = rt60
    direct_to_reverb_db = 6.0 - 12.0 * severity
    tail *= math.sqrt(10 ** (-direct_to_reverb_db / 10) / np.sum(tail**2))
    tail[0] = 1.0
    y = signal.fftconvolve(x, tail)[: len(x)]
    return y * (PEAK / (np.abs(y).max() + 1e-12))


def _stft_params(sr: int) -> tuple[int, int]:
    """Frame length of about 32 ms (a power of two) and the matching 75 % overlap."""
    nperseg = 2 ** int(math.ceil(math.log2(0.032 * sr)))
    return nperseg, 3 * nperseg // 4


def robotize(x: np.ndarray, sr: int, rng: np.random.Generator, severity: float) -> np.ndarray:
    """Robotic vocoder: every STFT frame gets the same (linear) phase, so the output buzzes at the
    frame rate (100-140 Hz) whatever the original pitch; mixed with the original by severity."""
    nperseg, _ = _stft_params(sr)
    hop = int(sr / rng.uniform(100, 140))
    _, _, spec = signal.stft(x, fs=sr, nperseg=nperseg, noverlap=nperseg - hop)
    # Phase pi*k puts each frame's pulse at the frame centre, where the synthesis window is largest.
    signs = np.where(np.arange(spec.shape[0]) % 2 == 0, 1.0, -1.0)[:, None]
    _, robot = signal.istft(np.abs(spec) * signs, fs=sr, nperseg=nperseg, noverlap=nperseg - hop)
    robot = _fit_length(robot, len(x))
    robot *= np.abs(x).max() / (np.abs(robot).max() + 1e-12)
    mix = _robot_mix(severity)
    return (1 - mix) * x + mix * robot


def tremolo(x: np.ndarray, sr: int, rng: np.random.Generator, severity: float) -> np.ndarray:
    """Amplitude modulation at 3-9 Hz with a depth that grows with severity."""
    t = np.arange(len(x)) / sr
    depth = _tremolo_depth(severity)
    rate = rng.uniform(3, 9)
    return x * (1 - depth * 0.5 * (1 + np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))))


def time_warp(x: np.ndarray, sr: int, rng: np.random.Generator, severity: float) -> np.ndarray:
    """Wow and flutter: the playback speed wanders smoothly by a few to 20 %, bending pitch and timing."""
    knots = np.arange(0, len(x) + int(0.2 * sr), int(0.2 * sr))
    speed = 1 + _warp_amount(severity) * np.interp(np.arange(len(x)), knots, rng.standard_normal(len(knots)))
    position = np.cumsum(np.clip(speed, 0.5, 1.5)) - 1
    return np.interp(position[position <= len(x) - 1], np.arange(len(x)), x)


def smear(x: np.ndarray, sr: int, rng: np.random.Generator, severity: float) -> np.ndarray:
    """Spectral smearing: the STFT magnitude is averaged across frequency (and a little across time),
    blurring formants and harmonics; the phase is kept."""
    nperseg, noverlap = _stft_params(sr)
    _, _, spec = signal.stft(x, fs=sr, nperseg=nperseg, noverlap=noverlap)
    magnitude = ndimage.uniform_filter1d(np.abs(spec), size=_smear_bins(severity), axis=0, mode="nearest")
    magnitude = ndimage.uniform_filter1d(magnitude, size=1 + int(round(3 * severity)), axis=1, mode="nearest")
    _, y = signal.istft(magnitude * np.exp(1j * np.angle(spec)), fs=sr, nperseg=nperseg, noverlap=noverlap)
    return _fit_length(y, len(x))


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad ``y`` to ``n`` samples (the inverse STFT may pad the end)."""
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


@dataclass(frozen=True)
class Degradation:
    """A degradation kind: how to apply it at a severity, and how to name it in the record."""

    apply: Callable[[np.ndarray, int, np.random.Generator, float], np.ndarray]
    label: Callable[[float], str]


DEGRADATIONS = MappingProxyType(
    {
        "noise": Degradation(add_noise, lambda s: f"noise_snr{_snr_db(s):.0f}"),
        "pinknoise": Degradation(
            lambda x, sr, rng, s: add_noise(x, sr, rng, s, pink=True), lambda s: f"pinknoise_snr{_snr_db(s):.0f}"
        ),
        "clipping": Degradation(clip_hard, lambda s: f"clipping_{_clip_level(s):.2f}"),
        "lowpass": Degradation(low_pass, lambda s: f"lowpass_{_cutoff_hz(s):.0f}hz"),
        "quantize": Degradation(quantize, lambda s: f"quantize_{_bits(s)}bit"),
        "packetloss": Degradation(packet_loss, lambda s: f"packetloss_{100 * _loss_fraction(s):.0f}pct"),
        "reverb": Degradation(reverberate, lambda s: f"reverb_rt{1000 * _rt60_s(s):.0f}ms"),
        # Not used in BVCC: these make SOMOS a zero-shot test.
        "robotic": Degradation(robotize, lambda s: f"robotic_mix{_robot_mix(s):.2f}"),
        "tremolo": Degradation(tremolo, lambda s: f"tremolo_depth{_tremolo_depth(s):.2f}"),
        "timewarp": Degradation(time_warp, lambda s: f"timewarp_{100 * _warp_amount(s):.0f}pct"),
        "smearing": Degradation(smear, lambda s: f"smearing_{_smear_bins(s)}bins"),
    }
)
BVCC_KINDS = ("noise", "pinknoise", "clipping", "lowpass", "quantize", "packetloss", "reverb")
SOMOS_KINDS = ("robotic", "tremolo", "timewarp", "smearing", "noise", "reverb", "lowpass", "quantize")


def degrade(x: np.ndarray, sr: int, rng: np.random.Generator, severities: dict[str, float]) -> np.ndarray:
    """Apply each degradation in turn, then scale down (never clip) if the peak would overflow PCM."""
    for kind, severity in severities.items():
        x = DEGRADATIONS[kind].apply(x, sr, rng, severity)
    peak = np.abs(x).max()
    return x * (0.99 / peak) if peak > 0.99 else x


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
) -> tuple[list[System], list[Utterance], list[str]]:
    """Systems, utterances (with splits and ratings) and listener descriptions of the BVCC-like corpus."""
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
            severities = utterance_severities(rng, system)
            quality = utterance_quality(rng, system, severities)
            ratings, raters = rate(rng, quality, biases, BVCC_RATINGS_PER_UTT)
            utterances.append(
                Utterance(
                    f"{system.name}-{next(utt_ids)}.wav",
                    system,
                    str(split),
                    int(rng.integers(2**63)),
                    float(rng.uniform(1.0, 4.0)),
                    severities,
                    ratings,
                    raters,
                    BVCC_SR,
                )
            )
    _make_one_silent(rng, utterances, biases)
    return systems, utterances, listeners


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
    wav_dir, sets = root / "DATA" / "wav", root / "DATA" / "sets"
    wav_dir.mkdir(parents=True)
    sets.mkdir(parents=True)
    for utt in utterances:
        write_audio(wav_dir / utt.wav, utt)
    for split in ("train", "val", "test"):
        rows = sorted(f"{u.wav},{format_score(u.score)}" for u in utterances if u.split == split)
        (sets / f"{split}_mos_list.txt").write_text("".join(r + "\n" for r in rows), encoding="utf-8")
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
            severities = utterance_severities(rng, system)
            quality = utterance_quality(rng, system, severities)
            ratings, raters = rate(rng, quality, biases, int(rng.integers(*SOMOS_RATINGS_RANGE)))
            utterances.append(
                Utterance(
                    f"{domain}_{year}_{sentence:04d}_{system.name}.wav",
                    system,
                    "",
                    int(rng.integers(2**63)),
                    float(rng.uniform(1.0, 4.0)),
                    severities,
                    ratings,
                    raters,
                    SOMOS_SR,
                )
            )

    # Split over the whole corpus ~60/20/20 (not per system), and make a few files stereo.
    n_train, n_valid, n_test = split_sizes(len(utterances), (0.2, 0.2))
    for utt, split in zip(utterances, rng.permutation(["train"] * n_train + ["valid"] * n_valid + ["test"] * n_test)):
        utt.split = str(split)
    for i in rng.choice(len(utterances), size=max(1, round(0.05 * len(utterances))), replace=False):
        utterances[i].channels = 2
    return systems, utterances


def write_somos(root: Path, utterances: list[Utterance]) -> None:
    """Audio and mos lists under ``root`` (= D/somos)."""
    audio_dir, lists = root / "audios", root / "training_files" / "split1" / "clean"
    audio_dir.mkdir(parents=True)
    lists.mkdir(parents=True)
    for utt in utterances:
        write_audio(audio_dir / utt.wav, utt)
    for split in ("train", "valid", "test"):
        rows = sorted(f"{u.wav},{format_score(u.score)}" for u in utterances if u.split == split)
        (lists / f"{split}_mos_list.txt").write_text(
            "".join(r + "\n" for r in ["utteranceId,mean"] + rows), encoding="utf-8"
        )


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


def _prepare_out_dir(out: Path) -> None:
    """Start from scratch, but only ever delete what an earlier run of this script wrote."""
    ours = [out / "bvcc", out / "somos", out / "record.json"]
    if (out / "record.json").is_file():
        for path in ours:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    for path in ours[:2]:
        if path.exists() and any(path.iterdir()):
            raise FileExistsError(f"{path} exists and was not written by this script; choose another --out_dir")
    out.mkdir(parents=True, exist_ok=True)


def _utterance_record(utt: Utterance) -> dict:
    """One utterance's entry in record.json."""
    if utt.system.corpus == "bvcc":
        return {
            "wav": utt.wav,
            "system": utt.system.name,
            "score": utt.score,
            "ratings": utt.ratings,
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
        raise ValueError("need at least 2 BVCC systems (one is unseen) and 1 SOMOS system")
    if bvcc_utts_per_system < 3 or somos_utts_per_system < 1 or somos_systems * somos_utts_per_system < 3:
        raise ValueError("need at least 3 BVCC utterances per system and 3 SOMOS utterances in all")
    out = Path(out_dir)
    _prepare_out_dir(out)
    rng = np.random.default_rng(seed)
    bvcc_sys, bvcc_utts, listeners = plan_bvcc(rng, bvcc_systems, bvcc_utts_per_system)
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
    }
    (out / "record.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", required=True, help="folder to write bvcc/, somos/ and record.json into")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bvcc_systems", type=int, default=12, help="including the one unseen system")
    parser.add_argument("--bvcc_utts_per_system", type=int, default=20)
    parser.add_argument("--somos_systems", type=int, default=8)
    parser.add_argument("--somos_utts_per_system", type=int, default=12)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        record = make_corpus(
            args.out_dir,
            args.seed,
            bvcc_systems=args.bvcc_systems,
            bvcc_utts_per_system=args.bvcc_utts_per_system,
            somos_systems=args.somos_systems,
            somos_utts_per_system=args.somos_utts_per_system,
        )
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for corpus in ("bvcc", "somos"):
        sizes = ", ".join(f"{split} {len(utts)}" for split, utts in record[corpus].items())
        print(f"{os.path.join(args.out_dir, corpus)}: {sizes}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
