import numpy as np
import pytest
import soundfile as sf
import torch

from distilmos.data.audio import SAMPLE_RATE, AudioError, load_audio, probe_audio, to_mono_16k


def _write(path, data, sr, subtype="PCM_16"):
    sf.write(str(path), data, sr, subtype=subtype)
    return str(path)


def test_mono_16k_float32_roundtrip(tmp_path):
    data = (0.3 * np.sin(np.arange(16000) / 10)).astype("float32")
    wav = load_audio(_write(tmp_path / "a.wav", data, 16000, "FLOAT"))
    assert wav.dtype == torch.float32 and wav.dim() == 1
    assert torch.allclose(wav, torch.from_numpy(data))


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_resampled_to_16k(tmp_path, sr):
    seconds = 1.5
    t = np.arange(int(sr * seconds)) / sr
    wav = load_audio(_write(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 440 * t), sr))
    assert abs(len(wav) - int(SAMPLE_RATE * seconds)) <= 1
    # the 440 Hz tone stays at 440 Hz
    spectrum = np.abs(np.fft.rfft(wav.numpy()))
    assert abs(np.argmax(spectrum) / seconds - 440) < 2


def test_stereo_is_downmixed(tmp_path):
    left = np.full(1600, 0.5, dtype="float32")
    right = np.full(1600, -0.25, dtype="float32")
    wav = load_audio(_write(tmp_path / "s.wav", np.stack([left, right], 1), 16000, "FLOAT"))
    assert wav.shape == (1600,) and torch.allclose(wav, torch.full((1600,), 0.125))


def test_channels_first_tensor_is_downmixed():
    wav = to_mono_16k(torch.stack([torch.ones(800), torch.zeros(800)]), 16000)
    assert wav.shape == (800,) and torch.allclose(wav, torch.full((800,), 0.5))


def test_bad_files_name_the_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    noheader = tmp_path / "zero_frames.wav"
    _write(noheader, np.zeros(0, dtype="float32"), 16000)
    full = _write(tmp_path / "full.wav", np.random.default_rng(0).normal(0, 0.1, 16000), 16000)
    trunc = tmp_path / "trunc.wav"
    trunc.write_bytes(open(full, "rb").read()[:16000])
    nan = _write(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.1], dtype="float32"), 16000, "FLOAT")
    for path, words in [
        (empty, "cannot read"),
        (noheader, "empty"),
        (trunc, "truncated"),
        (nan, "NaN"),
        (tmp_path / "missing.wav", "no such"),
    ]:
        with pytest.raises(AudioError, match=words) as info:
            load_audio(path)
        assert str(path) in str(info.value)
    for path in (empty, noheader, trunc):
        with pytest.raises(AudioError, match=str(path)):
            probe_audio(path)


def test_silence_is_valid(tmp_path):
    wav = load_audio(_write(tmp_path / "silent.wav", np.zeros(8000, dtype="float32"), 16000))
    assert wav.abs().sum() == 0 and len(wav) == 8000
