#!/usr/bin/env python
"""Parameter counts of the readings SALF-MOS's description allows, nearest to the paper's 1,574 first.

    python local/salf_readings.py [--upstream_dim 768] [--also 512 1024] [--target 1574] [--top 15]

The paper fixes: four double-conv blocks (Conv1d k=3 -> BatchNorm -> ReLU, twice), three downsamplings
(k=2, s=2) between them, a linear latent-feature layer (LFE) after each block, the LFE outputs stacked, a
final Linear. It leaves open, and this script varies: the axis the convolutions run over (time, with the
features as input channels, or the feature axis, one input channel), the channel widths (constant or
doubling per block), a bias on the convolutions, BatchNorm's affine parameters, the downsampling (max
pooling, or a k=2 s=2 convolution keeping or changing the width), how an LFE is taken (a Linear over the
block's feature-axis length shared by its channels, one per channel, over the flattened block, or over
the channel means), its output size, and a bias on the final Linear. Counting is by formula; the
implemented reading (:mod:`distilmos.models.salf_mos`) is checked against its module's own count.

The paper also leaves open which wav2vec it used ("wav2vec embeddings", no version), so the input width is
a reading too. The listing is for ``--upstream_dim`` (768: wav2vec 2.0 Base, the toolkit's reading), then
the readings that land exactly on the target at each ``--also`` width (512: wav2vec 1.0's context vectors;
1024: the Large models): the 1,574 reading is unique at 768 dims only if the input is 768-dimensional, since
at 512 dims another reading also lands on 1,574.
"""

import argparse
import itertools
from typing import NamedTuple

#: what an input width is, for the listing
WIDTHS = {512: "wav2vec 1.0", 768: "wav2vec 2.0 / HuBERT / WavLM Base", 1024: "the Large models"}


def conv(c_in: int, c_out: int, kernel: int, bias: bool) -> int:
    return c_in * c_out * kernel + (c_out if bias else 0)


class Reading(NamedTuple):
    """One reading of what the paper leaves open (the module docstring lists them)."""

    axis: str  # what the convolutions run over: "time" (the features as channels) or "feature" (one channel)
    widths: list  # the channels of the four blocks
    conv_bias: bool
    bn_affine: bool
    down: str  # the downsampling: "max_pool", "conv_same_width" or "conv_next_width"
    lfe: str  # "shared_over_length", "per_channel_over_length", "flattened" or "channel_mean"
    lfe_out: int
    head_bias: bool


def count(dim: int, reading: Reading):
    """Parameters of one reading, or None when it is not well defined (an LFE over time, whose length varies)."""
    axis, widths, conv_bias, bn_affine, down, lfe, lfe_out, head_bias = reading
    if axis == "time" and lfe != "channel_mean":
        return None
    n, c_in, length, stacked = 0, (dim if axis == "time" else 1), dim, 0
    for b, width in enumerate(widths):
        n += conv(c_in, width, 3, conv_bias) + conv(width, width, 3, conv_bias) + (4 * width if bn_affine else 0)
        if lfe == "shared_over_length":
            n, stacked = n + length * lfe_out + lfe_out, stacked + width * lfe_out
        elif lfe == "per_channel_over_length":
            n, stacked = n + width * (length * lfe_out + lfe_out), stacked + width * lfe_out
        elif lfe == "flattened":
            n, stacked = n + width * length * lfe_out + lfe_out, stacked + lfe_out
        else:  # channel_mean
            n, stacked = n + width * lfe_out + lfe_out, stacked + lfe_out
        c_in = width
        if b < len(widths) - 1:
            if down == "conv_same_width":
                n += conv(width, width, 2, conv_bias)
            elif down == "conv_next_width":
                n, c_in = n + conv(width, widths[b + 1], 2, conv_bias), widths[b + 1]
            if axis == "feature":
                length //= 2
    return n + stacked + (1 if head_bias else 0)


def readings(dim):
    """``(parameters, reading)`` of every well-defined reading at ``dim`` input dimensions."""
    for axis, kind, c, *rest in itertools.product(
        ("feature", "time"),
        ("constant", "doubling"),
        (1, 2, 3, 4, 8),
        (False, True),
        (True, False),
        ("max_pool", "conv_same_width", "conv_next_width"),
        ("shared_over_length", "per_channel_over_length", "flattened", "channel_mean"),
        (1, 2),
        (False, True),
    ):
        reading = Reading(axis, [c] * 4 if kind == "constant" else [c * 2**i for i in range(4)], *rest)
        n = count(dim, reading)
        if n is not None:
            yield n, reading


def describe(n, reading, target):
    return f"{n:>6,} ({n - target:+d})  " + " ".join(f"{k}={v}" for k, v in reading._asdict().items())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream_dim", type=int, default=768)
    parser.add_argument(
        "--also",
        type=int,
        nargs="*",
        default=[512, 1024],
        help="other input widths: the readings that land exactly on --target at each",
    )
    parser.add_argument("--target", type=int, default=1574)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    dims = [args.upstream_dim] + [d for d in args.also if d != args.upstream_dim]
    for i, dim in enumerate(dims):
        found = sorted(readings(dim), key=lambda r: (abs(r[0] - args.target), r[0]))
        exact = [r for r in found if r[0] == args.target]
        what = f" ({WIDTHS[dim]})" if dim in WIDTHS else ""
        if i == 0:
            print(f"readings at {dim} input dimensions{what}, nearest to {args.target:,} first:")
            for n, reading in found[: args.top]:
                print(describe(n, reading, args.target))
            time_axis = min(n for n, r in found if r.axis == "time")
            print(f"fewest parameters of any time-axis reading: {time_axis:,}")
        print(
            f"{dim} dims{what}: {len(exact)} reading(s) of exactly {args.target:,} parameters"
            + (":" if exact else f"; the nearest: {found[0][0]:,}")
        )
        for n, reading in exact:
            print(describe(n, reading, args.target))


if __name__ == "__main__":
    main()
