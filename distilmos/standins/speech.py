"""Speech-like audio without a speech corpus: the voice every stand-in corpus speaks with.

A harmonic source with intonation and jitter, shaped by per-syllable formant resonators, with fricatives
and pauses (:func:`synthesize_speech`). Seeded by the caller's generator: the same generator state gives the
same samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import signal

PEAK = 0.5  # clean speech is normalised to this peak, leaving headroom for additive degradations

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
