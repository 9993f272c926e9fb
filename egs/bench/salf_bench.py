#!/usr/bin/env python
"""SALF-MOS against DistilMOS on the same upstream: training step and inference time, as ratios in one run.

    python egs/bench/salf_bench.py [--size base] [--batch_size 4] [--seconds 2-4] [--warmup 2] [--repeats 5]
        [--n_clusters 200] [--device cpu] [--threads N] [--json PATH] [--quick]

Each model trains as it is defined: SALF-MOS on the frozen upstream (its last layer, no ``-f``), DistilMOS
fine-tuning it (``-f``, token heads on a real token store). s3prl's own ``Runner`` builds both from their
configs on a WavLM Base-size upstream with random weights (``wavlm_local``; ``--size tiny`` for a smoke
run), and a training step is what ``Runner.train`` does per batch (``train_step_bench.TrainStep``). Inference
is the network in eval mode on the same batch: upstream forward, featurizer, the expert's inference model.
A SALF-MOS step still runs the whole upstream forward, which is most of it; the head alone is timed too
(``head step``: features given, forward + backward + optimizer step), as when the features are computed once.
The models take turns in every round (``--warmup`` untimed rounds, then ``--repeats`` timed ones; each
figure is the median). On CPU both wall and CPU time are reported (see ``train_step_bench.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import benchlib  # noqa: E402
import train_step_bench as tsb  # noqa: E402

# SALF-MOS trains on its upstream's frozen last layer; DistilMOS fine-tunes (both as defined)
MODELS = {
    "salf_mos": ("frozen", ("salf_mos", "config.yaml", ["-s", "last_hidden_state"])),
    "distilmos": ("finetune", tsb.CONFIGS["distilmos"]),
}


class Inference:
    """The network's inference path on a fixed batch: upstream -> featurizer -> the expert's model."""

    def __init__(self, runner, batch):
        import torch

        self.runner, self.torch = runner, torch
        self.wavs = [torch.FloatTensor(w).to(runner.args.device) for w in batch[0]]

    def __call__(self) -> None:
        torch, runner = self.torch, self.runner
        from torch.nn.utils.rnn import pad_sequence

        entries = (runner.upstream, runner.featurizer, runner.downstream)
        modes = [entry.model.training for entry in entries]  # the training step's modes, restored after
        for entry in entries:
            entry.model.eval()
        with torch.inference_mode():
            feats = runner.featurizer.model(self.wavs, runner.upstream.model(self.wavs))
            lengths = torch.tensor([len(f) for f in feats], device=feats[0].device)
            runner.downstream.model.model(pad_sequence(feats, batch_first=True), lengths)
        for entry, mode in zip(entries, modes):
            entry.model.train(mode)


class HeadStep:
    """A SALF-MOS training step on features computed once: forward, L1 loss, backward, SGD step."""

    def __init__(self, runner, batch):
        import torch

        self.torch, self.expert = torch, runner.downstream.model
        wavs = [torch.FloatTensor(w).to(runner.args.device) for w in batch[0]]
        with torch.no_grad():
            self.feats = runner.featurizer.model(wavs, runner.upstream.model(wavs))
        self.batch = batch[1]
        self.optimizer = torch.optim.SGD(self.expert.model.parameters(), lr=1e-4)

    def __call__(self) -> None:
        from torch.nn.utils.rnn import pad_sequence

        torch = self.torch
        self.expert.model.train()
        lengths = torch.tensor([len(f) for f in self.feats], device=self.feats[0].device)
        pred = self.expert.model(pad_sequence(self.feats, batch_first=True), lengths)["pred"]
        loss = torch.nn.functional.l1_loss(pred, self.batch.scores.to(pred.device))
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()


def measure(args, workdir: str) -> list:
    import builtins

    import soundfile as sf
    import torch
    from s3prl.utility.helper import hack_isinstance

    from distilmos.data.audio import SAMPLE_RATE
    from distilmos.train.plugin import register
    from distilmos.upstream.tiny import write_checkpoint

    register([os.path.join(REPO, "downstream")])
    if getattr(builtins.isinstance, "__module__", None) != hack_isinstance.__module__:
        hack_isinstance()  # as the entry point does
    torch.set_flush_denormal(True)
    for name, (_, config) in MODELS.items():
        tsb.CONFIGS.setdefault(name, config)

    ckpt = write_checkpoint(os.path.join(workdir, f"wavlm_{args.size}.pt"), "wavlm", size=args.size, seed=args.seed)
    low, high = benchlib.parse_seconds(args.seconds)
    items = benchlib.make_wavs(os.path.join(workdir, "wav"), args.batch_size, low, high, args.seed)
    data_dir = os.path.join(workdir, "data")
    os.makedirs(data_dir, exist_ok=True)
    for split in ("train", "val", "test"):
        benchlib.write_list(os.path.join(data_dir, f"{split}.csv"), items)
    store = tsb.build_token_store(
        os.path.join(data_dir, "train.csv"), ckpt, os.path.join(workdir, "tokens"), args.n_clusters, args.device
    )
    sync = benchlib.synchronizer(args.device)
    audio_s = sum(sf.info(p).frames for _, p in items) / SAMPLE_RATE

    tasks, params = {}, {}
    for name, (mode, _) in MODELS.items():
        runner = tsb.build_runner(
            name,
            mode,
            ckpt,
            data_dir,
            store,
            os.path.join(workdir, f"exp_{name}"),
            args.device,
            args.batch_size,
            args.seed,
        )
        batch, _ = tsb.load_batch(runner, 1, sync)
        params[name] = sum(p.numel() for p in runner.downstream.model.model.parameters())
        tasks[f"{name} train step"] = tsb.TrainStep(runner, batch)
        tasks[f"{name} inference"] = Inference(runner, batch)
        if name == "salf_mos":
            tasks["salf_mos head step"] = HeadStep(runner, batch)

    clocks = {"wall": time.perf_counter}
    if not str(args.device).startswith("cuda"):
        clocks["CPU"] = time.process_time
    times = {(t, c): [] for t in tasks for c in clocks}
    for round_ in range(args.warmup + args.repeats):
        for task, fn in tasks.items():  # tasks take turns: load drifts touch each alike
            started = {c: clock() for c, clock in clocks.items()}
            fn()
            sync()
            if round_ >= args.warmup:
                for c, clock in clocks.items():
                    times[task, c].append(clock() - started[c])
        print(f"round {round_ + 1}/{args.warmup + args.repeats}", file=sys.stderr)
    med = {key: benchlib.median(values) for key, values in times.items()}

    group = "SALF-MOS vs DistilMOS"
    rows = []
    for clock in clocks:
        for task in tasks:
            rows.append(benchlib.row(group, f"{task}, {clock} time", med[task, clock], "s", runs=args.repeats))
    for clock in clocks:
        for what, num, den in (
            ("train step: salf_mos (frozen) / distilmos (-f)", "salf_mos train step", "distilmos train step"),
            ("inference: salf_mos / distilmos", "salf_mos inference", "distilmos inference"),
            (
                "train step on given features: salf_mos head / distilmos (-f)",
                "salf_mos head step",
                "distilmos train step",
            ),
        ):
            rows.append(
                benchlib.row(group, f"{what}, {clock} time", med[num, clock] / med[den, clock], "×", runs=args.repeats)
            )
    rows.append(
        benchlib.row(
            group,
            "inference-model parameters: salf_mos / distilmos",
            f"{params['salf_mos']:,} / {params['distilmos']:,}",
            "",
            runs=None,
        )
    )
    rows.append(
        benchlib.row(
            group,
            "batch",
            f"{args.batch_size} utterances of {low:g}-{high:g} s ({audio_s:.1f} s "
            f"of audio); WavLM {args.size} (random weights); k={args.n_clusters}",
            "",
            runs=None,
        )
    )
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("base", "tiny"), default="base", help="upstream size (default base)")
    parser.add_argument("--batch_size", type=int, default=4, help="utterances in the batch (default 4, the paper's)")
    parser.add_argument("--seconds", default="2-4", help="utterance lengths, S or MIN-MAX seconds (default 2-4)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds; figures are medians (default 5)")
    parser.add_argument("--n_clusters", type=int, default=200, help="k of the distilmos token store (default 200)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch/OpenMP threads (default: the libraries' own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--json", default=None, help="write the result rows here (JSON list)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: tiny upstream, 2 utterances of 1 s, k=8, 1 warm-up and 1 timed round",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.batch_size, args.seconds, args.n_clusters, args.warmup, args.repeats = "tiny", 2, "1", 8, 1, 1
    if args.warmup < 0 or args.repeats < 1 or args.batch_size < 1:
        parser.error("need --warmup >= 0, --repeats >= 1 and --batch_size >= 1")
    threads = benchlib.set_threads(args.threads)
    info = benchlib.machine(args.device, threads)
    with tempfile.TemporaryDirectory(prefix="salf_bench_") as scratch:
        workdir = args.workdir or scratch
        os.makedirs(workdir, exist_ok=True)
        rows = measure(args, workdir)
    benchlib.report(info, rows, args.json)


if __name__ == "__main__":
    main()
