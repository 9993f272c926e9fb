"""The stand-in systems' degradations: each maps a severity in (0, 1] to concrete parameters, shared by
apply and label.

:data:`DEGRADATIONS` names every kind; :data:`BVCC_KINDS` and :data:`SOMOS_KINDS` are the kinds each stand-in
corpus draws from (SOMOS's partly unseen in BVCC, so that zero-shot evaluation means something); :func:`degrade`
chains several at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from scipy import ndimage, signal

from .speech import PEAK

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
