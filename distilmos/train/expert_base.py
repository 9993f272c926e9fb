"""What every MOS expert of this toolkit shares with s3prl's runner: data splits, dataloaders, the
forward bookkeeping, metrics, best-checkpoint selection and the evaluation files.

A concrete expert (``downstream/<name>/expert.py``) subclasses :class:`MOSExpert`, keeps its inference model
as ``self.model`` (:meth:`MOSExpert.predict` runs it) and implements :meth:`MOSExpert.losses` (the training
objective). An expert trained by one regression loss on the averaged score (SSL-MOS, SALF-MOS) subclasses
:class:`RegressionExpert` instead and implements only :meth:`RegressionExpert.build_model`.

Splits: ``train``, ``val`` and ``test`` are ``<datarc.data_dir>/<split>.csv``; ``datarc.extra_eval`` maps
more names to CSV paths (e.g. ``somos_test: data/somos/test.csv``). The training split and the runner's
``eval_dataloaders`` are validated when the expert is built, before any training step; other splits when
first asked for. A clip too short for the upstream to give one frame (:meth:`MOSExpert.min_samples`) is a
bad row, or with ``datarc.skip_bad_audio`` left out and listed in ``skipped_audio.txt``.

Config: ``downstream_expert`` holds ``datarc`` (:attr:`MOSExpert.DATARC`, shared by every expert), ``modelrc``
(each expert's ``MODELRC``), ``variant`` and ``early_stopping``; the defaults there are the only keys
read, so a key that is not among them (a misspelling) is refused when the expert is built, naming the
closest valid one.

Rating options, for every expert (``modelrc.listener`` and ``modelrc.uncertainty``, :data:`RATING_MODELRC`;
the model is wrapped in :class:`~distilmos.models.rating_head.RatingHead`):

- ``listener: {enabled: true, dim: 32, weight: 1.0}``: listener-aware training as LDNet's "all listeners + mean
  listener": the training split's listener list (``<data_dir>/train_listeners.csv``, written by the corpus
  readers) gives each utterance its ratings; each step runs the model once per utterance as the mean
  listener (the expert's own loss, on the averaged score) and once per rating as its listener (MSE on the
  rating, or Gaussian NLL with ``uncertainty``; times ``weight``; ``ratings_per_step: N`` takes a new random N
  of each utterance's ratings every step instead of all of them). Listener embeddings live in the expert
  (``listener_table``, training only); inference, evaluation and export use the mean listener, and a listener
  not seen in training maps to it.
- ``uncertainty: true``: the model also predicts a log-variance per utterance; the Gaussian NLL of the averaged
  score is added to the loss (and of each rating in the listener branch). Evaluation records ``std``: the
  metrics gain ``std_err_LCC``/``std_err_SRCC`` (predicted std against the absolute error) and a calibration
  plot ``calibration_<split>.png``; ``predictions_<split>.csv`` gains ``pred_std``.

Outputs: tensorboard scalars and ``log.jsonl`` (one line per logged step); ``best-states-<best_split>.ckpt``
whenever ``best_metric`` on that split improves; and, for ``run_downstream.py -m evaluate -t SPLIT``,
``metrics_SPLIT.json`` and ``predictions_SPLIT.csv`` in the experiment folder.
"""

from __future__ import annotations

import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from distilmos.data.audio import SAMPLE_RATE
from distilmos.data.batching import AUTO, max_pad_setting, resolve_max_pad
from distilmos.data.datalist import (
    DEFAULT_MIN_SECONDS,
    LISTENER_COLUMN,
    listener_list_path,
    read_datalist,
    read_listener_list,
)
from distilmos.data.dataset import MOSBatch, MOSDataset, eval_loader, train_loader
from distilmos.errors import ConfigError
from distilmos.eval import results
from distilmos.eval.metrics import METRIC_KEYS, compute_metrics, uncertainty_metrics
from distilmos.fileio import atomic_write
from distilmos.models.rating_head import RatingHead
from distilmos.registry import DATARC_DEFAULTS

from . import config_keys
from .loop import EarlyStopping
from .plugin import register_schedulers

# An expert's config may name OneCycleLR or MoEStageLR: they must resolve under a stock s3prl runner too, which
# imports the expert (hence this module) before it builds the scheduler.
register_schedulers()

TRAIN = "train"
#: the files ``datarc.skip_bad_audio`` left out, one message (data list row, file, reason) per line
SKIPPED_AUDIO = "skipped_audio.txt"
#: ``downstream_expert.modelrc`` keys every expert takes beside its own (see the module docstring)
RATING_MODELRC: dict[str, object] = {"listener": None, "uncertainty": False}
#: ``downstream_expert.modelrc.listener``: listener-aware training
LISTENER_DEFAULTS: dict[str, object] = {
    "enabled": False,
    "dim": 32,  # listener embedding size
    "weight": 1.0,  # of the listener branch's loss beside the mean listener's
    "ratings_per_step": 0,  # ratings of each utterance a step trains the listener branch on (0: all of them)
}


class MOSExpert(nn.Module):
    """Base class of the s3prl downstream experts of this toolkit (see the module docstring)."""

    #: tensorboard tag prefix
    name = "mos"

    #: ``downstream_expert.datarc``: every key the experts read, with its default; another key is refused
    DATARC = {
        "data_dir": None,  # train.csv, val.csv, test.csv
        "extra_eval": None,  # {split: path/to.csv}
        "token_store": None,  # read by the distilmos variant; the recipes pass it to every expert
        "feature_cache": None,  # a frozen upstream's hidden states (distilmos.upstream.cached)
        "train_batch_size": None,  # the batch of one step over all processes: each expert's config gives it
        **DATARC_DEFAULTS,  # evaluation batches, loader workers, best checkpoint (read by the predictor's export too)
        "eval_max_pad": AUTO,
        "skip_bad_audio": False,
        "min_seconds": None,  # shortest clip when the upstream's own minimum is unknown (default: 25 ms)
    }
    #: ``downstream_expert.modelrc`` of the expert, with its defaults (each expert declares its own)
    MODELRC: dict[str, object] = dict(RATING_MODELRC)
    #: the keys of ``downstream_expert`` itself
    SECTIONS = ("datarc", "modelrc", "variant", "early_stopping")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # every expert takes the rating options and the keys of the expert it extends, beside its own
        cls.MODELRC = {**super(cls, cls).MODELRC, **vars(cls).get("MODELRC", {})}

    def __init__(
        self,
        upstream_dim: int,
        downstream_expert: dict,
        expdir: str,
        runner: dict = None,
        seed: int = 1337,
        upstream_padding_exact: bool = False,
        upstream_min_samples: int = None,
        plugin_runner: bool = False,
        train_batch_per_process: int | None = None,
        mode: str = "train",
        **kwargs,
    ):
        super().__init__()
        self.upstream_dim = upstream_dim
        self.runner_config = runner or {}  # the config's runner section
        # All told by this toolkit's runner (distilmos.train.runner) only, never saved with a checkpoint's args:
        # under s3prl's own runner the upstream runs as s3prl builds it (an older checkpoint's stale
        # upstream_padding_exact is ignored there), and evaluation keeps a padding cap.
        self.plugin_runner = bool(plugin_runner)
        self.upstream_padding_exact = bool(upstream_padding_exact) and self.plugin_runner
        # The upstream's receptive field, when this toolkit's runner knows the front end
        self.upstream_min_samples = upstream_min_samples if self.plugin_runner else None
        # this process's share of datarc.train_batch_size under DDP (s3prl's own runner: all of it)
        self.train_batch_per_process = train_batch_per_process if self.plugin_runner else None
        self.expdir = expdir
        self.seed = seed
        # Unknown keys are refused before training; evaluating an older run's checkpoint only warns.
        strict = mode == "train"
        downstream_expert = config_keys.with_defaults(
            "downstream_expert", downstream_expert, dict.fromkeys(self.SECTIONS), strict
        )
        self.datarc = config_keys.with_defaults(
            "downstream_expert.datarc", downstream_expert["datarc"], self.DATARC, strict
        )
        self.modelrc = config_keys.with_defaults(
            "downstream_expert.modelrc", downstream_expert["modelrc"], self.MODELRC, strict
        )
        self.listener_rc = _listener_settings(self.modelrc["listener"], strict)
        self.uncertainty = _flag("downstream_expert.modelrc.uncertainty", self.modelrc["uncertainty"])
        self.listener_ids: dict[str, int] = {}  # training listeners -> row of listener_table (listener mode)
        if not self.plugin_runner:
            _refuse_plugin_features(self.datarc, self.runner_config, downstream_expert, mode)
        self.best_split = self.datarc["best_split"]
        self.best_metric = self.datarc["best_metric"]
        # a buffer, so that a resumed run (-e) remembers the best score so far
        self.register_buffer("best_score", torch.tensor(-math.inf))
        self._datasets: dict[str, MOSDataset] = {}
        self._feature_cache = None  # datarc.feature_cache, opened on first use
        self._skipped: dict[str, None] = {}  # unreadable audio left out (datarc.skip_bad_audio), in order
        self._preflight_splits = [TRAIN] + list(self.runner_config.get("eval_dataloaders", []))

    # ---- data -------------------------------------------------------------------------------------
    def split_paths(self) -> dict[str, str]:
        """Every known split name and its data list CSV."""
        data_dir = self.datarc["data_dir"]
        paths = {s: os.path.join(data_dir, f"{s}.csv") for s in (TRAIN, "val", "test")} if data_dir else {}
        paths.update(self.datarc["extra_eval"] or {})
        return paths

    def preflight(self) -> None:
        """Validate the training and validation data (and whatever the variant needs) up front.

        Subclasses call this at the end of ``__init__``, once they have built ``self.model`` and can build
        their datasets; it first applies the rating options (:meth:`apply_rating_options`).
        """
        self.apply_rating_options()
        self.eval_max_pad()  # a bad datarc.eval_max_pad fails now, not at the first evaluation
        for split in self._preflight_splits:
            self.dataset(split)

    def dataset(self, split: str) -> MOSDataset:
        """The dataset of a split, validated and cached."""
        if split not in self._datasets:
            paths = self.split_paths()
            if split not in paths:
                raise ConfigError(
                    f"unknown split {split!r}; known: {', '.join(paths) or 'none (set datarc.data_dir)'}"
                    " (add more with datarc.extra_eval: {name: path/to.csv})"
                )
            skip = bool(self.datarc.get("skip_bad_audio", False))
            skipped = [] if skip else None
            utterances = read_datalist(
                paths[split], require_score=True, min_samples=self.min_samples(), skipped=skipped
            )
            if skipped:
                self._report_skipped(skipped)
            dataset = self.make_dataset(split, utterances)
            dataset.skip_bad_audio = skip
            if split == TRAIN and self.listener_rc["enabled"]:
                dataset.ratings = self._listener_ratings(paths[split], utterances)
            if self.datarc["feature_cache"]:
                dataset.use_feature_cache(self._feature_store(), split)
            self._datasets[split] = dataset
        return self._datasets[split]

    # ---- rating options (listener-aware training, uncertainty) ---------------------------------------
    def apply_rating_options(self) -> None:
        """Wrap ``self.model`` in a :class:`~distilmos.models.rating_head.RatingHead` when ``modelrc.listener``
        or ``modelrc.uncertainty`` asks for it (once), and build the training listeners' embedding table."""
        listener = bool(self.listener_rc["enabled"])
        if not (listener or self.uncertainty) or isinstance(self.model, RatingHead):
            return
        dim = int(self.listener_rc["dim"]) if listener else 0
        utterance_dim = _utterance_dim(self.model, self.upstream_dim) if self.uncertainty else 0
        self.model = RatingHead(self.model, dim, utterance_dim, self.upstream_dim)
        if listener:
            ratings = self._read_listener_list()
            self.listener_ids = {name: i for i, name in enumerate(sorted({u.extra[LISTENER_COLUMN] for u in ratings}))}
            # training only (not under model.): an exported model knows the mean listener alone
            self.listener_table = nn.Embedding(len(self.listener_ids), dim)

    def _read_listener_list(self):
        path = listener_list_path(self.split_paths()[TRAIN])
        if not os.path.isfile(path):
            raise ConfigError(
                f"modelrc.listener.enabled needs the training split's listener ratings, {path}: no such file. The "
                "corpus readers write it beside train.csv when the corpus names each rating's listener "
                "(python -m distilmos.corpora --list marks them [listeners]); prepare the data again, or turn "
                "listener-aware training off: -o config.downstream_expert.modelrc.listener.enabled=False"
            )
        if getattr(self, "_listener_list", None) is None:
            self._listener_list = read_listener_list(path)
        return self._listener_list

    def _listener_ratings(self, csv_path: str, utterances) -> dict[str, list[tuple[str, float]]]:
        """``{sample_id: [(listener_id, rating)]}`` of the training utterances, from the listener list."""
        ratings: dict[str, list[tuple[str, float]]] = {}
        for utt in self._read_listener_list():
            ratings.setdefault(utt.sample_id, []).append((utt.extra[LISTENER_COLUMN], utt.score))
        listed = {u.sample_id for u in utterances}
        unrated = len(listed - set(ratings))
        if unrated:
            print(
                f"[{self.name}] {unrated} of {len(listed)} training utterances have no listener ratings in "
                f"{listener_list_path(csv_path)}: they train the mean listener only"
            )
        return {k: v for k, v in ratings.items() if k in listed}

    def listener_embeddings(self, listener_ids: list[str], device=None) -> torch.Tensor:
        """``[n, dim]`` embeddings of listeners by id; one not seen in training gets the mean listener's."""
        mean = self.model.mean_listener
        index = torch.tensor([self.listener_ids.get(name, -1) for name in listener_ids], device=mean.device)
        known = index >= 0
        table = self.listener_table(index.clamp_min(0))
        return torch.where(known.unsqueeze(-1), table, mean.expand_as(table)).to(device or mean.device)

    def _listener_forward(self, padded: torch.Tensor, lengths: torch.Tensor, batch: MOSBatch):
        """One forward over the batch as the mean listener (rows ``[:batch]``) and over every rating of it as
        its listener (the rest); returns ``(mean-listener outputs, listener outputs, ratings)``."""
        owners, names, scores = [], [], []
        per_step = int(self.listener_rc["ratings_per_step"])
        for i, ratings in enumerate(batch.ratings or [[] for _ in batch.sample_ids]):
            if 0 < per_step < len(ratings):
                # a new draw every step, from torch's seeded generator (which checkpoints keep: a resumed run
                # draws what the whole run would have)
                ratings = [ratings[j] for j in torch.randperm(len(ratings))[:per_step].tolist()]
            for name, score in ratings:
                owners.append(i)
                names.append(name)
                scores.append(score)
        n = padded.size(0)
        rows = torch.cat([torch.arange(n), torch.tensor(owners, dtype=torch.long)]).to(padded.device)
        listener = torch.cat([self.model.mean_listener.expand(n, -1), self.listener_embeddings(names, padded.device)])
        out = self.model(padded[rows], lengths[rows], listener=listener)
        first = {k: v[:n] if torch.is_tensor(v) and v.dim() and v.size(0) == len(rows) else v for k, v in out.items()}
        rest = {k: v[n:] for k, v in out.items() if torch.is_tensor(v) and v.dim() and v.size(0) == len(rows)}
        return first, rest, torch.tensor(scores, dtype=padded.dtype, device=padded.device)

    def _rating_terms(self, out, listener_out, ratings, batch: MOSBatch) -> dict[str, torch.Tensor]:
        """The rating options' loss terms (added to the expert's ``loss``)."""
        terms = {}
        if self.uncertainty:
            target = batch.scores.to(out["pred"].device)
            terms["mos_nll"] = F.gaussian_nll_loss(out["pred"], target, out["std"] ** 2)
        if listener_out is not None and len(ratings):
            pred = listener_out["pred"]
            if self.uncertainty:
                terms["listener_nll"] = F.gaussian_nll_loss(pred, ratings, listener_out["std"] ** 2)
            else:
                terms["listener_mse"] = F.mse_loss(pred, ratings)
        return terms

    def min_samples(self) -> int:
        """The shortest clip (16 kHz samples) a data list may hold: the upstream's receptive field when the
        runner knows it (s3prl's WavLM / HuBERT / wav2vec 2.0: 400), raised to ``datarc.min_seconds`` if that
        is longer; else ``datarc.min_seconds`` (default 0.025 s: 400 samples). A shorter clip gives the
        upstream no frame to predict from."""
        value = self.datarc.get("min_seconds")
        if value is not None:
            try:
                value = float(value)
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value) or value < 0:
                raise ConfigError(
                    f"datarc.min_seconds: {self.datarc['min_seconds']!r} is not a number of seconds "
                    f">= 0 (default {DEFAULT_MIN_SECONDS})"
                )
        known = self.upstream_min_samples or 0
        configured = None if value is None else math.ceil(value * SAMPLE_RATE)
        if configured is None:
            configured = 0 if known else math.ceil(DEFAULT_MIN_SECONDS * SAMPLE_RATE)
        return max(known, configured)

    def make_dataset(self, split: str, utterances) -> MOSDataset:
        """Build the dataset of a split; subclasses add tokens or waveforms for training."""
        return MOSDataset(utterances)

    def get_dataloader(self, split: str, epoch: int = 0, start_batch: int = 0):
        """s3prl interface: shuffled training batches (from the epoch's ``start_batch``-th on, for an exact
        resume), or length-bucketed evaluation batches."""
        dataset = self.dataset(split)
        workers = int(self.datarc["num_workers"])
        if split == TRAIN:
            return train_loader(dataset, self.train_batch_size(), workers, self.seed, epoch, start_batch)
        return eval_loader(
            dataset,
            int(self.datarc["eval_batch_size"]),
            float(self.datarc["eval_max_seconds"]),
            workers,
            self.eval_max_pad(),
        )

    def train_batch_size(self) -> int:
        """This process's training batch. ``datarc.train_batch_size`` (the config's; no default) is the batch of
        one training step over all processes: this toolkit's runner gives each of N DDP processes 1/N of it
        (``train_batch_per_process``), s3prl's own runner gives each process all of it, as s3prl does."""
        if self.train_batch_per_process is not None:
            return int(self.train_batch_per_process)
        if self.datarc.get("train_batch_size") is None:
            raise ConfigError(
                "downstream_expert.datarc.train_batch_size is not set: give the training batch (over all processes) "
                "in the config, or -o config.downstream_expert.datarc.train_batch_size=N"
            )
        return int(self.datarc["train_batch_size"])

    def eval_max_pad(self):
        """The evaluation batches' padding cap (``datarc.eval_max_pad``: ``auto``, the default, ``none`` or a
        fraction): ``auto`` sets none for a padding-exact upstream, else
        :data:`distilmos.data.batching.STRICT_MAX_PAD`."""
        return resolve_max_pad(max_pad_setting(self.datarc["eval_max_pad"]), self.upstream_padding_exact)

    def _feature_store(self):
        """The run's feature cache (``datarc.feature_cache``), opened once; the runner checks it matches."""
        if self._feature_cache is None:
            from distilmos.data.stores import FeatureStore

            self._feature_cache = FeatureStore(self.datarc["feature_cache"])
        return self._feature_cache

    # ---- model interface for subclasses ---------------------------------------------------------------
    def predict(self, features: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """Inference path: ``features [batch, frames, upstream_dim]`` -> dict with ``pred [batch]``; by default
        the expert's inference model, ``self.model`` (the one a predictor file keeps)."""
        return self.model(features, lengths)

    def losses(self, out: dict[str, torch.Tensor], batch: MOSBatch, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training objective: a dict of named scalar terms, ``loss`` being the one to minimise."""
        raise NotImplementedError

    # ---- s3prl interface ----------------------------------------------------------------------------
    def forward(self, split: str, features: list[torch.Tensor], batch: MOSBatch, records, **kwargs):
        """s3prl interface: the training loss, or 0 after recording predictions on an evaluation split."""
        if batch.skipped:
            self._report_skipped(batch.skipped)
        device = features[0].device
        lengths = torch.tensor([len(f) for f in features], device=device)
        padded = pad_sequence(features, batch_first=True)
        train = split == TRAIN and self.training
        listener_out, ratings = None, None
        if train and self.listener_rc["enabled"]:
            out, listener_out, ratings = self._listener_forward(padded, lengths, batch)
        else:
            out = self.predict(padded, lengths)
        if train:
            terms = self.losses(out, batch, lengths)
            extra = self._rating_terms(out, listener_out, ratings, batch)
            weight = float(self.listener_rc["weight"])
            for key, value in extra.items():
                terms["loss"] = terms["loss"] + (weight * value if key.startswith("listener_") else value)
            terms.update(extra)
            for key, value in terms.items():
                records[key].append(value.item())
            return terms["loss"]
        records["pred"] += out["pred"].detach().cpu().tolist()
        records["score"] += batch.scores.tolist()
        records["system"] += batch.systems
        records["sample_id"] += batch.sample_ids
        if "std" in out:
            records["std"] += out["std"].detach().cpu().tolist()
        self.record_outputs(split, out, batch, records)
        return torch.zeros((), device=device)

    def record_outputs(self, split: str, out: dict[str, torch.Tensor], batch: MOSBatch, records) -> None:
        """Hook: keep more of an evaluation batch's outputs in ``records`` (under keys of the subclass's own)."""

    def extra_metrics(self, split: str, records, global_step: int) -> dict[str, float]:
        """Hook: more metrics of an evaluation split, from the records; logged, saved and written beside
        the MOS metrics (``log.jsonl``, tensorboard, ``metrics_<split>.json``)."""
        return {}

    def selectable(self, global_step: int) -> bool:
        """Hook: whether a validation at ``global_step`` may become the best checkpoint (an expert whose
        training does not yet fit MOS at that step, such as a pre-training stage, says no)."""
        return True

    def log_records(self, split: str, records, logger, global_step: int, **kwargs) -> list[str]:
        """s3prl interface: log losses or metrics; return the checkpoint names to save."""
        if "pred" not in records:  # training losses (`-m evaluate -t train` records predictions instead)
            means = {key: sum(values) / len(values) for key, values in records.items() if values}
            for key, value in means.items():
                logger.add_scalar(f"{self.name}/{split}-{key}", value, global_step)
            self._append_log(split, global_step, means)
            return []
        metrics = compute_metrics(records["score"], records["pred"], records["system"])
        if records.get("std"):
            metrics.update(uncertainty_metrics(records["score"], records["pred"], records["std"]))
        extra = self.extra_metrics(split, records, global_step)
        metrics.update(extra)
        for key in list(METRIC_KEYS) + [k for k in metrics if k.startswith("std_")] + list(extra):
            if math.isfinite(metrics[key]):
                logger.add_scalar(f"{self.name}/{split}-{key}", metrics[key], global_step)
        if global_step == 0:  # s3prl's `-m evaluate`: not during training
            self.write_results(split, metrics, records)
            return []
        self._append_log(split, global_step, metrics)
        save = []
        if (
            split == self.best_split
            and self.selectable(global_step)
            and metrics[self.best_metric] > self.best_score.item()
        ):
            self.best_score.fill_(metrics[self.best_metric])
            save.append(f"best-states-{split}.ckpt")
            self.write_results(f"{split}_best", dict(metrics, step=global_step), records)
        print(f"[{self.name}] step {global_step} {split}: " + _summary(metrics))
        if self._skipped:
            print(
                f"[{self.name}] {len(self._skipped)} audio file(s) skipped so far (unreadable or too short): "
                f"{os.path.join(self.expdir, SKIPPED_AUDIO)}"
            )
        return save

    def _report_skipped(self, messages: list[str]) -> None:
        """Name each newly skipped file once (unreadable, or too short for the upstream), and keep the list in
        ``<expdir>/skipped_audio.txt``."""
        new = [m for m in messages if m not in self._skipped]
        if not new:
            return
        for message in new:
            self._skipped[message] = None
            print(f"[{self.name}] skipped audio: {message}")
        with atomic_write(os.path.join(self.expdir, SKIPPED_AUDIO)) as handle:
            handle.write("".join(f"{m}\n" for m in self._skipped))

    def _append_log(self, split: str, step: int, values: dict[str, float]) -> None:
        """One JSON line per logging event in ``<expdir>/log.jsonl``: training curves without tensorboard."""
        record = {"split": split, "step": step}
        record.update({k: (v if math.isfinite(v) else None) for k, v in values.items()})
        with open(os.path.join(self.expdir, "log.jsonl"), "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def write_results(self, split: str, metrics: dict[str, float], records) -> None:
        """``metrics_<split>.json`` and ``predictions_<split>.csv`` in the experiment folder (atomically)."""
        rows = zip(records["sample_id"], records["system"], records["score"], records["pred"])
        metrics_path, _ = results.write_results(self.expdir, split, metrics, rows, stds=records.get("std") or None)
        print(f"[{self.name}] {split}: " + _summary(metrics) + f" -> {metrics_path}")


#: ``downstream_expert.modelrc.loss`` of a :class:`RegressionExpert`
REGRESSION_LOSSES = {"l1": F.l1_loss, "mse": F.mse_loss}


class RegressionExpert(MOSExpert):
    """An expert trained by one regression loss on the averaged score, the one ``modelrc.loss`` names
    (:data:`REGRESSION_LOSSES`; L1 by default, as SSL-MOS and SALF-MOS train). A subclass gives its model
    (:meth:`build_model`) and its own ``MODELRC`` keys."""

    MODELRC = {"loss": "l1"}  # or mse

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        loss = self.modelrc["loss"]
        if loss not in REGRESSION_LOSSES:
            raise ConfigError(
                f"unknown {self.name} loss {loss!r} in downstream_expert.modelrc.loss; "
                f"choose from {', '.join(REGRESSION_LOSSES)}"
            )
        self.loss_fn = REGRESSION_LOSSES[loss]
        self.model = self.build_model(**kwargs)
        self.preflight()

    def build_model(self, **kwargs) -> nn.Module:
        """The inference model on ``self.upstream_dim``-dim features. ``kwargs`` are the runner's keyword
        arguments (``upstream_feature_selection``, ``upstream_trainable``, ...), to refuse a run the model is
        not defined for."""
        raise NotImplementedError

    def losses(self, out: dict[str, torch.Tensor], batch: MOSBatch, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = self.loss_fn(out["pred"], batch.scores.to(out["pred"].device))
        return {"mos_loss": loss, "loss": loss}


#: where the features that s3prl's own runner lacks are (named in its refusals)
PLUGIN_RUNNER = "the DistilMOS toolkit's run_downstream.py (at the top of its checkout)"


def _refuse_plugin_features(datarc: dict, runner: dict, downstream_expert: dict, mode: str) -> None:
    """Under s3prl's own runner, refuse the config features only this toolkit's runner carries out, which
    s3prl's would otherwise ignore or get wrong without a word."""
    if datarc.get("feature_cache"):
        raise ConfigError(
            f"datarc.feature_cache={datarc['feature_cache']} needs {PLUGIN_RUNNER}, which reads the upstream's "
            "hidden states from the cache in place of running the upstream; s3prl's own runner would feed the "
            "cached features to the upstream as audio. Run the toolkit's run_downstream.py, or drop the cache: "
            "-o config.downstream_expert.datarc.feature_cache=None"
        )
    early = EarlyStopping.from_config({"runner": runner, "downstream_expert": downstream_expert})
    if mode == "train" and early.patience is not None:
        total = runner.get("total_steps")
        raise ConfigError(
            f"runner.early_stopping (patience {early.patience:g} {early.unit}s) needs {PLUGIN_RUNNER}; s3prl's "
            f"own runner ignores it and would train all runner.total_steps ({total}). Run the toolkit's "
            "run_downstream.py, or give s3prl's runner a fixed length: "
            '-o "config.runner.early_stopping=None,,config.runner.total_steps=N"'
        )


def _listener_settings(given, strict: bool) -> dict:
    """``modelrc.listener`` with its defaults, checked (a bare ``true``/``false`` means ``enabled``)."""
    if isinstance(given, bool):
        given = {"enabled": given}
    rc = config_keys.with_defaults("downstream_expert.modelrc.listener", given, LISTENER_DEFAULTS, strict)
    rc["enabled"] = _flag("downstream_expert.modelrc.listener.enabled", rc["enabled"])
    for key, lowest in (("dim", 1), ("weight", 0), ("ratings_per_step", 0)):
        value = rc[key]
        kind = "number" if key == "weight" else "whole number"
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not value >= lowest
            or (kind == "whole number" and value != int(value))
        ):
            raise ConfigError(
                f"downstream_expert.modelrc.listener.{key}: {value!r} is not a {kind} >= {lowest} "
                f"(default {LISTENER_DEFAULTS[key]})"
            )
    return rc


def _flag(key: str, value) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: {value!r} is not true or false")
    return value


def _utterance_dim(model: nn.Module, upstream_dim: int) -> int:
    """The size of ``model``'s pooled ``utterance`` output (what the uncertainty head reads), from a probe."""
    training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            out = model(torch.zeros(1, 8, upstream_dim), torch.tensor([8]))
    finally:
        model.train(training)
    if "utterance" not in out:
        raise ConfigError(f"{type(model).__name__} gives no pooled utterance vector: modelrc.uncertainty needs one")
    return int(out["utterance"].shape[-1])


def _summary(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={metrics[k]:.3f}" for k in METRIC_KEYS)
