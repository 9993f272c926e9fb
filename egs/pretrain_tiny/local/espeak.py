"""Offline text-to-speech with eSpeak NG, through the shared library that the ``espeakng-loader`` package ships.

    synth = Espeak()
    wav = synth.say("The old clock rang twice.", voice="en-us+f3", rate=150, pitch=60)  # float32, 16 kHz

Why this engine: it is the only speech synthesiser that installs from the package registry as a plain wheel
(library and voice data inside, about 20 MB) and runs with no model download; its formant synthesis gives
real phonetic content, dozens of voice variants and any speaking rate, which is what a pretraining pool needs.
The library is driven through ``ctypes`` in synchronous mode: samples arrive through a callback.
"""

from __future__ import annotations

import ctypes

import numpy as np
from scipy import signal

from distilmos.data.audio import SAMPLE_RATE

OUTPUT_RATE = SAMPLE_RATE  # what the pool is written at: the toolkit's rate
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit() when the data is missing
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4}
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakUnavailable(RuntimeError):
    """eSpeak NG cannot be loaded here; the message says how to get it."""


class Espeak:
    """One eSpeak NG engine. The library keeps process-wide state, so keep one instance per process."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise EspeakUnavailable("eSpeak NG is not installed: pip install espeakng-loader") from exc
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self.sample_rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), _INITIALIZE_DONT_EXIT
        )
        if self.sample_rate <= 0:
            raise EspeakUnavailable(f"eSpeak NG failed to initialise (status {self.sample_rate})")
        self._chunks: list[np.ndarray] = []
        # Kept as an attribute: ctypes must not garbage-collect a callback the library still holds.
        self._callback = _CALLBACK(self._collect)
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, n_samples: int, events) -> int:
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        return 0  # 0 = go on synthesising

    def say(
        self, text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50, pitch_range: int = 50
    ) -> np.ndarray:
        """``text`` spoken by ``voice`` (e.g. ``en-us+f3``) at ``rate`` words per minute; float32 at 16 kHz."""
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice {voice!r}")
        for name, value in (("rate", rate), ("pitch", pitch), ("range", pitch_range)):
            self._lib.espeak_SetParameter(_PARAM[name], int(value), 0)
        self._chunks = []
        data = text.encode("utf-8")
        status = self._lib.espeak_Synth(
            ctypes.c_char_p(data), len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        self._lib.espeak_Synchronize()
        if status != 0 or not self._chunks:
            raise RuntimeError(f"eSpeak NG produced no audio for {text!r} (status {status})")
        wav = np.concatenate(self._chunks).astype(np.float32) / 32768.0
        # 22050 Hz -> 16 kHz with a polyphase filter (22050 * 320 / 441 = 16000)
        g = np.gcd(OUTPUT_RATE, self.sample_rate)
        return signal.resample_poly(wav, OUTPUT_RATE // g, self.sample_rate // g).astype(np.float32)
