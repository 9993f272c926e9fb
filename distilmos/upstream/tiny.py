"""Small, seeded, randomly initialised SSL checkpoints in the exact formats s3prl's ``*_local`` upstreams load.

    python -m distilmos.upstream.tiny --arch wavlm --size tiny --out tiny_wavlm.pt
    python run_downstream.py -m train -u wavlm_local -k tiny_wavlm.pt -d distilmos ...

No pretrained weights can be trusted to be at hand (tests, CI, offline demos), so these stand in for them:
the architecture code, the checkpoint loading and the hidden-state hooks are s3prl's own; only the weights
are random. ``--size base`` gives the WavLM Base / HuBERT Base / wav2vec 2.0 Base architecture for speed
benchmarks (speed does not depend on the weight values).

Formats (what s3prl's loaders read):
- ``wavlm_local``: ``{"cfg": WavLMConfig fields, "model": state_dict}``
- ``hubert_local``: ``{"task_cfg", "model_cfg", "model_weight", "dictionaries_symbols"}``
- ``wav2vec2_local``: ``{"task_cfg", "model_cfg", "model_weight"}``
"""

from __future__ import annotations

import argparse
import os

import torch

from distilmos.data.audio import SAMPLE_RATE
from distilmos.fileio import atomic_write

ARCHS = ("wavlm", "hubert", "wav2vec2")
HUB_NAMES = {arch: f"{arch}_local" for arch in ARCHS}


def _size(layers: int, dim: int, ffn: int, heads: int, conv: int, pos: int, pos_groups: int, final: int) -> dict:
    """A model size in the config's names: ``layers`` transformer layers of width ``dim`` (feed-forward
    ``ffn``, ``heads`` attention heads), ``conv`` channels in each front-end convolution, a positional
    convolution of width ``pos`` in ``pos_groups`` groups and a ``final``-dim projection."""
    return dict(
        encoder_layers=layers,
        encoder_embed_dim=dim,
        encoder_ffn_embed_dim=ffn,
        encoder_attention_heads=heads,
        # the real 320-sample (20 ms) frame shift: strides 5 * 2**6 = 320
        conv_feature_layers=f"[({conv},10,5)] + [({conv},3,2)] * 4 + [({conv},2,2)] * 2",
        conv_pos=pos,
        conv_pos_groups=pos_groups,
        final_dim=final,
    )


SIZES: dict[str, dict] = {
    "tiny": _size(layers=3, dim=64, ffn=128, heads=4, conv=64, pos=16, pos_groups=4, final=32),
    "base": _size(layers=12, dim=768, ffn=3072, heads=12, conv=512, pos=128, pos_groups=16, final=256),
}


#: front ends: the Base models' (GroupNorm over time after the first convolution, post-LN transformer)
#: and the Large models' (LayerNorm per frame after every convolution, pre-LN transformer)
FRONTENDS = ("group_norm", "layer_norm")


def default_frontend(size: str) -> str:
    # Base sizes keep the Base models' GroupNorm front end. The tiny ones use the Large models' per-frame
    # LayerNorm front end: with random weights, GroupNorm over time erases the level and spectral cues a
    # MOS predictor needs, and s3prl keeps the front end frozen during fine-tuning, so they never return
    # (demo validation SRCC about 0.2 with it, about 0.5 without, after 100-300 CPU steps).
    return "layer_norm" if size == "tiny" else "group_norm"


def model_config(arch: str, size: str = "tiny", layers: int = None, frontend: str = None) -> dict:
    """The model config (the checkpoint's ``cfg`` / ``model_cfg``) of ``arch`` at ``size``."""
    frontend = frontend or default_frontend(size)
    if frontend not in FRONTENDS:
        raise ValueError(f"unknown frontend {frontend!r}; choose from {', '.join(FRONTENDS)}")
    large = frontend == "layer_norm"
    cfg = dict(
        SIZES[size],
        extractor_mode="layer_norm" if large else "default",
        layer_norm_first=large,
        conv_bias=False,
        encoder_layerdrop=0.0,
        feature_grad_mult=0.1,
    )
    if layers is not None:
        cfg["encoder_layers"] = layers
    if arch == "wavlm":
        cfg.pop("final_dim")
        cfg.update(
            relative_position_embedding=True, gru_rel_pos=True, num_buckets=320, max_distance=800, normalize=False
        )
        if size == "tiny":
            cfg.update(num_buckets=32, max_distance=128)
    elif arch == "hubert":
        cfg.update(label_rate=50.0)
    elif arch == "wav2vec2":
        cfg.update(
            latent_vars=32 if size == "tiny" else 320,
            latent_groups=2,
            quantize_targets=True,
            latent_temp=(2.0, 0.5, 0.999995),
        )
    return cfg


def build_checkpoint(arch: str, size: str = "tiny", seed: int = 0, layers: int = None, frontend: str = None) -> dict:
    """Build a randomly initialised model of ``arch`` with s3prl's own classes; return its checkpoint dict.
    ``frontend`` is ``group_norm`` (Base models) or ``layer_norm`` (Large models); default by size."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose from {', '.join(ARCHS)}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
    torch.manual_seed(seed)
    model_cfg = model_config(arch, size, layers, frontend)
    if arch == "wavlm":
        from s3prl.upstream.wavlm.WavLM import WavLM, WavLMConfig

        model = WavLM(WavLMConfig(model_cfg))
        return {"cfg": model_cfg, "model": model.state_dict()}

    from s3prl.upstream.utils import merge_with_parent

    task_cfg = {"sample_rate": SAMPLE_RATE, "normalize": False}
    if arch == "hubert":
        from s3prl.upstream.hubert.hubert_model import HubertConfig, HubertModel, HubertPretrainingConfig

        symbols = [[str(i) for i in range(8 if size == "tiny" else 504)]]
        model = HubertModel(
            merge_with_parent(HubertConfig, model_cfg),
            merge_with_parent(HubertPretrainingConfig, task_cfg),
            symbols,
        )
        return {
            "task_cfg": task_cfg,
            "model_cfg": model_cfg,
            "model_weight": model.state_dict(),
            "dictionaries_symbols": symbols,
        }

    from s3prl.upstream.wav2vec2.wav2vec2_model import Wav2Vec2Config, Wav2Vec2Model

    model = Wav2Vec2Model(merge_with_parent(Wav2Vec2Config, model_cfg))
    return {"task_cfg": task_cfg, "model_cfg": model_cfg, "model_weight": model.state_dict()}


def write_checkpoint(
    path: str, arch: str, size: str = "tiny", seed: int = 0, layers: int = None, frontend: str = None
) -> str:
    """Write a checkpoint (atomically) and return its path."""
    ckpt = build_checkpoint(arch, size, seed, layers, frontend)
    with atomic_write(path, "wb") as handle:
        torch.save(ckpt, handle)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=ARCHS, required=True)
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    parser.add_argument("--layers", type=int, help="number of transformer layers (default: by size: tiny 3, base 12)")
    parser.add_argument(
        "--frontend",
        choices=FRONTENDS,
        help="the Base models' GroupNorm front end or the Large models' LayerNorm one "
        "(default: layer_norm for tiny, group_norm for base)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    write_checkpoint(args.out, args.arch, args.size, args.seed, args.layers, args.frontend)
    size_mb = os.path.getsize(args.out) / 2**20
    frontend = args.frontend or default_frontend(args.size)
    print(
        f"{args.out}: {args.size} {args.arch} ({frontend} front end), seed {args.seed}, {size_mb:.1f} MiB; "
        f"load with -u {HUB_NAMES[args.arch]} -k {args.out}"
    )


if __name__ == "__main__":
    main()
