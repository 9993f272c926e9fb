"""SIGTERM and SIGINT during training: finish the step in flight, save, exit with :data:`EXIT_PREEMPTED`.

Clusters preempt jobs with SIGTERM (and Ctrl-C sends SIGINT). The handler only raises a flag; the
training loop reads it after each optimisation step (:meth:`StopRequest.agreed`), writes a resumable
checkpoint atomically and exits. Under ``torch.distributed`` the ranks agree on the step: each step the
flags are combined (a maximum over ranks), so every rank stops after the same step, whichever received
the signal. A second SIGINT (Ctrl-C twice) stops at once, the default way; a second SIGTERM does not,
because schedulers signal every process of a job and ``torchrun`` passes the signal on too, so a rank
commonly gets it twice, and a preemption must still end with a checkpoint (the scheduler's SIGKILL after
its grace period is what stops a run that cannot save).
"""

from __future__ import annotations

import signal
import sys

import torch

#: exit status of a run stopped by SIGTERM/SIGINT after saving a resumable checkpoint (EX_TEMPFAIL:
#: "try again": rerun the same command, or run_downstream.py -a, to resume)
EXIT_PREEMPTED = 75

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """A flag raised by SIGTERM/SIGINT while installed (use as a context manager)."""

    def __init__(self, device: torch.device | None = None):
        self.device = device
        self.signal: int | None = None
        self._previous = {}

    def __enter__(self) -> StopRequest:
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.signal is not None:
            if signum == signal.SIGINT:  # Ctrl-C twice: stop now
                signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
                signal.raise_signal(signum)
            return  # the same request again (scheduler and torchrun both signal): one checkpoint
        self.signal = signum
        again = " (Ctrl-C again to stop at once)" if signum == signal.SIGINT else ""
        print(
            f"\n[distilmos] {name} received: finishing this step, then saving a resumable checkpoint{again}",
            file=sys.stderr,
            flush=True,
        )

    def agreed(self, other: bool = False) -> tuple[bool, bool]:
        """``(any rank was asked to stop, any rank raised `other`)``: a collective call under
        ``torch.distributed`` (the leader's decisions, such as early stopping, travel with it)."""
        flags = [self.signal is not None, bool(other)]
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return flags[0], flags[1]
        tensor = torch.tensor([float(f) for f in flags], device=self.device or "cpu")
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return bool(tensor[0].item() > 0), bool(tensor[1].item() > 0)
