"""A padding-exact forward for s3prl's WavLM, HuBERT and wav2vec 2.0 upstreams.

In a padded batch, s3prl's own forward of these models lets the padding change the valid frames in two
ways, so a score, a token or a metric depends on what else was in the batch:

1. The Base-size front end (``extractor_mode: default``: WavLM Base, HuBERT Base, wav2vec 2.0 Base)
   normalises the first convolution's output with a GroupNorm over time, whose statistics then include
   the padding's samples.
2. WavLM and HuBERT mark a frame as padding only when *all* of its samples are padding, so a partly padded
   last frame (one the utterance alone does not have) is attended to; s3prl's ``Featurizer`` then keeps
   ``round(samples / 320)`` frames, one more than the utterance alone gets.

:func:`make_padding_exact` patches a built upstream in place, keeping s3prl's modules, weights and
``state_dict`` keys: the GroupNorm takes its statistics over each utterance's own valid samples, and
every frame beyond the count the utterance gets alone (the convolution formula of its front end) is
masked in the positional convolution and in attention. :func:`frame_counts` gives those counts, which the
runner's featurizer, the predictor and token extraction cut the features at. For every valid frame, a
batched forward then equals the one-by-one forward to float rounding, whatever the padding.

Other upstreams are left as they are (:func:`make_padding_exact` returns ``False``); callers keep their
padding caps for them.
"""

from __future__ import annotations

import types
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

#: (kernel, stride) of each front-end convolution, in order
ConvSpec = tuple[tuple[int, int], ...]

#: s3prl's upstream experts this module knows how to make exact (the non-legacy ones)
SUPPORTED_EXPERTS = ("s3prl.upstream.wavlm.expert", "s3prl.upstream.hubert.expert", "s3prl.upstream.wav2vec2.expert")

_SPEC_ATTR = "padding_exact_convs"


def frames_after(convs: ConvSpec, n_samples):
    """Frames the front end ``convs`` gives ``n_samples`` samples alone (an int or a LongTensor)."""
    n = n_samples
    for kernel, stride in convs:
        n = (n - kernel) // stride + 1
        n = n.clamp(min=0) if torch.is_tensor(n) else max(n, 0)
    return n


class MaskedGroupNorm(nn.GroupNorm):
    """A GroupNorm (computed in float32, as fairseq's ``Fp32GroupNorm``) whose statistics cover only each
    row's first ``lengths[b]`` time steps; the others are set to zero. With ``lengths`` unset it is the
    plain GroupNorm. Shares the weight and bias of the module it replaces, so ``state_dict`` is unchanged."""

    def __init__(self, original: nn.GroupNorm):
        super().__init__(original.num_groups, original.num_channels, original.eps, affine=False)
        self.affine = original.affine
        self.weight = original.weight
        self.bias = original.bias
        self.lengths: torch.Tensor | None = None  # set by the upstream's forward for one call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths = self.lengths
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        if lengths is None or bool((lengths >= x.size(-1)).all()):
            return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).type_as(x)
        xf = x.float()
        batch, channels, steps = xf.shape
        # Zero the padding (in place when no gradient flows: the input is the convolution's fresh output),
        # so that full-length sums are sums over the valid steps. One reduction pass for each of the sum
        # and the sum of squares and one affine pass keep the cost near the plain GroupNorm's; the front
        # end's channels are near zero-mean, where E[x^2] - E[x]^2 loses nothing in float32.
        pad = torch.arange(steps, device=x.device)[None, None, :] >= lengths[:, None, None]
        xf = xf.masked_fill_(pad, 0.0) if not torch.is_grad_enabled() else xf.masked_fill(pad, 0.0)
        per_group = channels // self.num_groups
        count = (lengths.to(xf.dtype) * per_group)[:, None]  # [B, 1]
        total = xf.sum(-1).view(batch, self.num_groups, per_group).sum(-1)  # [B, G]
        squares = torch.linalg.vector_norm(xf, dim=-1).pow(2).view(batch, self.num_groups, per_group).sum(-1)
        mean = total / count
        var = (squares / count - mean.pow(2)).clamp_min(0.0)
        scale = torch.rsqrt(var + self.eps).repeat_interleave(per_group, dim=1)  # [B, C]
        shift = -mean.repeat_interleave(per_group, dim=1) * scale
        if weight is not None:
            scale, shift = scale * weight, shift * weight + bias
        if torch.is_grad_enabled():
            out = torch.addcmul(shift[:, :, None], xf, scale[:, :, None])
        else:  # no copy: the padded-and-zeroed input becomes the output
            out = xf.mul_(scale[:, :, None]).add_(shift[:, :, None])
        return out.masked_fill_(pad, 0.0).type_as(x)


def _conv_blocks(upstream: nn.Module):
    model = getattr(upstream, "model", None)
    extractor = getattr(model, "feature_extractor", None)
    blocks = getattr(extractor, "conv_layers", None)
    if blocks is None or getattr(extractor, "conv_type", "default") != "default":
        return None
    if not all(isinstance(b, nn.Sequential) and isinstance(b[0], nn.Conv1d) for b in blocks):
        return None
    return blocks


def supports(upstream: nn.Module) -> bool:
    """Whether :func:`make_padding_exact` can patch ``upstream`` (s3prl's WavLM / HuBERT / wav2vec 2.0)."""
    return type(upstream).__module__ in SUPPORTED_EXPERTS and _conv_blocks(upstream) is not None


def conv_spec(upstream: nn.Module) -> ConvSpec | None:
    """The front end's ``(kernel, stride)`` list of a padding-exact upstream, else ``None``."""
    return getattr(upstream, _SPEC_ATTR, None)


def is_padding_exact(upstream: nn.Module) -> bool:
    """Whether ``upstream`` was patched by :func:`make_padding_exact`."""
    return conv_spec(upstream) is not None


def min_samples(upstream: nn.Module) -> int | None:
    """The shortest input (16 kHz samples) a padding-exact upstream gives a frame for: its front end's
    receptive field (400 for wav2vec 2.0 / HuBERT / WavLM); ``None`` for other upstreams."""
    convs = conv_spec(upstream)
    if convs is None:
        return None
    field = 1
    for kernel, stride in reversed(convs):
        field = (field - 1) * stride + kernel
    return field


def frame_counts(upstream: nn.Module, lengths: Sequence[int]) -> list[int] | None:
    """Valid frames per utterance of ``lengths`` samples for a padding-exact upstream, else ``None``."""
    convs = conv_spec(upstream)
    return None if convs is None else [frames_after(convs, int(n)) for n in lengths]


def _exact_upstream_forward(self, wavs: list[torch.Tensor]):
    """The expert's own forward, with the GroupNorm told each utterance's valid length."""
    norm = self._padding_exact_norm
    if norm is None:
        return type(self).forward(self, wavs)
    kernel, stride = conv_spec(self)[0]
    samples = torch.tensor([len(w) for w in wavs], device=wavs[0].device)
    norm.lengths = frames_after(((kernel, stride),), samples)
    try:
        return type(self).forward(self, wavs)
    finally:
        norm.lengths = None


def _exact_forward_padding_mask(self, features: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
    """Frame padding mask by the convolution formula: a frame is valid only if the utterance alone has it
    (WavLM's and HuBERT's own rule keeps a partly padded last frame)."""
    samples = (~padding_mask).long().sum(-1)
    counts = frames_after(self._padding_exact_convs, samples)
    return torch.arange(features.size(1), device=features.device)[None, :] >= counts[:, None]


def make_padding_exact(upstream: nn.Module) -> bool:
    """Patch a built s3prl WavLM / HuBERT / wav2vec 2.0 upstream in place (see the module docstring);
    ``False`` (and nothing changed) for any other upstream. Idempotent; weights and keys are untouched."""
    if is_padding_exact(upstream):
        return True
    if not supports(upstream):
        return False
    blocks = _conv_blocks(upstream)
    convs: ConvSpec = tuple((int(b[0].kernel_size[0]), int(b[0].stride[0])) for b in blocks)
    norm = None
    for index, module in enumerate(blocks[0]):
        if isinstance(module, nn.GroupNorm):
            norm = MaskedGroupNorm(module)
            blocks[0][index] = norm
    # a GroupNorm anywhere else would normalise over time too; none of s3prl's front ends has one
    if any(isinstance(m, nn.GroupNorm) and not isinstance(m, MaskedGroupNorm) for m in blocks.modules()):
        raise NotImplementedError("a GroupNorm after the first convolution cannot be made padding-exact")
    model = upstream.model
    if hasattr(model, "forward_padding_mask"):  # WavLM, HuBERT (wav2vec 2.0 already counts exactly)
        model._padding_exact_convs = convs
        model.forward_padding_mask = types.MethodType(_exact_forward_padding_mask, model)
    # plain attributes and bound methods, so a deep copy of the upstream stays patched and self-contained
    object.__setattr__(upstream, "_padding_exact_norm", norm)
    setattr(upstream, _SPEC_ATTR, convs)
    upstream.forward = types.MethodType(_exact_upstream_forward, upstream)
    return True


def cut_featurizer(featurizer: nn.Module, upstream: nn.Module) -> bool:
    """Make an s3prl ``Featurizer`` keep each utterance's exact frame count of a padding-exact upstream
    (its own rule keeps ``round(samples / downsample_rate)``, one frame too many in a padded batch)."""
    convs = conv_spec(upstream)
    if convs is None:
        return False
    featurizer._padding_exact_convs = convs
    featurizer.tolist = types.MethodType(_exact_tolist, featurizer)
    return True


def _exact_tolist(self, paired_wavs: list[torch.Tensor], paired_feature: torch.Tensor) -> list[torch.Tensor]:
    counts = [frames_after(self._padding_exact_convs, len(w)) for w in paired_wavs]
    if max(counts) > paired_feature.size(1):
        raise ValueError(f"the upstream gave {paired_feature.size(1)} frames, its front end gives {max(counts)}")
    return [f[:n] for f, n in zip(paired_feature, counts)]
