"""Clean unlabelled speech -> degraded speech: a seeded, configurable pipeline whose every clip is recorded.

    python -m distilmos.compress.degrade --config egs/compress/conf/degrade.yaml \\
        --inputs CLEAN_DIR_OR_LIST [...] --out_dir pool/ [--seed 0] [--copies 2]

The YAML names a chain of degradations, applied in the order written, each with a probability ``p`` and
parameter ranges (a ``[low, high]`` pair is drawn uniformly, a list of choices picked from):

- ``noise``: additive noise at an SNR (dB) drawn from ``snr_db``; from audio files under ``noise_dir``
  (a random excerpt, looped when short), or, when none is given, generated coloured noise whose power
  spectrum falls as ``1/f^exponent`` (0 white, 1 pink, 2 brown);
- ``reverb``: a shoebox room's impulse response (image source method, pyroomacoustics) at a reverberation
  time drawn from ``rt60_s``;
- ``band_limit``: low-pass and/or high-pass filtering (pedalboard);
- ``resample``: down to a lower rate and back (pedalboard), which removes the band above its Nyquist;
- ``codec``: a lossy codec round trip: MP3 at a VBR quality, or GSM full rate (pedalboard);
- ``packet_loss``: packets of ``packet_ms`` dropped (zeroed) at a loss rate, in bursts;
- ``clipping``: hard clipping at a threshold (dBFS, relative to the clip's peak);
- ``gain``: a level change (dB).

Libraries: pedalboard (codecs, filters, resampling: Spotify's maintained wrappers of JUCE and LAME/GSM,
native speed, no ffmpeg needed) and pyroomacoustics (room impulse responses). A clip's random numbers come
from ``(seed, sample_id)`` alone, so the same seed and inputs give identical files, whatever the order or
the subset processed.

Written under ``out_dir``: ``wav/<sample_id>.wav`` (16 kHz mono PCM16), ``pool.csv``
(``sample_id,system_id,wav_path,source``), ``degradations.jsonl`` (one record per clip: source, seed and
every degradation applied with its drawn parameters) and ``skipped.txt`` (clips left out: unreadable,
non-finite, too short or silent, each with its reason). A bad clip is reported and skipped, never fatal.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import soundfile as sf
from scipy import signal
from tqdm import tqdm

from distilmos.compress.cli import step_parser
from distilmos.compress.config import load_settings
from distilmos.data.audio import SAMPLE_RATE, AudioError, load_audio
from distilmos.errors import ConfigError, ToolkitError, reports_errors
from distilmos.fileio import atomic_write

Params = dict[str, object]
Degradation = Callable[[np.ndarray, np.random.Generator, dict, "Context"], tuple[np.ndarray, Params]]

DEFAULTS = {"copies": 1, "min_seconds": 0.5, "silence_dbfs": -60.0, "chain": {}}


class Context:
    """What degradations share for one run: the noise files (read once, on first use)."""

    def __init__(self, noise_dir: str | None = None):
        self.noise_dir = noise_dir
        self._noise: list[tuple[str, np.ndarray]] | None = None

    def noise_files(self) -> list[tuple[str, np.ndarray]]:
        if self._noise is None:
            from distilmos.predictor.inputs import folder_audio

            self._noise = []
            for path in folder_audio(self.noise_dir) if self.noise_dir else []:
                try:
                    self._noise.append((path, load_audio(path).numpy()))
                except AudioError as exc:
                    print(f"warning: noise file skipped: {exc}", file=sys.stderr)
            if self.noise_dir and not self._noise:
                raise ConfigError(f"noise_dir {self.noise_dir}: no readable audio files")
        return self._noise


def draw(rng: np.random.Generator, spec, key: str):
    """A value from a config entry: ``[low, high]`` numbers -> uniform, any other list -> a choice, a
    scalar -> itself."""
    if isinstance(spec, (list, tuple)):
        if len(spec) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec):
            return float(rng.uniform(float(spec[0]), float(spec[1])))
        if not spec:
            raise ConfigError(f"degradation setting {key!r}: empty list")
        return spec[int(rng.integers(len(spec)))]
    return spec


def rms_db(x: np.ndarray) -> float:
    """Root-mean-square level in dBFS (-inf for digital silence)."""
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Gaussian noise whose power spectrum falls as ``1/f^exponent``, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2), n)
    return noise / max(np.sqrt(np.mean(noise**2)), 1e-12)


def add_noise(x, rng, cfg, ctx):
    snr = draw(rng, cfg.get("snr_db", [0, 30]), "noise.snr_db")
    files = ctx.noise_files()
    if files:
        path, noise = files[int(rng.integers(len(files)))]
        noise = np.tile(noise, math.ceil(len(x) / max(len(noise), 1)) + 1)
        start = int(rng.integers(len(noise) - len(x) + 1))
        noise = noise[start : start + len(x)]
        noise = noise / max(np.sqrt(np.mean(noise**2)), 1e-12)
        params = {"snr_db": snr, "noise_file": path, "offset": start}
    else:
        exponent = draw(rng, cfg.get("colour_exponent", [0.0, 2.0]), "noise.colour_exponent")
        noise = coloured_noise(rng, len(x), exponent)
        params = {"snr_db": snr, "colour_exponent": exponent}
    speech_rms = np.sqrt(np.mean(x**2))
    return x + noise * speech_rms * 10 ** (-snr / 20), params


def reverb(x, rng, cfg, ctx):
    import pyroomacoustics as pra

    rt60 = draw(rng, cfg.get("rt60_s", [0.2, 0.8]), "reverb.rt60_s")
    ranges = cfg.get("room_m", [[3, 8], [3, 6], [2.5, 3.5]])
    room = [draw(rng, r, "reverb.room_m") for r in ranges]
    absorption, max_order = pra.inverse_sabine(rt60, room)
    shoebox = pra.ShoeBox(
        room,
        fs=SAMPLE_RATE,
        materials=pra.Material(absorption),
        max_order=min(max_order, int(cfg.get("max_order", 30))),
    )
    source = [float(rng.uniform(0.5, d - 0.5)) for d in room]
    mic = [float(rng.uniform(0.5, d - 0.5)) for d in room]
    shoebox.add_source(source)
    shoebox.add_microphone(mic)
    shoebox.compute_rir()
    rir = np.asarray(shoebox.rir[0][0], dtype=np.float64)
    rir = rir / max(np.abs(rir).max(), 1e-12)
    wet = signal.fftconvolve(x, rir)[int(np.argmax(np.abs(rir))) :][: len(x)]  # aligned to the direct path
    wet = np.pad(wet, (0, len(x) - len(wet)))
    return wet, {"rt60_s": rt60, "room_m": room, "source_m": source, "mic_m": mic}


def band_limit(x, rng, cfg, ctx):
    import pedalboard

    params, board = {}, []
    if "lowpass_hz" in cfg:
        params["lowpass_hz"] = draw(rng, cfg["lowpass_hz"], "band_limit.lowpass_hz")
        board.append(pedalboard.LowpassFilter(cutoff_frequency_hz=params["lowpass_hz"]))
    if "highpass_hz" in cfg:
        params["highpass_hz"] = draw(rng, cfg["highpass_hz"], "band_limit.highpass_hz")
        board.append(pedalboard.HighpassFilter(cutoff_frequency_hz=params["highpass_hz"]))
    return pedalboard.Pedalboard(board)(x.astype(np.float32), SAMPLE_RATE).astype(np.float64), params


def resample(x, rng, cfg, ctx):
    import pedalboard

    rate = float(draw(rng, cfg.get("rates", [4000, 8000, 11025]), "resample.rates"))
    return pedalboard.Resample(target_sample_rate=rate)(x.astype(np.float32), SAMPLE_RATE).astype(np.float64), {
        "rate_hz": rate
    }


def codec(x, rng, cfg, ctx):
    import pedalboard

    kind = draw(rng, cfg.get("kinds", ["mp3", "gsm"]), "codec.kinds")
    if kind == "mp3":
        quality = draw(rng, cfg.get("mp3_vbr_quality", [2.0, 9.5]), "codec.mp3_vbr_quality")
        plugin, params = pedalboard.MP3Compressor(vbr_quality=quality), {"codec": "mp3", "vbr_quality": quality}
    elif kind == "gsm":
        plugin, params = pedalboard.GSMFullRateCompressor(), {"codec": "gsm"}
    else:
        raise ConfigError(f"codec.kinds: unknown codec {kind!r}; choose from mp3, gsm")
    return plugin(x.astype(np.float32), SAMPLE_RATE).astype(np.float64), params


def packet_loss(x, rng, cfg, ctx):
    rate = draw(rng, cfg.get("rate", [0.02, 0.2]), "packet_loss.rate")
    size = int(SAMPLE_RATE * float(cfg.get("packet_ms", 20)) / 1000)
    burst = float(cfg.get("mean_burst", 2.0))
    n_packets = math.ceil(len(x) / size)
    # a two-state (Gilbert) chain: bursts of mean length `burst`, overall loss rate `rate`
    p_recover = 1.0 / max(burst, 1.0)
    p_lose = min(rate * p_recover / max(1.0 - rate, 1e-6), 1.0)
    lost, state = [], False
    for _ in range(n_packets):
        state = rng.random() < (1.0 - p_recover if state else p_lose)
        lost.append(state)
    y = x.copy()
    for i, gone in enumerate(lost):
        if gone:
            y[i * size : (i + 1) * size] = 0.0
    return y, {
        "rate": rate,
        "packet_ms": size * 1000 / SAMPLE_RATE,
        "lost_packets": int(sum(lost)),
        "packets": n_packets,
    }


def clipping(x, rng, cfg, ctx):
    threshold = draw(rng, cfg.get("threshold_db", [-20.0, -3.0]), "clipping.threshold_db")
    level = np.abs(x).max() * 10 ** (threshold / 20)
    return np.clip(x, -level, level), {"threshold_db": threshold}


def gain(x, rng, cfg, ctx):
    db = draw(rng, cfg.get("gain_db", [-20.0, 6.0]), "gain.gain_db")
    return x * 10 ** (db / 20), {"gain_db": db}


DEGRADATIONS: dict[str, Degradation] = {
    "noise": add_noise,
    "reverb": reverb,
    "band_limit": band_limit,
    "resample": resample,
    "codec": codec,
    "packet_loss": packet_loss,
    "clipping": clipping,
    "gain": gain,
}


def load_config(path: str | None, overrides: dict | None = None) -> dict:
    """The degradation config (YAML) over :data:`DEFAULTS`; unknown degradations are a ConfigError."""
    config = load_settings(path, DEFAULTS, overrides, check_keys=False)
    unknown = [name for name in config["chain"] or {} if name not in DEGRADATIONS]
    if unknown:
        raise ConfigError(
            f"{path or 'config'}: chain: unknown degradation(s) {unknown}; choose from {', '.join(DEGRADATIONS)}"
        )
    for name, cfg in (config["chain"] or {}).items():
        p = (cfg or {}).get("p", 1.0)
        if not 0 <= float(p) <= 1:
            raise ConfigError(f"{path or 'config'}: chain.{name}.p = {p!r}: a probability in [0, 1]")
    return config


def clip_seed(seed: int, sample_id: str) -> list[int]:
    """The random state of one output clip: from the run's seed and the clip's id alone."""
    return [int(seed), zlib.crc32(sample_id.encode("utf-8"))]


def degrade_clip(x: np.ndarray, config: dict, rng: np.random.Generator, ctx: Context) -> tuple[np.ndarray, list]:
    """Apply the chain to one clean 16 kHz clip; return the degraded clip and what was applied."""
    applied = []
    y = x.astype(np.float64)
    for name, cfg in (config["chain"] or {}).items():
        cfg = cfg or {}
        if rng.random() >= float(cfg.get("p", 1.0)):
            continue
        y, params = DEGRADATIONS[name](y, rng, cfg, ctx)
        applied.append({"name": name, **{k: _plain(v) for k, v in params.items()}})
    peak = float(np.abs(y).max()) if len(y) else 0.0
    if peak > 0.99:  # keep the file free of clipping the chain did not ask for
        y = y * (0.99 / peak)
        applied.append({"name": "normalise", "scale": 0.99 / peak})
    return y.astype(np.float32), applied


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def check_clean(wav: np.ndarray, source: str, config: dict) -> None:
    """Refuse (AudioError naming ``source``) a clip that is too short or silent."""
    seconds = len(wav) / SAMPLE_RATE
    if seconds < float(config["min_seconds"]):
        raise AudioError(f"{source}: too short ({seconds:.2f} s < min_seconds {config['min_seconds']})")
    level = rms_db(wav)
    if level < float(config["silence_dbfs"]):
        raise AudioError(f"{source}: silent (RMS {level:.1f} dBFS < silence_dbfs {config['silence_dbfs']})")


def source_ids(paths: Sequence[str]) -> list[str]:
    """A unique, stable id per clean file: its stem, with a short path hash when stems repeat."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    repeated = {s for s in stems if stems.count(s) > 1}
    return [f"{s}_{zlib.crc32(os.path.abspath(p).encode()):08x}" if s in repeated else s for s, p in zip(stems, paths)]


def degrade_pool(inputs: Sequence[str], out_dir: str, config: dict, seed: int = 0, progress: bool = True) -> dict:
    """Degrade every clean clip of ``inputs`` (folders, audio files, lists) ``config["copies"]`` times into
    ``out_dir`` (see the module docstring); return a summary ``{"written", "skipped", "pool"}``."""
    from distilmos.predictor.inputs import collect

    paths = [e.wav_path for e in collect(inputs)]
    if not paths:
        raise ToolkitError(f"no audio files in {list(inputs)}")
    ctx = Context(config.get("noise_dir") or (config["chain"].get("noise") or {}).get("noise_dir"))
    wav_dir = os.path.join(out_dir, "wav")
    os.makedirs(wav_dir, exist_ok=True)
    records, skipped = [], []
    for path, source_id in tqdm(
        list(zip(paths, source_ids(paths))),
        desc="degrade",
        unit="clip",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    ):
        try:
            clean = load_audio(path).numpy()
            check_clean(clean, path, config)
        except AudioError as exc:
            skipped.append(str(exc))
            continue
        for copy in range(int(config["copies"])):
            sample_id = f"{source_id}_d{copy}"
            rng = np.random.default_rng(clip_seed(seed, sample_id))
            wav, applied = degrade_clip(clean, config, rng, ctx)
            out = os.path.join(wav_dir, f"{sample_id}.wav")
            with atomic_write(out, "wb") as handle:
                sf.write(handle, wav, SAMPLE_RATE, subtype="PCM_16", format="WAV")
            records.append(
                {
                    "sample_id": sample_id,
                    "source": os.path.abspath(path),
                    "wav_path": out,
                    "seed": clip_seed(seed, sample_id),
                    "degradations": applied,
                }
            )
    with atomic_write(os.path.join(out_dir, "degradations.jsonl")) as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    pool = os.path.join(out_dir, "pool.csv")
    with atomic_write(pool, newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["sample_id", "system_id", "wav_path", "source"])
        for record in records:
            # the system of a degraded clip: the set of degradations it got (for system-level views)
            system = "+".join(d["name"] for d in record["degradations"] if d["name"] != "normalise") or "clean"
            writer.writerow(
                [record["sample_id"], system, os.path.relpath(record["wav_path"], out_dir), record["source"]]
            )
    with atomic_write(os.path.join(out_dir, "skipped.txt")) as handle:
        handle.write("".join(line + "\n" for line in skipped))
    for line in skipped:
        print(f"skipped: {line}", file=sys.stderr)
    return {"written": len(records), "skipped": skipped, "pool": pool}


@reports_errors
def main(argv=None) -> int:
    parser = step_parser("degrade", __doc__)
    parser.add_argument("--config", help="degradation YAML (see egs/compress/conf/degrade.yaml)")
    parser.add_argument("--inputs", nargs="+", required=True, help="clean speech: folders, audio files or lists")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--copies", type=int, help="degraded versions per clean clip (default: the config's)")
    parser.add_argument("--noise_dir", help="noise recordings (default: the config's; none: generated noise)")
    args = parser.parse_args(argv)
    config = load_config(args.config, {"copies": args.copies, "noise_dir": args.noise_dir})
    summary = degrade_pool(args.inputs, args.out_dir, config, args.seed)
    print(f"{summary['written']} degraded clips -> {summary['pool']} ({len(summary['skipped'])} clean clips skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
