"""Training targets of the DistilMOS heads, aligned with the featurizer's frames.

Utterances, scores and batching come from ``distilmos.data.dataset`` (shared by every MOS expert); this module
lines the per-layer k-means tokens of an utterance up with its features.

Trim rule: the upstream's own frame count for a wav and the featurizer's (``round(samples / rate)``)
can differ by a frame or two, so both are cut to the shorter. A larger gap means the token store was
built for another upstream (or another frame rate) and is an error.
"""

import torch

from distilmos.errors import ToolkitError

IGNORE = -100  # cross-entropy ignore index for padding and trimmed frames
MAX_FRAME_GAP = 2


class TokenAlignmentError(ToolkitError, ValueError):
    """Tokens and features of an utterance differ by more than the trim rule allows."""


def align_tokens(
    tokens: list[torch.Tensor], lengths: torch.Tensor, max_len: int, sample_ids: list[str]
) -> torch.Tensor:
    """``[batch, max_len, layers]`` token targets, ``IGNORE`` beyond ``min(feature, token)`` frames."""
    n_layers = tokens[0].shape[1]
    targets = torch.full((len(tokens), max_len, n_layers), IGNORE, dtype=torch.long)
    for i, (tok, feat_len, sample_id) in enumerate(zip(tokens, lengths.tolist(), sample_ids)):
        if abs(len(tok) - feat_len) > MAX_FRAME_GAP:
            raise TokenAlignmentError(
                f"{sample_id}: {len(tok)} token frames but {feat_len} feature frames (more than "
                f"{MAX_FRAME_GAP} apart): the token store was not built with this upstream's frame rate"
            )
        n = min(len(tok), feat_len)
        targets[i, :n] = tok[:n]
    return targets
