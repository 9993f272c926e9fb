"""Learning-rate schedules that s3prl's scheduler registry lacks."""

from __future__ import annotations

import inspect

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR

from .config_keys import signature_keys
from .moe_schedule import StageSchedule


def get_OneCycleLR(  # noqa: N802 (s3prl looks schedulers up as ``get_<name>``)
    optimizer: Optimizer,
    num_training_steps: int,
    max_lr: float | None = None,
    cycle_momentum: bool = False,
    **kwargs,
) -> OneCycleLR:
    """OneCycleLR over the whole run (``num_training_steps`` optimizer steps); the other options
    (``pct_start``, ``anneal_strategy``, ``div_factor``, ``final_div_factor``, ``three_phase`` ...) are
    torch's, with torch's defaults.

    ``max_lr`` defaults to each parameter group's configured ``lr``, so the optimizer's learning rate is
    the peak. ``cycle_momentum`` defaults to False because cycling would overwrite Adam's beta1, and the
    paper fixes betas at (0.9, 0.98).
    """
    if max_lr is None:
        max_lr = [group["lr"] for group in optimizer.param_groups]
    return OneCycleLR(optimizer, max_lr=max_lr, total_steps=num_training_steps, cycle_momentum=cycle_momentum, **kwargs)


def get_MoEStageLR(optimizer: Optimizer, num_training_steps: int, **stages) -> LambdaLR:  # noqa: N802
    """MoE-MOS's three-stage learning rate (:mod:`distilmos.train.moe_schedule`): each parameter group's
    configured ``lr`` times the schedule's scale of the step about to run.

    A ``LambdaLR`` whose factor depends on its step counter alone, so resuming (s3prl restores the counter)
    continues the schedule exactly. ``stages`` are the ``scheduler:`` options of the config (``stages``,
    ``lr_scale``, ``min_lr_ratio`` and the loss weights the expert reads from the same section).
    """
    schedule = StageSchedule(num_training_steps, **stages)
    return LambdaLR(optimizer, lambda step: schedule.at(step).lr_scale)


def scheduler_keys(name: str) -> set | None:
    """The keys a config's ``scheduler:`` section may hold (``name`` among them) for this toolkit's
    schedulers, read off the signatures they are passed to; None for s3prl's own (not checked here)."""
    if name == "OneCycleLR":
        own = set(inspect.signature(get_OneCycleLR).parameters) - {"optimizer", "num_training_steps", "kwargs"}
        passed_on = signature_keys(OneCycleLR.__init__, skip=("self", "optimizer", "total_steps"))  # its **kwargs
        return own | passed_on | {"name"}
    if name == "MoEStageLR":
        return StageSchedule.option_keys() | {"name"}
    return None
