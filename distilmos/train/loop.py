"""The training loop of the plugin runner: s3prl's loop, made so that training never loses work.

It runs what s3prl's ``Runner.train`` runs (same config keys, same checkpoint keys, same expert
interface: ``get_dataloader``, ``forward(split, features, *others, records=...)``, ``log_records``), and:

- **the last step always counts**: the final step validates and saves whatever ``eval_step`` and
  ``save_step`` are, so ``best-states-<split>.ckpt`` and a resumable ``states-<total_steps>.ckpt`` exist
  whenever training ends normally;
- **atomic checkpoints** (:mod:`distilmos.train.checkpoints`): written beside their place and renamed in, the
  checkpoints ``max_keep`` retires removed only after; the folder's free space is checked before the
  first step;
- **preemption** (:mod:`distilmos.train.preemption`): SIGTERM/SIGINT finish the step in flight, save, and exit
  with status 75; under ``torchrun`` every rank stops after the same step;
- **schedules by step**: an expert whose ``forward`` declares a ``global_step`` parameter receives the
  step being trained (1-based), so loss weights can follow the step and resume with it;
- **early stopping** (:class:`EarlyStopping`), for any expert;
- **exact resume**: a checkpoint carries every rank's RNG states and the position in the epoch's data
  order, and the data order resumes there (``get_dataloader(split, epoch=..., start_batch=...)`` when the
  expert offers it; otherwise the loader is read past the batches already trained on), so a run killed
  and resumed on the CPU ends with the same weights as one that never stopped (same thread count).
"""

from __future__ import annotations

import inspect
import itertools
import math
import os
import sys
from collections import defaultdict

import torch
from torch.distributed import get_rank, get_world_size, is_initialized
from tqdm import tqdm

from distilmos.errors import ConfigError, ToolkitError

from . import checkpoints, event_log
from .config_keys import check_keys, section, with_defaults
from .preemption import EXIT_PREEMPTED, StopRequest

#: a key of :data:`RUNNER` that a config must give
REQUIRED = object()

#: the config's ``runner`` section: every key this loop and s3prl's runner (``evaluate_ratio``) read, with
#: its default; a key that is not here is refused (:func:`runner_config`)
RUNNER = {
    "total_steps": REQUIRED,
    "gradient_clipping": REQUIRED,
    "log_step": REQUIRED,
    "eval_step": REQUIRED,
    "save_step": REQUIRED,
    "eval_dataloaders": REQUIRED,
    "gradient_accumulate_steps": 1,
    "max_keep": 1,
    "fp16": False,
    "train_dataloader": "train",
    "evaluate_ratio": 1,
    "early_stopping": None,  # see EarlyStopping
}
#: the keys of ``runner`` that count steps or checkpoints: whole numbers >= 1
POSITIVE_COUNTS = ("total_steps", "log_step", "eval_step", "save_step", "gradient_accumulate_steps", "max_keep")


def runner_config(config: dict) -> dict:
    """The config's ``runner`` section with the defaults of :data:`RUNNER` filled in; a
    :class:`~distilmos.errors.ConfigError` for an unknown or missing key, or a step count that is not a whole
    number >= 1, before anything runs."""
    rc = with_defaults("runner", config.get("runner"), RUNNER)
    missing = [key for key, value in rc.items() if value is REQUIRED]
    if missing:
        raise ConfigError(f"runner lacks {', '.join(missing)} (see downstream/<expert>/config.yaml)")
    for key in POSITIVE_COUNTS:
        value = rc[key]
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not whole or value < 1:
            raise ConfigError(f"runner.{key} must be a whole number >= 1, not {value!r}")
        rc[key] = int(value)
    clip = rc["gradient_clipping"]
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0:
        raise ConfigError(f"runner.gradient_clipping must be a number > 0 (the largest gradient norm), not {clip!r}")
    splits = rc["eval_dataloaders"]
    if not isinstance(splits, (list, tuple)) or not all(isinstance(s, str) for s in splits):
        raise ConfigError(f"runner.eval_dataloaders must be a list of split names, not {splits!r}")
    EarlyStopping.from_config(config)  # its keys and unit
    return rc


def _leader() -> bool:
    return not is_initialized() or get_rank() == 0


class ResumableTrainingMixin:
    """``train()`` for a subclass of s3prl's ``Runner`` (see the module docstring)."""

    def train(self):
        """s3prl's ``Runner.train`` (see the module docstring); a full disk anywhere in the experiment folder
        ends it with one :class:`~distilmos.train.checkpoints.CheckpointError`, the checkpoints written so far whole."""
        self._events, ended_well = None, False
        try:
            self._train()
            ended_well = True
        except OSError as exc:
            if isinstance(exc, ToolkitError) or exc.errno not in checkpoints.NO_SPACE:
                raise
            raise checkpoints.no_space(self.args.expdir, exc) from exc
        finally:
            if self._events is not None:  # after an error, quietly: its one message is what the user sees
                event_log.close(self._events, report=ended_well)

    def _train(self):  # noqa: C901 - one loop, kept in one place like s3prl's, so that it reads top to bottom
        rc = runner_config(self.config)
        total_steps = rc["total_steps"]
        accumulate = rc["gradient_accumulate_steps"]
        leader = _leader()
        device = torch.device(self.args.device)

        trainable_models, trainable_params = [], []
        for entry in self.all_entries:
            if entry.trainable:
                entry.model.train().to(device)
                trainable_models.append(entry.model)
                trainable_params += list(entry.model.parameters())
            else:
                entry.model.eval()

        amp = bool(rc["fp16"])
        scaler = torch.amp.GradScaler("cuda") if amp else None
        optimizer = self._get_optimizer(trainable_models)
        scheduler = self._get_scheduler(optimizer) if self.config.get("scheduler") else None
        specaug = None
        if self.config.get("specaug"):
            from s3prl.downstream.specaug import SpecAug

            specaug = SpecAug(**self.config["specaug"])

        step = int(self.init_ckpt.get("Step") or 0)
        epoch = int(self.init_ckpt.get("Epoch") or 0)
        batch_in_epoch = int(self.init_ckpt.get(checkpoints.BATCH_IN_EPOCH) or 0)
        rng = self.init_ckpt.get(checkpoints.RNG)
        if rng:
            rank = get_rank() if is_initialized() else 0
            checkpoints.set_rng_state(rng[rank] if rank < len(rng) else rng[0], device)

        logger = None
        if leader:
            checkpoints.remove_temporaries(self.args.expdir)
            checkpoints.check_space(self.args.expdir, checkpoints.estimate_bytes(trainable_models), rc["max_keep"])
            logger = self._events = event_log.open_writer(self.args.expdir)
        bar_file = sys.stderr if leader else open(os.devnull, "w")
        overall = tqdm(total=total_steps, initial=step, dynamic_ncols=True, desc="overall", file=bar_file)
        records = defaultdict(list)
        batch_ids: list[int] = []
        backward_steps = 0
        train_split = rc["train_dataloader"]

        early = EarlyStopping.from_config(self.config, self.init_ckpt.get(EarlyStopping.KEY))
        if early.stopped:
            print(f"[distilmos] this run stopped early at step {step}; nothing to resume", file=bar_file)
            total_steps = step
        steps_per_epoch = None
        # an expert whose forward takes `global_step` gets the step being trained (schedules by step)
        forward = getattr(self.downstream.model, "module", self.downstream.model).forward
        takes_step = "global_step" in inspect.signature(forward).parameters
        step_kwargs = (lambda n: {"global_step": n}) if takes_step else (lambda n: {})
        with StopRequest(device if device.type == "cuda" else None) as stop:
            while step < total_steps:
                dataloader = self._train_dataloader(train_split, epoch, batch_in_epoch)
                if steps_per_epoch is None:
                    steps_per_epoch = max(1, (batch_in_epoch + len(dataloader)) // accumulate)
                finished_epoch = True
                for batch_id, (wavs, *others) in enumerate(
                    tqdm(
                        dataloader,
                        dynamic_ncols=True,
                        desc="train",
                        file=bar_file,
                        initial=batch_in_epoch,
                        total=batch_in_epoch + len(dataloader) if hasattr(dataloader, "__len__") else None,
                    ),
                    start=batch_in_epoch,
                ):
                    if len(wavs) == 0:  # every utterance of the batch was unreadable and skipped
                        continue
                    wavs = [torch.as_tensor(wav, dtype=torch.float32).to(device) for wav in wavs]
                    with torch.autocast(device.type, enabled=amp):
                        features = self._features(wavs)
                        if specaug:
                            features, _ = specaug(features)
                        loss = self.downstream.model(
                            train_split, features, *others, records=records, **step_kwargs(step + 1)
                        )
                    batch_ids.append(batch_id)
                    loss = loss / accumulate
                    (scaler.scale(loss) if amp else loss).backward()
                    del loss
                    backward_steps += 1
                    if backward_steps % accumulate:
                        continue

                    if amp:
                        scaler.unscale_(optimizer)
                    grad_norm = torch.nn.utils.clip_grad_norm_(trainable_params, rc["gradient_clipping"])
                    if amp:
                        scaler.step(optimizer)
                        scaler.update()
                    elif math.isnan(grad_norm):
                        print(f"[Runner] - grad norm is NaN at step {step + 1}", file=bar_file)
                    else:
                        optimizer.step()
                    optimizer.zero_grad()
                    if scheduler:
                        scheduler.step()
                    step += 1
                    batch_in_epoch = batch_id + 1
                    overall.update(1)

                    last = step >= total_steps
                    save_names = []
                    validate = step % rc["eval_step"] == 0 or last  # known to every rank
                    if leader:
                        if step % rc["log_step"] == 0 or last:
                            self.downstream.model.log_records(
                                train_split,
                                records=records,
                                logger=logger,
                                global_step=step,
                                batch_ids=batch_ids,
                                total_batch_num=len(dataloader),
                            )
                            batch_ids, records = [], defaultdict(list)
                        if validate:
                            for split in rc["eval_dataloaders"]:
                                save_names += self.evaluate(split, logger, step)
                            early.validated(
                                step, any(n.startswith("best-states-") for n in save_names), steps_per_epoch
                            )
                    else:
                        batch_ids, records = [], defaultdict(list)
                    preempted, stop_early = stop.agreed(early.stop)  # a collective call under DDP
                    early.stopped = early.stopped or stop_early  # saved below: a resumed run stays stopped
                    save_states = step % rc["save_step"] == 0 or last or preempted or stop_early
                    # a collective call: every rank's RNG states go into a resumable checkpoint
                    rng_states = checkpoints.gather_rng_states(device) if save_states else None
                    if leader and (save_names or save_states):
                        if save_states:
                            save_names.append(f"states-{step}.ckpt")
                        self._save(
                            save_names,
                            optimizer,
                            scheduler,
                            step,
                            epoch,
                            batch_in_epoch,
                            rng_states or [checkpoints.rng_state(device)],
                            early,
                        )
                    if preempted:
                        if is_initialized():
                            torch.distributed.barrier()
                        overall.close()
                        print(
                            f"[distilmos] stopped after step {step} of {total_steps}; resume with the same command "
                            f"(or run_downstream.py -a -p {self.args.expdir})",
                            file=sys.stderr,
                            flush=True,
                        )
                        sys.exit(EXIT_PREEMPTED)
                    if stop_early:
                        print(
                            f"[distilmos] early stopping at step {step}: {early.describe(step)}",
                            file=sys.stderr,
                            flush=True,
                        )
                        total_steps = step
                        last = True
                    if last:
                        finished_epoch = False
                        break
                if finished_epoch:
                    epoch += 1
                    batch_in_epoch = 0

        overall.close()
        if self.args.push_to_hf_hub:
            self.push_to_huggingface_hub()

    # ---- pieces -------------------------------------------------------------------------------------
    def _features(self, wavs):
        """Upstream (under no_grad when frozen) then featurizer, as s3prl computes them."""
        if self.upstream.trainable:
            hidden = self.upstream.model(wavs)
        else:
            with torch.no_grad():
                hidden = self.upstream.model(wavs)
        return self.featurizer.model(wavs, hidden)

    def _train_dataloader(self, split: str, epoch: int, start_batch: int):
        """The epoch's training loader, positioned after its first ``start_batch`` batches."""
        get = self.downstream.model.get_dataloader
        params = inspect.signature(get).parameters
        if "start_batch" in params:
            return get(split, epoch=epoch, start_batch=start_batch)
        loader = get(split, epoch=epoch) if "epoch" in params else get(split)
        if "epoch" not in params and hasattr(getattr(loader, "sampler", None), "set_epoch"):
            loader.sampler.set_epoch(epoch)
        return loader if not start_batch else _Skipped(loader, start_batch)

    def _save(self, names, optimizer, scheduler, step, epoch, batch_in_epoch, rng_states, early) -> None:
        states = {
            "Optimizer": optimizer.state_dict(),
            "Step": step,
            "Epoch": epoch,
            "Args": self.args,
            "Config": self.config,
            checkpoints.BATCH_IN_EPOCH: batch_in_epoch,
            checkpoints.RNG: rng_states,
            EarlyStopping.KEY: early.state(),
        }
        from s3prl.utility.helper import get_model_state

        for entry in self.all_entries:
            if entry.trainable:
                states[entry.name] = get_model_state(entry.model)
        if scheduler:
            states["Scheduler"] = scheduler.state_dict()
        if is_initialized():
            states["WorldSize"] = get_world_size()
        written = []
        for name in names:
            path = os.path.join(self.args.expdir, name)
            tqdm.write(f"[Runner] - Save the checkpoint to: {path}")
            checkpoints.save(states, path)
            written.append(path)
        checkpoints.retire(self.args.expdir, runner_config(self.config)["max_keep"], keep=written)


class EarlyStopping:
    """Stop when validation has not improved the best score for ``patience`` epochs (or steps).

    Configured as ``runner.early_stopping`` (or ``downstream_expert.early_stopping``):
    ``{patience: 20, unit: epoch}``. An improvement is a validation after which the expert saved a
    ``best-states-*`` checkpoint (the expert's ``best_split`` / ``best_metric``). Its state (the step of
    the last improvement, whether it stopped) is saved in every checkpoint, so a resumed run counts on
    and a run that stopped early stays stopped.
    """

    KEY = "EarlyStopping"

    def __init__(self, patience: float = None, unit: str = "epoch", best_step: int = 0, stopped: bool = False):
        if unit not in ("epoch", "step"):
            raise ConfigError(f"early_stopping.unit must be epoch or step, not {unit!r}")
        if patience is not None and (
            isinstance(patience, bool) or not isinstance(patience, (int, float)) or not patience > 0
        ):
            raise ConfigError(
                f"early_stopping.patience must be a number > 0 (or left out: no early stopping), not {patience!r}"
            )
        self.patience, self.unit = patience, unit
        self.best_step, self.stopped = int(best_step), bool(stopped)
        self.stop = False  # decided at the latest validation (on the leader)
        self._steps_per_epoch = 1

    @classmethod
    def from_config(cls, config: dict, saved: dict = None) -> EarlyStopping:
        where = "runner" if (config.get("runner") or {}).get("early_stopping") else "downstream_expert"
        rc = section(f"{where}.early_stopping", (config.get(where) or {}).get("early_stopping"))
        check_keys(f"{where}.early_stopping", rc, ("patience", "unit"))
        return cls(rc.get("patience"), rc.get("unit", "epoch"), **(saved or {}))

    def validated(self, step: int, improved: bool, steps_per_epoch: int) -> None:
        self._steps_per_epoch = steps_per_epoch
        if improved:
            self.best_step = step
        if self.patience is not None:
            patience_steps = self.patience * (steps_per_epoch if self.unit == "epoch" else 1)
            self.stop = step - self.best_step >= patience_steps

    def describe(self, step: int) -> str:
        since = (step - self.best_step) / (self._steps_per_epoch if self.unit == "epoch" else 1)
        return (
            f"no improvement for {since:g} {self.unit}(s) (patience {self.patience:g}); the best checkpoint is "
            f"from step {self.best_step}"
        )

    def state(self) -> dict:
        return {"best_step": self.best_step, "stopped": self.stopped}


class _Skipped:
    """A loader read past its first ``n`` batches (for experts whose loaders cannot start elsewhere)."""

    def __init__(self, loader, n: int):
        self.loader, self.n = loader, n

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.n, None)

    def __len__(self) -> int:
        return max(0, len(self.loader) - self.n)
