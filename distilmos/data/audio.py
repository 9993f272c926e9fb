"""Audio loading shared by every part of the toolkit: one way to turn a file into a 16 kHz mono waveform."""

from __future__ import annotations

import os
import re

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from distilmos.errors import ToolkitError

SAMPLE_RATE = 16000

PathLike = str | os.PathLike


class AudioError(ToolkitError, ValueError):
    """A file that cannot be used as speech input; the message names the file."""


def to_mono_16k(wav: np.ndarray | torch.Tensor, sr: int, source: str = "<array>") -> torch.Tensor:
    """Downmix ``[samples]`` or ``[samples, channels]`` audio to mono and resample it to 16 kHz (float32).

    ``source`` names the input in error messages.
    """
    wav = torch.as_tensor(np.asarray(wav) if not isinstance(wav, torch.Tensor) else wav, dtype=torch.float32)
    if wav.numel() == 0:
        raise AudioError(f"{source}: audio is empty (0 samples)")
    if wav.dim() == 2:
        # soundfile gives [samples, channels]; a [channels, samples] tensor (torchaudio's order) is also
        # accepted when it is clearly the short side that holds the channels.
        wav = wav.mean(dim=1) if wav.shape[1] <= wav.shape[0] else wav.mean(dim=0)
    elif wav.dim() != 1:
        raise AudioError(f"{source}: expected 1-D or 2-D audio, got shape {tuple(wav.shape)}")
    if not torch.isfinite(wav).all():
        raise AudioError(f"{source}: audio holds NaN or infinite samples")
    if sr <= 0:
        raise AudioError(f"{source}: invalid sample rate {sr}")
    if sr != SAMPLE_RATE:
        wav = AF.resample(wav, orig_freq=int(sr), new_freq=SAMPLE_RATE)
    return wav.contiguous()


def load_audio(path: PathLike) -> torch.Tensor:
    """Read an audio file as a float32 mono 16 kHz 1-D tensor.

    Raises :class:`AudioError` naming the file when it is missing, unreadable, empty or holds non-finite
    samples.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioError(f"{path}: no such audio file")
    try:
        with sf.SoundFile(path) as f:
            sr = f.samplerate
            wav = f.read(dtype="float32", always_2d=True)
            log = f.extra_info
    except Exception as exc:  # libsndfile raises its own error types; all mean "cannot read"
        raise AudioError(f"{path}: cannot read audio ({exc})") from exc
    _check_not_truncated(path, log)
    return to_mono_16k(wav, sr, source=path)


_TRUNCATED = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _check_not_truncated(path: str, sndfile_log: str) -> None:
    """Refuse a file whose data chunk is shorter than its header says.

    libsndfile silently reads what is there and only notes the shortfall in its log, as
    ``data : 32000 (should be 15978)``; a cut-off download or copy must not pass as a short utterance.
    """
    match = _TRUNCATED.search(sndfile_log)
    if match and int(match.group(2)) < int(match.group(1)):
        raise AudioError(
            f"{path}: file is truncated (header announces {match.group(1)} data bytes, only {match.group(2)} present)"
        )


def samples_at_16k(frames: int, sample_rate: int) -> int:
    """Length after :func:`to_mono_16k` of ``frames`` samples at ``sample_rate`` (torchaudio's resampler
    returns ``ceil(frames * 16000 / sample_rate)`` samples)."""
    return -(-frames * SAMPLE_RATE // sample_rate)


def probe_audio(path: PathLike) -> sf._SoundFileInfo:
    """Open only the header of an audio file; raise :class:`AudioError` if it is missing, unreadable,
    empty or truncated. Cheap enough to run on a whole corpus before a long job starts."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioError(f"{path}: no such audio file")
    try:
        info = sf.info(path, verbose=True)
    except Exception as exc:
        raise AudioError(f"{path}: cannot read audio ({exc})") from exc
    if info.frames == 0:
        raise AudioError(f"{path}: audio is empty (0 samples)")
    _check_not_truncated(path, info.extra_info)
    return info
