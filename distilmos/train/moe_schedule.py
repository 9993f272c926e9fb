"""MoE-MOS's three-stage training schedule, as a pure function of the step.

Within one run of ``total_steps`` optimizer steps (stage boundaries are fractions of it, ``stages: [b1, b2]``):

1. steps ``[0, b1·T)``: classification pre-training, MOS:classification weights ``pretrain_weights``
   (0:1), learning rate ``lr_scale[0]`` × the optimizer's lr (1e-4 with the default config);
2. steps ``[b1·T, b2·T)``: joint training, the weights annealed linearly from ``joint_weights[0]``
   (0.3:0.7) to ``joint_weights[1]`` (0.7:0.3), lr ``lr_scale[1]`` × lr;
3. steps ``[b2·T, T)``: MOS fine-tuning at ``finetune_weights`` (0.9:0.1), lr ``lr_scale[2]`` × lr (1e-5).

Within each stage the learning rate follows a cosine from the stage's peak down to ``min_lr_ratio`` of it.

Everything is computed from the step alone (no state), so a run resumed from a checkpoint continues in
the right stage with the right weights and learning rate. Steps are 0-based optimizer step indices: the
training loop's ``global_step`` (1-based, the step being trained) is step ``global_step - 1``, and the
learning-rate scheduler's counter after ``k`` ``scheduler.step()`` calls is the step ``k`` about to run.

The schedule is configured once, in the ``scheduler:`` section of the config (``name: MoEStageLR``):
the learning-rate scheduler (:func:`distilmos.train.schedulers.get_MoEStageLR`) and the expert (loss weights)
both read it from there, so they cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from distilmos.errors import ConfigError

from .config_keys import check_keys, signature_keys

#: the scheduler name of the stage schedule in a config's ``scheduler:`` section
SCHEDULER_NAME = "MoEStageLR"


@dataclass(frozen=True)
class StagePoint:
    """What the schedule prescribes for one step."""

    stage: int  # 1, 2 or 3
    mos_weight: float
    cls_weight: float
    lr_scale: float  # multiplies the optimizer's configured learning rate


def _pair(value, key: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"scheduler.{key} must be two numbers [mos, classification], not {value!r}") from None
    if a < 0 or b < 0:
        raise ConfigError(f"scheduler.{key} must not be negative: {value!r}")
    return a, b


class StageSchedule:
    """The three-stage schedule over ``total_steps`` optimizer steps (see the module docstring)."""

    def __init__(
        self,
        total_steps: int,
        stages: Sequence[float] = (0.2, 0.7),
        lr_scale: Sequence[float] = (1.0, 1.0, 0.1),
        min_lr_ratio: float = 0.1,
        pretrain_weights: Sequence[float] = (0.0, 1.0),
        joint_weights: Sequence[Sequence[float]] = ((0.3, 0.7), (0.7, 0.3)),
        finetune_weights: Sequence[float] = (0.9, 0.1),
    ):
        self.total_steps = int(total_steps)
        if self.total_steps < 1:
            raise ConfigError(f"the stage schedule needs total_steps >= 1, not {total_steps}")
        try:
            b1, b2 = (float(b) for b in stages)
        except (TypeError, ValueError):
            raise ConfigError(
                f"scheduler.stages must be two fractions of total_steps [b1, b2], not {stages!r}"
            ) from None
        if not 0.0 <= b1 <= b2 <= 1.0:
            raise ConfigError(f"scheduler.stages must satisfy 0 <= b1 <= b2 <= 1, not {list(stages)}")
        scales = [float(s) for s in lr_scale]
        if len(scales) != 3 or any(s <= 0 for s in scales):
            raise ConfigError(f"scheduler.lr_scale must be three positive numbers (one per stage), not {lr_scale!r}")
        if not 0.0 <= float(min_lr_ratio) <= 1.0:
            raise ConfigError(f"scheduler.min_lr_ratio must be in [0, 1], not {min_lr_ratio!r}")
        if len(joint_weights) != 2:
            raise ConfigError(
                f"scheduler.joint_weights must be [[mos, cls] at the start, [mos, cls] at the end], "
                f"not {joint_weights!r}"
            )
        # integer boundaries: stage 2 starts at step `start2`, stage 3 at `start3`
        self.start2 = round(b1 * self.total_steps)
        self.start3 = round(b2 * self.total_steps)
        self.lr_scales = tuple(scales)
        self.min_lr_ratio = float(min_lr_ratio)
        self.pretrain = _pair(pretrain_weights, "pretrain_weights")
        self.joint = (_pair(joint_weights[0], "joint_weights[0]"), _pair(joint_weights[1], "joint_weights[1]"))
        self.finetune = _pair(finetune_weights, "finetune_weights")

    @classmethod
    def from_config(cls, scheduler_config: dict, total_steps: int) -> StageSchedule:
        """The schedule of a config's ``scheduler:`` section (its ``name`` is ignored here)."""
        options = {k: v for k, v in (scheduler_config or {}).items() if k != "name"}
        check_keys(f"scheduler ({SCHEDULER_NAME})", options, cls.option_keys())
        return cls(total_steps, **options)

    @classmethod
    def option_keys(cls) -> set:
        """The options of a config's ``scheduler:`` section (the constructor's, but ``total_steps``)."""
        return signature_keys(cls.__init__, skip=("self", "total_steps"))

    def bounds(self, stage: int) -> tuple[int, int]:
        """``[start, end)`` steps of a stage (empty when its fraction is 0)."""
        return {1: (0, self.start2), 2: (self.start2, self.start3), 3: (self.start3, self.total_steps)}[stage]

    def stage_of(self, step: int) -> int:
        """The stage (1, 2, 3) of a 0-based step; steps past the end stay in stage 3."""
        if step < self.start2:
            return 1
        return 2 if step < self.start3 else 3

    def progress(self, step: int) -> float:
        """How far through its stage a step is: 0 at the stage's first step, 1 at its last."""
        start, end = self.bounds(self.stage_of(step))
        return min(1.0, max(0.0, (step - start) / max(1, end - start - 1)))

    def at(self, step: int) -> StagePoint:
        """Loss weights and learning-rate scale of the 0-based optimizer step ``step``."""
        stage, p = self.stage_of(step), self.progress(step)
        if stage == 1:
            mos, cls = self.pretrain
        elif stage == 2:
            (m0, c0), (m1, c1) = self.joint
            mos, cls = m0 + p * (m1 - m0), c0 + p * (c1 - c0)  # linear annealing
        else:
            mos, cls = self.finetune
        peak = self.lr_scales[stage - 1]
        # cosine annealing within the stage, from the peak down to min_lr_ratio of it
        cosine = 0.5 * (1.0 + math.cos(math.pi * p))
        scale = peak * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine)
        return StagePoint(stage, mos, cls, scale)

    def at_global_step(self, global_step: int) -> StagePoint:
        """The point of the training loop's 1-based ``global_step`` (the step being trained)."""
        return self.at(max(0, int(global_step) - 1))
