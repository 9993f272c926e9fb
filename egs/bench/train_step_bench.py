#!/usr/bin/env python
"""Training-step time of every MOS expert, with the same upstream and the same batch, through s3prl's runner.

    python egs/bench/train_step_bench.py [--size base] [--batch_size 4] [--seconds 2-4] [--warmup 2]
        [--repeats 5] [--modes frozen,finetune] [--n_clusters 200] [--device cpu] [--threads N] [--json PATH]

For each mode (``frozen``: the upstream in eval mode under no_grad, as without ``-f``; ``finetune``: as
with ``-f``) and each variant (``no_token``, ``distilmos``, ``mse_distill``, ``ssl_mos``; ``listener``:
``no_token`` trained listener-aware on 8 ratings per utterance, ``listener_r2``: on 2 of them per step), s3prl's own
``Runner`` builds the upstream (``wavlm_local``: a WavLM Base-size checkpoint with random weights, or
``--size tiny``), the Featurizer and the expert from the expert's config file, exactly as
``run_downstream.py -m train`` does, and then one training step is what ``Runner.train`` does per batch:
upstream forward (under no_grad when frozen) -> Featurizer -> expert forward (loss) -> backward ->
gradient clipping -> optimizer step -> zero_grad -> scheduler step. ``distilmos`` reads a real token
store built beforehand with ``distilmos-tokens fit/dump`` over the same utterances; ``mse_distill``
runs its frozen teacher (a second copy of the pretrained upstream) inside its loss.

Every variant gets the same batch (the first batch of its own training dataloader over one generated
list of ``--batch_size`` utterances, so all of them), loaded once before timing; loading it (audio, and
tokens for distilmos) is timed apart. Variants take turns step by step, so a change of machine load
touches all of them alike: ``--warmup`` rounds untimed, then ``--repeats`` timed rounds; each figure is
the median. The ratios to ``no_token`` in the same mode are the robust figures. On CPU both the wall
time and this process's CPU time are reported: on a machine shared with other jobs the wall time
includes waiting for a core and the CPU time does not (with ``--threads 1`` the CPU time is what the
wall time would be on a quiet machine).

Target: a ``distilmos`` step at most 1.15x a ``no_token`` step (the token heads and their loss are cheap
next to the upstream).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from dataclasses import dataclass

import benchlib  # beside this script

VARIANTS = ("no_token", "distilmos", "mse_distill", "ssl_mos", "listener", "listener_r2")
MODES = ("frozen", "finetune")
#: ratings per utterance in the listener list the listener variants train on (BVCC's count)
RATINGS = 8
CONFIGS = {  # variant -> (downstream, config file, extra runner flags, modelrc overrides)
    "distilmos": ("distilmos", "config.yaml", [], {}),
    "no_token": ("distilmos", "config_no_token.yaml", [], {}),
    "mse_distill": ("distilmos", "config_mse_distill.yaml", [], {}),
    "ssl_mos": ("ssl_mos", "config.yaml", ["-s", "last_hidden_state"], {}),
    # no_token trained listener-aware: on every rating of each utterance, or on 2 of them per step
    "listener": ("distilmos", "config_no_token.yaml", [], {"listener.enabled": True}),
    "listener_r2": (
        "distilmos",
        "config_no_token.yaml",
        [],
        {"listener.enabled": True, "listener.ratings_per_step": 2},
    ),
}
TARGET_RATIO = 1.15


# ------------------------------------------------------------------------------------------ setup


def build_token_store(csv: str, ckpt: str, out: str, n_clusters: int, device: str) -> str:
    """Fit and dump a token store over ``csv`` with the command line tool (``distilmos-tokens``'s
    entry point, called in this process to spare an interpreter start-up), as a recipe does."""
    import contextlib
    import io

    from upstream_tokens.cli import main as tokens_cli

    common = ["--device", device, "--quiet"]
    for cmd in (
        ["fit", "--csv", csv, "-u", "wavlm_local", "-k", ckpt, "--n_clusters", str(n_clusters), "--out", out],
        ["dump", "--csv", csv, "--store", out, "--split", "train"],
    ):
        report, errors = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(report), contextlib.redirect_stderr(errors):
            status = tokens_cli(cmd + common)
        if status != 0:
            raise SystemExit(f"distilmos-tokens {' '.join(cmd)} failed:\n{errors.getvalue()[-3000:]}")
    return out


def build_runner(
    variant: str, mode: str, ckpt: str, data_dir: str, store: str, expdir: str, device: str, batch_size: int, seed: int
):
    """The toolkit's runner (s3prl's Runner subclass that ``run_downstream.py`` builds) for one variant, from the
    same arguments it parses: the experts refuse, under s3prl's own runner, what only the toolkit's does."""
    import torch
    from s3prl.run_downstream import get_downstream_args

    from distilmos.train.runner import complete_argv, make_runner_class

    downstream, config, extra, modelrc = CONFIGS[variant]
    datarc = {"data_dir": data_dir, "num_workers": 0, "train_batch_size": batch_size, "token_store": store}
    runner = {"total_steps": 100000}  # the OneCycle schedule must not end during the benchmark
    argv = benchlib.train_argv(ckpt, downstream, config, expdir, device, seed, datarc, runner, modelrc) + extra
    if mode == "finetune":
        argv.append("-f")
    argv = complete_argv(argv, [benchlib.DOWNSTREAM])
    saved, sys.argv = sys.argv, ["run_downstream.py"] + argv
    try:
        args, config_dict, _ = get_downstream_args()
    finally:
        sys.argv = saved
    torch.manual_seed(seed)  # as the entry point seeds before building the runner
    return make_runner_class()(args, config_dict)


class TrainStep:
    """One training step of ``Runner.train`` on a fixed batch (see the module docstring)."""

    def __init__(self, runner, batch):
        import torch
        from s3prl.utility.helper import defaultdict

        self.runner = runner
        self.config = runner.config
        self.device = runner.args.device
        trainable_models, self.trainable_params = [], []
        for entry in runner.all_entries:  # as Runner.train: train() what is trainable, eval() the rest
            if entry.trainable:
                entry.model.train().to(self.device)
                trainable_models.append(entry.model)
                self.trainable_params += list(entry.model.parameters())
            else:
                entry.model.eval()
        self.optimizer = runner._get_optimizer(trainable_models)
        self.scheduler = runner._get_scheduler(self.optimizer) if self.config.get("scheduler") else None
        self.wavs, *self.others = batch  # as the runner unpacks `for wavs, *others in dataloader`
        self.records = defaultdict(list)
        self.split = self.config["runner"].get("train_dataloader", "train")
        self._torch = torch

    def __call__(self) -> None:
        torch, runner = self._torch, self.runner
        wavs = [torch.FloatTensor(wav).to(self.device) for wav in self.wavs]
        if runner.upstream.trainable:
            features = runner.upstream.model(wavs)
        else:
            with torch.no_grad():
                features = runner.upstream.model(wavs)
        features = runner.featurizer.model(wavs, features)
        loss = runner.downstream.model(self.split, features, *self.others, records=self.records)
        loss = loss / self.config["runner"].get("gradient_accumulate_steps", 1)
        loss.backward()
        del loss
        torch.nn.utils.clip_grad_norm_(self.trainable_params, self.config["runner"]["gradient_clipping"])
        self.optimizer.step()
        self.optimizer.zero_grad()
        if self.scheduler:
            self.scheduler.step()
        self.records.clear()  # the runner clears them at every log step; nothing here is logged


def load_batch(runner, repeats: int, sync):
    """The first training batch of the runner's expert, and the median time to load it."""

    def first():
        return next(iter(runner.downstream.model.get_dataloader("train", epoch=0)))

    times = benchlib.time_runs(first, 1, repeats, sync)
    return first(), benchlib.median(times)


# ------------------------------------------------------------------------------------------- main


@dataclass
class Setup:
    """What a training-step measurement runs on (:func:`prepare`)."""

    ckpt: str  # the WavLM checkpoint (wavlm_local)
    data_dir: str  # train/val/test lists, each the same --batch_size utterances
    store: str  # a token store over them
    audio_s: float  # seconds of audio in the batch
    seconds: tuple[float, float]  # the range utterance lengths were drawn from


def prepare(args, workdir: str) -> Setup:
    """The plug-in registered as the entry point does it (with s3prl's isinstance hack, under which the runner's
    training loop runs, and subnormal floats flushed), a random WavLM of ``--size``, ``--batch_size``
    generated utterances as every split's list, and a token store of k ``--n_clusters`` over them."""
    import builtins

    import soundfile as sf
    import torch
    from s3prl.utility.helper import hack_isinstance

    from distilmos.data.audio import SAMPLE_RATE
    from distilmos.train.plugin import register
    from distilmos.upstream.tiny import write_checkpoint

    register([benchlib.DOWNSTREAM])
    if getattr(builtins.isinstance, "__module__", None) != hack_isinstance.__module__:
        hack_isinstance()
    torch.set_flush_denormal(True)

    ckpt = write_checkpoint(os.path.join(workdir, f"wavlm_{args.size}.pt"), "wavlm", size=args.size, seed=args.seed)
    low, high = benchlib.parse_seconds(args.seconds)
    items = benchlib.make_wavs(os.path.join(workdir, "wav"), args.batch_size, low, high, args.seed)
    data_dir = os.path.join(workdir, "data")
    os.makedirs(data_dir, exist_ok=True)
    for split in ("train", "val", "test"):  # the runner validates train and val before it starts
        benchlib.write_list(os.path.join(data_dir, f"{split}.csv"), items)
    benchlib.write_list(os.path.join(data_dir, "train_listeners.csv"), items, listeners=RATINGS)
    store = build_token_store(
        os.path.join(data_dir, "train.csv"), ckpt, os.path.join(workdir, "tokens"), args.n_clusters, args.device
    )
    audio_s = sum(sf.info(p).frames for _, p in items) / SAMPLE_RATE
    return Setup(ckpt, data_dir, store, audio_s, (low, high))


def measure(args, workdir: str) -> list:
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(variants) - set(VARIANTS) or "no_token" not in variants:
        raise SystemExit(f"--variants: a subset of {', '.join(VARIANTS)} with no_token (the ratios' reference)")
    if set(modes) - set(MODES) or not modes:
        raise SystemExit("--modes: frozen, finetune or both")
    variants = [v for v in VARIANTS if v in variants]
    modes = [m for m in MODES if m in modes]
    setup = prepare(args, workdir)
    sync = benchlib.synchronizer(args.device)

    rows = []
    for mode in modes:
        group = f"train step, {'frozen upstream' if mode == 'frozen' else 'fine-tuned upstream (-f)'}"
        steps, load_s = {}, {}
        for variant in variants:
            runner = build_runner(
                variant,
                mode,
                setup.ckpt,
                setup.data_dir,
                setup.store,
                os.path.join(workdir, f"exp_{mode}_{variant}"),
                args.device,
                args.batch_size,
                args.seed,
            )
            batch, load_s[variant] = load_batch(runner, args.repeats, sync)
            steps[variant] = TrainStep(runner, batch)
        clocks = benchlib.clocks(args.device)
        progress = _progress(args.warmup + args.repeats, f"{mode}: rounds of {len(variants)} steps")
        times = benchlib.time_rounds(
            steps, args.warmup, args.repeats, args.device, lambda _, bar=progress: bar.update()
        )
        progress.close()
        med = {key: benchlib.median(values) for key, values in times.items()}
        for (variant, clock), values in times.items():
            print(f"{mode} {variant}: {clock} times " + " ".join(f"{t:.3f}" for t in values) + " s", file=sys.stderr)
        for clock in clocks:
            for variant in variants:
                rows.append(
                    benchlib.row(group, f"{variant} step, {clock} time", med[variant, clock], "s", runs=args.repeats)
                )
        for clock in clocks:
            for variant in variants:
                if variant == "no_token":
                    continue
                ratio = med[variant, clock] / med["no_token", clock]
                target = f"≤ {TARGET_RATIO:g}× no_token" if variant == "distilmos" else None
                met = ratio <= TARGET_RATIO if variant == "distilmos" else None
                rows.append(
                    benchlib.row(group, f"{variant} / no_token, {clock} time", ratio, "×", target, met, args.repeats)
                )
        if mode == modes[0]:
            for variant in variants:  # the same in both modes: report once
                rows.append(
                    benchlib.row(
                        "train step, batch loading",
                        f"{variant} batch load (main process)",
                        load_s[variant],
                        "s",
                        runs=args.repeats,
                    )
                )
        del steps
        gc.collect()
    low, high = setup.seconds
    info = (
        f"{args.batch_size} utterances of {low:g}-{high:g} s ({setup.audio_s:.1f} s of audio); WavLM {args.size} "
        f"(random weights, wavlm_local); k={args.n_clusters}"
    )
    rows.append(benchlib.row("train step, setup", "batch", info, "", runs=None))
    return rows


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False)


def step_options(doc: str, batch_help: str = "utterances in the batch (default 4)") -> argparse.ArgumentParser:
    """A parser with the options of a training-step measurement (this script's and salf_bench.py's)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("base", "tiny"), default="base", help="upstream size (default base)")
    parser.add_argument("--batch_size", type=int, default=4, help=batch_help)
    parser.add_argument("--seconds", default="2-4", help="utterance lengths, S or MIN-MAX seconds (default 2-4)")
    parser.add_argument("--n_clusters", type=int, default=200, help="k of the distilmos token store (default 200)")
    return parser


def parse_step_args(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """The common options added, the arguments parsed, --quick applied and the counts checked."""
    quick = "smoke test: tiny upstream, 2 utterances of 1 s, k=8, 1 warm-up and 1 timed round"
    benchlib.common_options(parser, quick, rounds=(2, 5))
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.batch_size, args.seconds, args.n_clusters, args.warmup, args.repeats = "tiny", 2, "1", 8, 1, 1
    if args.warmup < 0 or args.repeats < 1 or args.batch_size < 1:
        parser.error("need --warmup >= 0, --repeats >= 1 and --batch_size >= 1")
    return args


def main(argv=None) -> None:
    parser = step_options(__doc__)
    parser.add_argument("--modes", default="frozen,finetune", help="frozen, finetune or both (default)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"subset of {','.join(VARIANTS)} (default all)")
    benchlib.run(parse_step_args(parser, argv), measure)


if __name__ == "__main__":
    main()
