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

import os
import sys

import benchlib  # beside this script
import train_step_bench as tsb  # beside this script

# SALF-MOS trains on its upstream's frozen last layer; DistilMOS fine-tunes (both as defined)
MODELS = {
    "salf_mos": ("frozen", ("salf_mos", "config.yaml", ["-s", "last_hidden_state"], {})),
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
    for name, (_, config) in MODELS.items():
        tsb.CONFIGS.setdefault(name, config)
    setup = tsb.prepare(args, workdir)
    sync = benchlib.synchronizer(args.device)

    tasks, params = {}, {}
    for name, (mode, _) in MODELS.items():
        runner = tsb.build_runner(
            name,
            mode,
            setup.ckpt,
            setup.data_dir,
            setup.store,
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

    clocks = benchlib.clocks(args.device)
    total = args.warmup + args.repeats
    times = benchlib.time_rounds(
        tasks, args.warmup, args.repeats, args.device, lambda i: print(f"round {i + 1}/{total}", file=sys.stderr)
    )
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
            f"{args.batch_size} utterances of {setup.seconds[0]:g}-{setup.seconds[1]:g} s ({setup.audio_s:.1f} s "
            f"of audio); WavLM {args.size} (random weights); k={args.n_clusters}",
            "",
            runs=None,
        )
    )
    return rows


def main(argv=None) -> None:
    parser = tsb.step_options(__doc__, "utterances in the batch (default 4, the paper's)")
    benchlib.run(tsb.parse_step_args(parser, argv), measure)


if __name__ == "__main__":
    main()
