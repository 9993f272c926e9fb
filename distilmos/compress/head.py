"""What structured pruning removes from the DistilMOS head
(:class:`distilmos.models.distilmos_model.DistilMOSModel`): the groups, their importance, the plan for a
target size and the smaller state dict that results.

Two kinds of group (:data:`HEAD_GROUPS`), each removed whole:

- ``head_channels``: one channel of the head's hidden width, the stream every layer reads and writes: its
  row of the projector, its row and column of each Feature Processor block's Linear and Conv1d, its
  BatchNorm, its row and column of the CNN-BLSTM's Conv1d, its column of the BLSTM's input weights, its row
  of the Linear after the BLSTM, its LayerNorm scale and shift, its weight in the frame head;
- ``blstm_units``: one BLSTM unit of one direction: its four gates' rows of the input and recurrent weights
  and biases, its column of the recurrent weights, its column of the Linear after the BLSTM. Both
  directions keep the same number (``nn.LSTM`` has one ``hidden_size``), each its own most important.

Importance is the first-order Taylor criterion of the upstream's groups (:mod:`distilmos.compress.structure`):
``(sum over the group's weights of gradient x weight)^2`` of the MOS loss, summed over batches; the same
backward passes give both. A head is pruned to a target fraction ``f`` of its parameters by keeping the
widest widths that fit: with both groups, the hidden width and the BLSTM width shrink together (their
ratio kept); with one, only that one. The result is a state dict of the same keys with smaller shapes,
which :meth:`DistilMOSModel.kwargs_from_state` reads back (``hidden_dim`` off the projector,
``blstm_dim`` off the recurrent weights), so a pruned head is an ordinary DistilMOS model in a predictor file.
Removing a channel of the hidden width is not exact (the LayerNorm's statistics span it), so every level is
fine-tuned after pruning (:mod:`distilmos.compress.prune`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from distilmos.models.distilmos_model import DistilMOSModel

HEAD_GROUPS = ("head_channels", "blstm_units")
_DIRECTIONS = ("", "_reverse")
_GATES = 4  # input, forget, cell, output: the rows of an LSTM weight, in blocks of hidden_size


def _stream_axes(key: str) -> tuple[int, ...]:
    """The axes of the weight ``key`` that index the hidden width (the stream)."""
    if key.endswith("num_batches_tracked") or (key.startswith("cnn_blstm.blstm.") and "weight_ih" not in key):
        return ()
    if key.startswith("cnn_blstm.blstm.") or key == "frame_head.weight":
        return (1,)
    if key == "frame_head.bias":
        return ()
    if key in ("projector.weight", "cnn_blstm.linear.weight"):
        return (0,)
    if key.endswith((".linear.weight", ".conv.weight")):  # Feature Processor blocks, the CNN-BLSTM's Conv1d
        return (0, 1)
    return (0,)  # biases and norms of the stream


def _unit_rows(units: torch.Tensor, blstm_dim: int) -> torch.Tensor:
    """Rows of an LSTM weight or bias of ``units``: the same units in each gate's block."""
    return torch.cat([gate * blstm_dim + units for gate in range(_GATES)])


class HeadStructure:
    """The prunable structure of a DistilMOS head."""

    def __init__(self, model: nn.Module):
        if not isinstance(model, DistilMOSModel):
            raise TypeError(f"only a DistilMOS head can be pruned, not a {type(model).__name__}")
        self.model = model
        self.kwargs = DistilMOSModel.kwargs_from_state(model.state_dict())
        self.hidden_dim = int(self.kwargs["hidden_dim"])
        self.blstm_dim = int(self.kwargs.get("blstm_dim", self.hidden_dim))
        self.total = parameters(self.kwargs)

    def widths(self, hidden_dim: int, blstm_dim: int) -> dict:
        """Constructor arguments of this head at the given widths."""
        kwargs = dict(self.kwargs, hidden_dim=int(hidden_dim))
        kwargs.pop("blstm_dim", None)
        if blstm_dim != hidden_dim:
            kwargs["blstm_dim"] = int(blstm_dim)
        return kwargs


def parameters(kwargs: dict) -> int:
    """Parameters of a DistilMOS head built with ``kwargs``."""
    return sum(p.numel() for p in DistilMOSModel(**kwargs).parameters())


def new_head_scores(structure: HeadStructure) -> dict:
    """Zeroed importance accumulators: ``head_channels [hidden_dim]``, ``blstm_units [2, blstm_dim]``."""
    return {
        "head_channels": torch.zeros(structure.hidden_dim, dtype=torch.float64),
        "blstm_units": torch.zeros(len(_DIRECTIONS), structure.blstm_dim, dtype=torch.float64),
    }


@torch.no_grad()
def accumulate_head(structure: HeadStructure, scores: dict) -> None:
    """Add one backward pass's group Taylor scores (the gradients now in the head) to ``scores``."""
    channels = torch.zeros(structure.hidden_dim, dtype=torch.float64)
    units = torch.zeros(len(_DIRECTIONS), structure.blstm_dim, dtype=torch.float64)
    for key, param in structure.model.named_parameters():
        if param.grad is None:
            continue
        gw = (param.grad * param).double()
        axes = _stream_axes(key)
        for axis in axes:
            channels += gw.transpose(0, axis).reshape(gw.size(axis), -1).sum(1)
        if axes == (0, 1):  # a square weight's diagonal is in both sums: once per group
            channels -= torch.diagonal(gw, dim1=0, dim2=1).reshape(-1, structure.hidden_dim).sum(0)
        if key.startswith("cnn_blstm.blstm."):
            direction = 1 if key.endswith("_reverse") else 0
            rows = gw.reshape(_GATES, structure.blstm_dim, -1).sum((0, 2))
            if "weight_hh" in key:  # also the unit's column: its output fed back
                rows = rows + gw.sum(0)
            units[direction] += rows
        elif key == "cnn_blstm.linear.weight":
            units += gw.sum(0).view(len(_DIRECTIONS), structure.blstm_dim)
    scores["head_channels"] += channels**2
    scores["blstm_units"] += units**2


def plan_head(structure: HeadStructure, fraction: float, groups: Sequence[str] = HEAD_GROUPS) -> dict:
    """``{"fraction", "target", "hidden_dim", "blstm_dim", "parameters"}``: the widest widths whose head has
    at most ``fraction`` of the parameters (the narrowest, 1, when none fits)."""
    hidden, blstm = structure.hidden_dim, structure.blstm_dim
    shrink_hidden, shrink_blstm = "head_channels" in groups, "blstm_units" in groups
    target = fraction * structure.total

    def widths(step: int) -> tuple[int, int]:  # step: the width that shrinks (the hidden one when both do)
        if shrink_hidden and shrink_blstm:
            return step, max(1, round(step * blstm / hidden))
        return (step, blstm) if shrink_hidden else (hidden, step)

    hidden_dim, blstm_dim = hidden, blstm
    if shrink_hidden or shrink_blstm:
        low, high = 1, hidden if shrink_hidden else blstm
        while low < high:  # the largest step that fits: the parameters grow with the widths
            middle = (low + high + 1) // 2
            if parameters(structure.widths(*widths(middle))) <= target:
                low = middle
            else:
                high = middle - 1
        hidden_dim, blstm_dim = widths(low)
    return {
        "fraction": fraction,
        "target": int(target),
        "hidden_dim": hidden_dim,
        "blstm_dim": blstm_dim,
        "parameters": parameters(structure.widths(hidden_dim, blstm_dim)),
    }


def _top(scores: torch.Tensor, count: int) -> torch.Tensor:
    return torch.sort(torch.topk(scores, count).indices).values


def pruned_head_state(structure: HeadStructure, plan: dict, scores: dict) -> dict[str, torch.Tensor]:
    """The head's state dict keeping the ``plan``'s most important channels and BLSTM units."""
    channels = _top(scores["head_channels"], plan["hidden_dim"])
    units = [_top(scores["blstm_units"][d], plan["blstm_dim"]) for d in range(len(_DIRECTIONS))]
    blstm_dim = structure.blstm_dim
    state = {}
    for key, value in structure.model.state_dict().items():
        value = value.detach().clone()
        for axis in _stream_axes(key):
            value = value.index_select(axis, channels)
        if key.startswith("cnn_blstm.blstm."):
            direction = 1 if key.endswith("_reverse") else 0
            value = value.index_select(0, _unit_rows(units[direction], blstm_dim))
            if "weight_hh" in key:
                value = value.index_select(1, units[direction])
        elif key == "cnn_blstm.linear.weight":
            value = value.index_select(1, torch.cat([units[0], units[1] + blstm_dim]))
        state[key] = value.contiguous()
    return state
