#!/usr/bin/env python
"""Scoring speed of peer MOS predictors next to ours, on the same generated wavs and the same machine.

    pip install -e '.[peers]'                            # the peers: distillmos, speechmos (DNSMOS)
    python egs/bench/peers_bench.py [--size base] [--n_utts 16] [--seconds 1-8] [--batch_size 16]
        [--warmup 1] [--repeats 3] [--device cpu] [--threads N] [--json PATH] [--quick]

Systems (each given the same 16 kHz mono waveforms, already in memory: file reading is not timed):

- ``DistilMOS (ours)``: a predictor file made with the toolkit's own path, on a WavLM Base-size upstream
  with random weights (``--size tiny`` for a smoke run): one training step of ``no_token`` through
  s3prl's runner (frozen upstream; the inference network is DistilMOS's), exported with
  ``distilmos.predictor.export`` and loaded with ``distilmos.predictor.load``; scored one waveform per
  call (``predict(wav=..., sr=SAMPLE_RATE)``) and all at once (``predict(wav=[...])``, length-bucketed batches
  of at most ``--batch_size``). Speed does not depend on the weights;
- ``Distill-MOS`` (package ``distillmos``, its shipped weights): ``ConvTransformerSQAModel`` in eval mode
  under no_grad, one waveform per call as its command line does (it pads or crops every input to
  7.68 s windows, so a batch would need equal lengths);
- ``DNSMOS P.835`` (package ``speechmos``, its shipped ONNX models): ``speechmos.dnsmos.DNSMOS`` called on
  each waveform (the P.835 SIG/BAK/OVRL model and the P.808 model on 9.01 s windows, hop 1 s, shorter
  inputs repeated), its ONNX Runtime sessions rebuilt with ``--threads`` intra-op threads so that every
  system gets the same number of threads.

Every system scores every waveform once per round; systems take turns within a round (``--warmup``
untimed rounds, then ``--repeats`` timed ones; figures are medians). Reported per system: utterances
per second, real-time factor (seconds of compute per second of audio; wall time, and on CPU also this
process's CPU time, which waiting for a core on a shared machine does not inflate), parameters, and
load time. A peer that is not installed or fails gets a row saying why.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import benchlib  # beside this script

INSTALL_HINT = "pip install -e '.[peers]'"


class System:
    """A scorer under test: ``load()`` once, then ``score(wavs)`` scores a list of 1-D float32 arrays."""

    name = "?"
    note = ""

    def load(self) -> None:
        raise NotImplementedError

    def score(self, wavs) -> list:
        raise NotImplementedError

    def n_params(self) -> int:
        raise NotImplementedError


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


# ------------------------------------------------------------------------------------------ ours


def make_predictor_file(workdir: str, size: str, items: list, device: str, seed: int) -> str:
    """A DistilMOS predictor file through the toolkit's own path: a 1-step s3prl run, then export."""
    from distilmos.predictor import export
    from distilmos.train.runner import run as run_downstream
    from distilmos.upstream.tiny import write_checkpoint

    ckpt = write_checkpoint(os.path.join(workdir, f"wavlm_{size}.pt"), "wavlm", size=size, seed=seed)
    data = os.path.join(workdir, "data")
    os.makedirs(data, exist_ok=True)
    train = items[: max(2, min(4, len(items)))]
    for split in ("train", "val"):
        benchlib.write_list(os.path.join(data, f"{split}.csv"), train)
    expdir = os.path.join(workdir, "exp")
    datarc = {"data_dir": data, "num_workers": 0, "train_batch_size": len(train)}
    runner = {"total_steps": 1, "save_step": 1, "eval_step": 1000, "log_step": 1000}
    argv = benchlib.train_argv(ckpt, "distilmos", "config_no_token.yaml", expdir, device, seed, datarc, runner)
    with contextlib.redirect_stdout(sys.stderr):  # the runner's chatter is not part of the table
        run_downstream([benchlib.DOWNSTREAM], argv)
        out = os.path.join(workdir, "predictor.pt")
        export(os.path.join(expdir, "states-1.ckpt"), out)
    return out


class Ours(System):
    """The exported predictor; ``batch_size`` 1 scores one waveform per call."""

    def __init__(self, predictor_file: str, device: str, batch_size: int, size: str):
        self.file, self.device, self.batch_size = predictor_file, device, batch_size
        self.name = "DistilMOS (ours), " + ("one by one" if batch_size == 1 else f"batched (≤ {batch_size})")

    def load(self) -> None:
        from distilmos.data.audio import SAMPLE_RATE
        from distilmos.predictor import load

        self.predictor = load(self.file, device=self.device, batch_size=self.batch_size)
        self.sample_rate = SAMPLE_RATE  # of the waveforms scored: the benchmark's files, read by load_audio

    def score(self, wavs) -> list:
        if self.batch_size == 1:
            return [self.predictor.predict(wav=w, sr=self.sample_rate) for w in wavs]
        return self.predictor.predict(wav=list(wavs), sr=self.sample_rate)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.predictor.pipeline.parameters())


# ----------------------------------------------------------------------------------------- peers


class DistillMOS(System):
    """``distillmos.ConvTransformerSQAModel`` with its shipped weights."""

    name = f"Distill-MOS (distillmos {_version('distillmos')})"

    def __init__(self, device: str):
        self.device = device

    def load(self) -> None:
        import distillmos
        import torch

        self._torch = torch
        with contextlib.redirect_stdout(sys.stderr):  # it prints where it loaded its weights from
            self.model = distillmos.ConvTransformerSQAModel().eval().to(self.device)

    def score(self, wavs) -> list:
        torch = self._torch
        scores = []
        with torch.no_grad():
            for w in wavs:
                scores.append(float(self.model(torch.from_numpy(w)[None].to(self.device)).reshape(-1)[0]))
        return scores

    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


class DNSMOS(System):
    """``speechmos.dnsmos.DNSMOS`` (P.835 + P.808 ONNX models shipped with speechmos); OVRL is the score."""

    name = f"DNSMOS P.835 (speechmos {_version('speechmos')})"

    def __init__(self, threads: int):
        self.threads = threads

    def _paths(self):
        import speechmos

        models = os.path.join(os.path.dirname(speechmos.__file__), "dnsmos_models")
        return os.path.join(models, "sig_bak_ovr.onnx"), os.path.join(models, "model_v8.onnx")

    def load(self) -> None:
        import onnxruntime as ort
        from speechmos import dnsmos

        from distilmos.data.audio import SAMPLE_RATE

        self.sample_rate = SAMPLE_RATE  # of the waveforms scored (DNSMOS itself takes 16 kHz)

        primary, p808 = self._paths()
        self.model = dnsmos.DNSMOS(primary, p808)
        if self.threads:  # its own sessions take every core; give it the threads every system gets
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = self.threads, 1
            providers = ["CPUExecutionProvider"]
            self.model.onnx_sess = ort.InferenceSession(primary, options, providers=providers)
            self.model.p808_onnx_sess = ort.InferenceSession(p808, options, providers=providers)

    def score(self, wavs) -> list:
        return [float(self.model(w, self.sample_rate, False)["ovrl_mos"]) for w in wavs]

    def n_params(self) -> int:
        import numpy as np
        import onnx

        total = 0
        for path in self._paths():
            total += sum(int(np.prod(t.dims)) for t in onnx.load(path).graph.initializer)
        return total


# ------------------------------------------------------------------------------------------- main


def measure(args, workdir: str) -> list:
    import numpy as np
    import torch

    from distilmos.data.audio import SAMPLE_RATE, load_audio

    torch.set_flush_denormal(True)  # as the toolkit's commands do
    low, high = benchlib.parse_seconds(args.seconds)
    items = benchlib.make_wavs(os.path.join(workdir, "wav"), args.n_utts, low, high, args.seed)
    wavs = [load_audio(path).numpy().astype(np.float32) for _, path in items]
    audio_s = sum(len(w) for w in wavs) / SAMPLE_RATE
    group = (
        f"peers (ours: WavLM {args.size}; {args.n_utts} utts of {low:g}-{high:g} s, {audio_s:.0f} s of audio, "
        f"{args.device})"
    )
    rows = []

    systems, failed = [], {}
    try:
        predictor_file = make_predictor_file(workdir, args.size, items, args.device, args.seed)
        systems += [
            Ours(predictor_file, args.device, 1, args.size),
            Ours(predictor_file, args.device, args.batch_size, args.size),
        ]
    except Exception as exc:  # noqa: BLE001 - the peers are still worth measuring; the row says why
        failed["DistilMOS (ours)"] = f"failed: {type(exc).__name__}: {exc}"
    systems += [DistillMOS(args.device), DNSMOS(args.threads)]

    loaded, load_s = [], {}
    for system in systems:
        started = time.perf_counter()
        try:
            system.load()
        except ImportError as exc:
            failed[system.name] = f"not installed ({exc}); {INSTALL_HINT}"
            continue
        except Exception as exc:  # noqa: BLE001
            failed[system.name] = f"failed to load: {type(exc).__name__}: {exc}"
            continue
        load_s[system.name] = time.perf_counter() - started
        loaded.append(system)

    def scoring_failed(name, exc):
        failed[name] = f"failed while scoring: {type(exc).__name__}: {exc}"

    times = benchlib.time_rounds(
        {s.name: (lambda s=s: s.score(wavs)) for s in loaded},
        args.warmup,
        args.repeats,
        args.device,
        on_error=scoring_failed,
    )
    for system in [s for s in loaded if s.name not in failed]:
        wall = benchlib.median(times[system.name, "wall"])
        rows.append(benchlib.row(group, f"{system.name}: throughput", args.n_utts / wall, "utts/s", runs=args.repeats))
        rows.append(benchlib.row(group, f"{system.name}: real-time factor", wall / audio_s, "×", runs=args.repeats))
        if (system.name, "CPU") in times:
            cpu = benchlib.median(times[system.name, "CPU"])
            rows.append(
                benchlib.row(group, f"{system.name}: real-time factor, CPU time", cpu / audio_s, "×", runs=args.repeats)
            )
        rows.append(benchlib.row(group, f"{system.name}: parameters", system.n_params(), "params"))
        rows.append(benchlib.row(group, f"{system.name}: load time", load_s[system.name], "s"))
    for name, reason in failed.items():
        rows.append(benchlib.row(group, name, reason, ""))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.corpus_options(parser, n_utts=16, seconds="1-8")
    parser.add_argument("--batch_size", type=int, default=16, help="our batched run: inputs per batch (default 16)")
    benchlib.common_options(
        parser,
        "smoke run: tiny upstream, 3 utterances of 1-2 s, 1 round",
        rounds=(1, 3),
        device="cpu or cuda (DNSMOS runs on the CPU either way)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.n_utts, args.seconds, args.warmup, args.repeats = "tiny", 3, "1-2", 0, 1
    if args.warmup < 0 or args.repeats < 1 or args.n_utts < 1:
        parser.error("need --warmup >= 0, --repeats >= 1 and --n_utts >= 1")
    note = f"Each time: median of {args.repeats} timed round(s) after {args.warmup} warm-up round(s)."
    benchlib.run(args, measure, note)


if __name__ == "__main__":
    main()
