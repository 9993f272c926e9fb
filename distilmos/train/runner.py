"""s3prl's downstream runner with this toolkit plugged in: the entry point behind ``run_downstream.py``.

:func:`main` is s3prl's ``run_downstream.py`` main with the registrations of :mod:`distilmos.train.plugin`, the
runner subclass :class:`PluginRunner` (made by :func:`make_runner_class`) and a few fixes for running
anywhere:

- the rank comes from ``LOCAL_RANK`` under ``torchrun``; ``--device cpu`` works, under ``torchrun`` too
  (gloo backend, DDP without device ids);
- the default ``-c`` of a registered expert (:mod:`distilmos.registry`) is its variant's config (``-v``) or
  ``config.yaml``, found in the registered downstream folders wherever the command runs;
- an unknown ``-u`` fails at once with the closest valid names;
- with ``datarc.feature_cache`` (a frozen upstream), training and evaluation read the upstream's hidden
  states from a feature cache instead of running it (:mod:`distilmos.upstream.cached`);
- s3prl's WavLM, HuBERT and wav2vec 2.0 upstreams run their padding-exact forward
  (:mod:`distilmos.upstream.padding_exact`) and the featurizer keeps each utterance's exact frame count, so
  training and evaluation do not depend on batch composition; the experts are told so
  (``upstream_padding_exact``), and their evaluation batches keep a padding cap only for other upstreams;
- before anything is written: the experiment folder must be writable, a training config may hold only
  known keys (a misspelt one is named with the closest valid key) and usable runner values, and a
  training run locks its folder (:mod:`distilmos.locks`), so a second run into it is refused, naming
  the first;
- the experts are told they run under this runner (``plugin_runner``; under s3prl's own they refuse the
  config features only this one carries out: a feature cache, early stopping) and, under DDP, their share of
  the training batch (``datarc.train_batch_size`` is the batch of one step over all processes: each of N
  processes loads 1/N of it, :func:`per_process_batch`); none of these keywords is saved in a checkpoint's
  args;
- an error about the user's input (a :class:`~distilmos.errors.ToolkitError`: a bad data list, token
  store, config value) is printed as one message, without a traceback, and the exit status is
  :data:`EXIT_INPUT_ERROR`; s3prl's own errors are left as they are.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import difflib
import logging
import os
import random
import sys
from collections.abc import Iterable

import numpy as np
import torch
import yaml

from distilmos import registry
from distilmos.data.batching import STRICT_MAX_PAD
from distilmos.errors import ConfigError, ToolkitError
from distilmos.fileio import check_writable_dir
from distilmos.locks import experiment_lock
from distilmos.upstream import cached, padding_exact
from distilmos.upstream.build import UpstreamSpecError, check_local_checkpoint

from .config_keys import check_keys, section, signature_keys
from .loop import runner_config
from .plugin import register, register_upstream
from .schedulers import scheduler_keys

logger = logging.getLogger(__name__)


def _flag_given(argv: list[str], *flags: str) -> bool:
    return any(a in flags or any(a.startswith(f + "=") for f in flags if f.startswith("--")) for a in argv)


def complete_argv(argv: list[str], downstream_dirs: Iterable[str], environ=os.environ) -> list[str]:
    """Fill in the flags s3prl would otherwise get wrong here; an explicit flag always wins."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("-d", "--downstream")
    pre.add_argument("-c", "--config")
    pre.add_argument("-e", "--past_exp")
    pre.add_argument("-v", "--downstream_variant")
    pre.add_argument("--device", default="cuda")
    known, _ = pre.parse_known_args(argv)
    argv = list(argv)
    if "LOCAL_RANK" in environ and not _flag_given(argv, "--local_rank"):
        argv += ["--local_rank", environ["LOCAL_RANK"]]
    if known.device.startswith("cpu") and not _flag_given(argv, "--backend"):
        argv += ["--backend", "gloo"]
    if known.downstream and not known.config and not known.past_exp:
        name = default_config_name(known.downstream, known.downstream_variant)
        local = os.path.join("downstream", known.downstream, name)
        if name != "config.yaml" or not os.path.isfile(local):
            for directory in downstream_dirs:
                candidate = os.path.join(directory, known.downstream, name)
                if os.path.isfile(candidate):
                    argv += ["-c", candidate]
                    break
    return argv


def given_expdir(argv: list[str]) -> str | None:
    """The experiment folder a new run's flags name (``-p``, or ``-n`` under s3prl's ``result/downstream``);
    None when it comes from a checkpoint (``-e``) or is not given."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("-e", "--past_exp")
    pre.add_argument("-p", "--expdir")
    pre.add_argument("-n", "--expname")
    known, _ = pre.parse_known_args(argv)
    if known.past_exp:
        return None
    return known.expdir or (os.path.join("result", "downstream", known.expname) if known.expname else None)


#: the sections of a config: what s3prl's runner reads (``specaug`` optional)
CONFIG_SECTIONS = ("runner", "optimizer", "scheduler", "downstream_expert", "specaug")


def check_config(config: dict) -> None:
    """Refuse, before anything runs, a training config with an unknown section or key (naming the closest
    known one) or an unusable runner value; the experts check their own ``downstream_expert`` keys."""
    check_keys("the config", section("the config", config), CONFIG_SECTIONS)
    runner_config(config)
    _check_optimizer(section("optimizer", config.get("optimizer")))
    scheduler = section("scheduler", config.get("scheduler"))
    if scheduler:
        known = scheduler_keys(scheduler.get("name"))
        if known is not None:
            check_keys(f"scheduler ({scheduler['name']})", scheduler, known)


def _check_optimizer(optimizer: dict) -> None:
    """An s3prl optimizer name; for ``TorchOptim``, a torch optimizer and only the arguments it takes."""
    import s3prl.optimizers as optimizers

    names = sorted(n[len("get_") :] for n in dir(optimizers) if n.startswith("get_") and n != "get_optimizer")
    name = optimizer.get("name")
    if name not in names:
        close = difflib.get_close_matches(str(name), names, n=1)
        raise ConfigError(
            f"optimizer.name {name!r} is not an s3prl optimizer"
            + (f" (did you mean {close[0]!r}?)" if close else f"; choose from {', '.join(names)}")
        )
    if name != "TorchOptim":
        return
    torch_name = optimizer.get("torch_optim_name")
    cls = getattr(torch.optim, str(torch_name), None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        choices = [
            n
            for n in dir(torch.optim)
            if isinstance(getattr(torch.optim, n), type)
            and issubclass(getattr(torch.optim, n), torch.optim.Optimizer)
            and n != "Optimizer"
        ]
        close = difflib.get_close_matches(str(torch_name), choices, n=1)
        raise ConfigError(
            f"optimizer.torch_optim_name {torch_name!r} is not a torch.optim optimizer"
            + (f" (did you mean {close[0]!r}?)" if close else f"; choose from {', '.join(choices)}")
        )
    known = signature_keys(cls.__init__, skip=("self", "params"))
    if known is not None:
        check_keys(f"optimizer (torch.optim.{torch_name})", optimizer, known | {"name", "torch_optim_name"})


def default_config_name(downstream: str, variant: str | None) -> str:
    """The config file of ``-d downstream [-v variant]``: the registered variant's, else ``config.yaml``."""
    exp = registry.EXPERTS.get(downstream)
    if exp is None or variant is None:
        return "config.yaml"
    return exp.variant(variant).config


def per_process_batch(config: dict, world_size: int) -> int | None:
    """Each DDP process's share of ``datarc.train_batch_size``, the batch of one training step over all
    ``world_size`` processes (None when the config gives none); a :class:`ConfigError` when it does not divide."""
    total = ((config.get("downstream_expert") or {}).get("datarc") or {}).get("train_batch_size")
    if total is None:
        return None
    if int(total) % world_size:
        raise ConfigError(
            f"config.downstream_expert.datarc.train_batch_size={total} is the batch of one training step over all "
            f"{world_size} processes, and {world_size} does not divide it: give a multiple of {world_size}"
        )
    return int(total) // world_size


def make_runner_class():
    """:class:`PluginRunner`: s3prl's ``Runner`` with this toolkit's training loop (built on first use, so
    that importing this module does not import s3prl's runner)."""
    from s3prl.downstream.runner import ModelEntry, Runner
    from torch.distributed import get_world_size, is_initialized
    from torch.nn.parallel import DistributedDataParallel as DDP

    from .loop import ResumableTrainingMixin

    class PluginRunner(ResumableTrainingMixin, Runner):
        """s3prl's Runner with the training loop of :mod:`distilmos.train.loop` (the last step always
        counts, atomic checkpoints, preemption, exact resume; every rank stops after ``total_steps``), able
        to run DDP on CPU and to evaluate on one rank under DDP."""

        def _get_scheduler(self, optimizer):
            scheduler = super()._get_scheduler(optimizer)
            # Building a scheduler sets the optimizer's learning rates to those of step 0 (s3prl then
            # loads the scheduler's step counter, not the rates), so a resumed run would take its first
            # step at the wrong rate: put back the rates (and any other scheduled value) it was saved with.
            saved = (self.init_ckpt.get("Optimizer") or {}).get("param_groups")
            if saved:
                for group, state in zip(optimizer.param_groups, saved):
                    group.update({k: v for k, v in state.items() if k != "params"})
            return scheduler

        def _get_upstream(self):
            entry = super()._get_upstream()
            model = entry.model.module if isinstance(entry.model, DDP) else entry.model
            # told to the experts (_get_downstream): eval batches need no padding cap when it is set
            self.upstream_padding_exact = padding_exact.make_padding_exact(model)
            self.upstream_min_samples = padding_exact.min_samples(model)  # the experts' shortest clip
            if not self.upstream_padding_exact:
                cap = (
                    ""
                    if self._feature_cache()
                    else (f", so evaluation batches keep a {STRICT_MAX_PAD:g} padding cap (datarc.eval_max_pad auto)")
                )
                print(
                    f"[distilmos] upstream {self.args.upstream}: no padding-exact forward (only s3prl's WavLM, "
                    f"HuBERT and wav2vec 2.0 have one); its features may depend on batch padding{cap}",
                    file=sys.stderr,
                )
            return entry

        def _feature_cache(self) -> str | None:
            """``datarc.feature_cache`` of the run, if any."""
            return (self.config.get("downstream_expert") or {}).get("datarc", {}).get("feature_cache")

        def _get_featurizer(self):
            entry = super()._get_featurizer()  # built on the real upstream (its probe forward)
            upstream = self.upstream.model.module if isinstance(self.upstream.model, DDP) else self.upstream.model
            featurizer = entry.model.module if isinstance(entry.model, DDP) else entry.model
            padding_exact.cut_featurizer(featurizer, upstream)
            cache = self._feature_cache()
            if cache:
                store = cached.open_cache(
                    cache,
                    self.args.upstream,
                    self.args.upstream_ckpt,
                    featurizer.feature_selection,
                    featurizer.layer_selection,
                    bool(self.args.upstream_trainable),
                )
                # from here on the upstream is the cache: the datasets yield its hidden states
                self.upstream = ModelEntry(cached.upstream_for(store).to(self.args.device), "Upstream", False, [])
                cached.cut_featurizer(featurizer)
                # each utterance's cached features are its own, whatever else is in the batch
                self.upstream_padding_exact = True
                print(
                    f"[distilmos] upstream features from the cache {store.path} (layers {store.layers})",
                    file=sys.stderr,
                )
            return entry

        def _get_downstream(self):
            # What this runner does beyond s3prl's own, told to the experts as constructor keywords (s3prl
            # passes every arg as one) and taken out of the args again, so that no checkpoint carries them
            # to s3prl's own runner, which does none of it.
            told = {
                "plugin_runner": True,
                "upstream_padding_exact": self.upstream_padding_exact,
                "upstream_min_samples": self.upstream_min_samples,
                "train_batch_per_process": per_process_batch(self.config, get_world_size() if is_initialized() else 1),
            }
            vars(self.args).update(told)
            try:
                return super()._get_downstream()
            finally:
                for key in told:
                    vars(self.args).pop(key, None)

        def _init_model(self, model, name, trainable, interfaces=None):
            if not (is_initialized() and str(self.args.device).startswith("cpu")):
                return super()._init_model(model, name, trainable, interfaces)
            # CPU DDP: the same as s3prl's, but DDP takes no device ids for CPU modules.
            for interface in interfaces or []:
                assert hasattr(model, interface), interface
            self._load_weight(model, name)
            if trainable and any(p.requires_grad for p in model.parameters()):
                model = DDP(model, find_unused_parameters=True)
                for interface in interfaces or []:
                    setattr(model, interface, getattr(model.module, interface))
            return ModelEntry(model, name, trainable, interfaces)

        def evaluate(self, *args, **kwargs):
            # The runner evaluates on the leader rank only; a DDP-wrapped forward there would wait for
            # the other ranks to sync buffers (BatchNorm) and hang, so evaluate the bare modules.
            wrapped = [(e, e.model) for e in self.all_entries if isinstance(e.model, DDP)]
            for entry, model in wrapped:
                entry.model = model.module
            try:
                return super().evaluate(*args, **kwargs)
            finally:
                for entry, model in wrapped:
                    entry.model = model

    return PluginRunner


def _seed_everything(seed: int, disable_cudnn: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.enabled = not disable_cudnn
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


#: exit status of a run refused for a bad input (data list, token store, config value, upstream spec)
EXIT_INPUT_ERROR = 2


def main(downstream_dirs: Iterable[str], argv: list[str] = None) -> None:
    """``run_downstream.py``: :func:`run`, with an error about the user's input printed as one message
    (no traceback) and exit status :data:`EXIT_INPUT_ERROR`."""
    try:
        run(downstream_dirs, argv)
    except ToolkitError as exc:
        print(f"run_downstream.py: error: {error_message(exc)}", file=sys.stderr)
        sys.exit(EXIT_INPUT_ERROR)


def error_message(exc: BaseException) -> str:
    """The toolkit's own message of an error, also when a DataLoader worker raised it (PyTorch re-raises
    it in the main process with the worker's traceback text in front of the message)."""
    text = str(exc)
    marker = f"{type(exc).__module__}.{type(exc).__qualname__}: "
    if text.startswith("Caught ") and marker in text:
        text = text[text.rindex(marker) + len(marker) :]
    return text.strip()


def run(downstream_dirs: Iterable[str], argv: list[str] = None) -> None:
    """s3prl's ``run_downstream.py`` main, with this toolkit registered (see the module docstring);
    errors propagate."""
    logging.basicConfig(level=logging.INFO)
    downstream_dirs = [os.path.abspath(d) for d in downstream_dirs]
    register(downstream_dirs)

    from s3prl.run_downstream import get_downstream_args

    argv = complete_argv(sys.argv[1:] if argv is None else argv, downstream_dirs)
    given = given_expdir(argv)
    if given:  # before s3prl creates it: a folder that cannot be made is one message, not its traceback
        check_writable_dir(given, "experiment folder")
    saved_argv, sys.argv = sys.argv, [sys.argv[0]] + argv
    try:
        args, config, backup_files = get_downstream_args()
    finally:
        sys.argv = saved_argv

    if args.upstream is None:
        raise UpstreamSpecError("no upstream: give -u NAME (an s3prl hub name, NAME_local -k CKPT, or module:callable)")
    register_upstream(args.upstream)
    check_local_checkpoint(args.upstream, args.upstream_ckpt)
    check_writable_dir(args.expdir, "experiment folder")
    train_mode = args.mode == "train"
    if train_mode:
        check_config(config)
    # One training run per folder: the leader (rank 0) holds the lock, so the ranks of one run never
    # refuse each other; a refused leader exits, and torchrun stops the other ranks.
    leader = int(os.environ.get("RANK", "0") or 0) == 0
    with experiment_lock(args.expdir) if train_mode and leader else contextlib.nullcontext():
        _run(args, config, backup_files)


def _run(args, config: dict, backup_files: list[str]) -> None:
    from s3prl.utility.helper import get_time_tag, hack_isinstance, is_leader_process

    torch.multiprocessing.set_sharing_strategy("file_system")
    # s3prl wraps builtins.isinstance anew on each call; wrapping twice in one process (repeated in-process
    # runs) nests the wrappers and every isinstance gets slower.
    if getattr(builtins.isinstance, "__module__", None) != hack_isinstance.__module__:
        hack_isinstance()
    if args.cache_dir is not None:
        torch.hub.set_dir(args.cache_dir)
    if args.local_rank is not None:
        if str(args.device).startswith("cuda"):
            torch.cuda.set_device(args.local_rank)
        torch.distributed.init_process_group(args.backend)
    if args.hub == "huggingface":
        args.from_hf_hub = True  # the Hub token comes from the environment (HF_TOKEN), as huggingface_hub reads it

    if is_leader_process():
        tag = get_time_tag()
        with open(os.path.join(args.expdir, f"args_{tag}.yaml"), "w") as handle:
            yaml.dump(vars(args), handle)
        with open(os.path.join(args.expdir, f"config_{tag}.yaml"), "w") as handle:
            yaml.dump(config, handle)
        for path in backup_files:
            from s3prl.utility.helper import backup

            backup(path, args.expdir)

    _seed_everything(args.seed, args.disable_cudnn)
    # GELU tails and freshly initialised weights produce subnormal floats, which make CPU matmuls several
    # times slower; flushing them changes no result that matters and nothing on GPU.
    torch.set_flush_denormal(True)
    runner = make_runner_class()(args, config)
    getattr(runner, args.mode)()
