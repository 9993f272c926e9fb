"""MoE-MOS as an s3prl downstream expert: a mixture-of-experts head on the frozen upstream's weighted
layer sum, with MOS regression (Smooth L1) and synthesis-system classification (cross entropy over the
training list's ``system_id`` s), trained in three stages within one run.

The network is :class:`distilmos.models.moe_mos.MoEMOSModel`. The stage schedule (loss weights here,
learning rate in the ``MoEStageLR`` scheduler) is :mod:`distilmos.train.moe_schedule`, configured once in the
config's ``scheduler:`` section. The regularisers against expert collapse (``modelrc.load_balance_weight``,
``modelrc.sparsity_weight``) are in :mod:`distilmos.models.moe_mos`.

At every validation the expert logs expert usage (mean gate per expert), the mean gate entropy and the
system-classification accuracy (over utterances of systems seen in training) beside the MOS metrics, and
warns when one expert takes more than ``modelrc.collapse_threshold`` of the gate mass.
"""

import numpy as np
import torch
import torch.nn.functional as F

from distilmos.models.moe_mos import MoEMOSModel, gate_entropy, load_balance_loss, sparsity_loss
from distilmos.train.expert_base import TRAIN, MOSExpert
from distilmos.train.moe_schedule import SCHEDULER_NAME, StageSchedule


class DownstreamExpert(MOSExpert):
    """MoE-MOS: masked mean -> N expert MLPs mixed by a softmax gate -> MOS and system-class heads."""

    name = "moe_mos"
    MODELRC = {
        "n_experts": 4,
        "hidden_dim": 256,  # width of each expert MLP
        "dropout": 0.1,
        "classification": True,  # False: no system classification (MOS weight 1 throughout)
        "load_balance_weight": 0.1,
        "sparsity_weight": 0.01,
        "collapse_threshold": 0.9,  # warn when one expert takes more of the gate mass at a validation
        "smooth_l1_beta": 1.0,
    }

    def __init__(self, *args, scheduler: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        rc = self.modelrc
        runner = self.runner_config
        self.accumulate = int(runner.get("gradient_accumulate_steps") or 1)
        scheduler = scheduler or {}
        if scheduler.get("name") == SCHEDULER_NAME:
            self.schedule = StageSchedule.from_config(scheduler, int(runner.get("total_steps", 1)))
        else:  # another learning-rate schedule: the loss weights still follow the default stages
            print(
                f"[{self.name}] the scheduler is {scheduler.get('name')!r}, not {SCHEDULER_NAME}: the loss weights "
                "follow the default stages, the learning rate does not"
            )
            self.schedule = StageSchedule(int(runner.get("total_steps", 1)))
        self.classification = bool(rc["classification"])
        self.load_balance_weight = float(rc["load_balance_weight"])
        self.sparsity_weight = float(rc["sparsity_weight"])
        self.collapse_threshold = float(rc["collapse_threshold"])
        self.smooth_l1_beta = float(rc["smooth_l1_beta"])
        # the classes: every system of the training list (validated here, before any training step)
        classes = sorted({u.system_id for u in self.dataset(TRAIN).utterances})
        self.class_index = {name: i for i, name in enumerate(classes)}
        self.model = MoEMOSModel(
            self.upstream_dim,
            n_experts=int(rc["n_experts"]),
            hidden_dim=int(rc["hidden_dim"]),
            class_names=classes,
            dropout=float(rc["dropout"]),
        )
        # training forwards so far: the step when the runner does not pass one (a stock s3prl runner);
        # a buffer, so that it resumes with the checkpoint
        self.register_buffer("forward_count", torch.zeros((), dtype=torch.long))
        self._global_step: int | None = None
        self.preflight()

    # ---- training ---------------------------------------------------------------------------------
    def forward(self, split, features, batch, records, global_step: int | None = None, **kwargs):
        """s3prl interface; ``global_step`` (the 1-based step being trained, passed by this toolkit's
        training loop) picks the stage, its loss weights and nothing else."""
        if split == TRAIN and self.training:
            self.forward_count += 1
            self._global_step = (
                global_step if global_step is not None else int((self.forward_count.item() - 1) // self.accumulate) + 1
            )
        return super().forward(split, features, batch, records, **kwargs)

    def class_targets(self, systems) -> torch.Tensor:
        """Class index per utterance; -1 for a system absent from the training list (no classification loss)."""
        return torch.tensor([self.class_index.get(s, -1) for s in systems], dtype=torch.long)

    def losses(self, out, batch, lengths) -> dict[str, torch.Tensor]:
        point = self.schedule.at_global_step(self._global_step or 1)
        mos_w, cls_w = (point.mos_weight, point.cls_weight) if self.classification else (1.0, 0.0)
        pred = out["pred"]
        mos_loss = F.smooth_l1_loss(pred, batch.scores.to(pred.device), beta=self.smooth_l1_beta)
        targets = self.class_targets(batch.systems).to(pred.device)
        known = targets >= 0
        logits = out["system_logits"]
        cls_loss = F.cross_entropy(logits[known], targets[known]) if known.any() else logits.new_zeros(())
        gates = out["gates"]
        balance, sparsity = load_balance_loss(gates), sparsity_loss(gates)
        loss = (
            mos_w * mos_loss + cls_w * cls_loss + self.load_balance_weight * balance + self.sparsity_weight * sparsity
        )
        return {
            "mos_loss": mos_loss,
            "cls_loss": cls_loss,
            "load_balance": balance,
            "sparsity": sparsity,
            "mos_weight": torch.tensor(mos_w),
            "cls_weight": torch.tensor(cls_w),
            "stage": torch.tensor(float(point.stage)),
            "loss": loss,
        }

    # ---- validation -------------------------------------------------------------------------------
    def selectable(self, global_step: int) -> bool:
        """No best checkpoint from the classification pre-training: its MOS head is not trained yet (MOS
        weight 0), so a validation SRCC there ranks by chance and its MSE is that of an untrained head."""
        if not self.classification:
            return True
        return self.schedule.at_global_step(global_step).mos_weight > 0  # the step just trained

    def record_outputs(self, split, out, batch, records) -> None:
        records["gates"] += out["gates"].detach().cpu().tolist()
        targets = self.class_targets(batch.systems)
        guesses = out["system_logits"].detach().cpu().argmax(-1) if out["system_logits"].size(-1) else targets
        records["sys_correct"] += [float(g == t) for g, t in zip(guesses.tolist(), targets.tolist()) if t >= 0]

    def extra_metrics(self, split, records, global_step) -> dict[str, float]:
        """Expert usage (mean gate per expert), mean gate entropy (nats), system-classification accuracy
        over utterances of known systems (NaN when there are none) and their count."""
        gates = torch.tensor(records["gates"], dtype=torch.float64).reshape(-1, self.model.n_experts)
        usage = gates.mean(0) if len(gates) else torch.full((self.model.n_experts,), float("nan"))
        correct = records["sys_correct"]
        metrics = {f"expert_usage_{i}": float(u) for i, u in enumerate(usage)}
        metrics["gate_entropy"] = float(gate_entropy(gates).mean()) if len(gates) else float("nan")
        metrics["sys_acc"] = float(np.mean(correct)) if correct else float("nan")
        metrics["sys_acc_n"] = len(correct)
        print(
            f"[{self.name}] step {global_step} {split}: expert usage "
            + " ".join(f"{u:.3f}" for u in usage.tolist())
            + f", gate entropy {metrics['gate_entropy']:.3f}, system accuracy {metrics['sys_acc']:.3f} "
            f"({len(correct)} utterances of known systems)"
        )
        top = int(usage.argmax()) if len(gates) else 0
        if self.model.n_experts > 1 and len(gates) and usage[top] > self.collapse_threshold:
            print(
                f"[{self.name}] WARNING: expert {top} takes {100 * float(usage[top]):.1f}% of the gate mass on "
                f"{split} at step {global_step} (> {100 * self.collapse_threshold:g}%): the gate has collapsed "
                "onto one expert; raise modelrc.load_balance_weight"
            )
        return metrics
