"""Command line: ``python -m upstream_tokens {fit,dump,cache,merge,info}``.

    python -m upstream_tokens fit  --csv data/bvcc/train.csv -u wavlm_base_plus --n_clusters 200 \
        --out tokens/wavlm_base_plus_k200
    python -m upstream_tokens dump --csv data/bvcc/train.csv --store tokens/wavlm_base_plus_k200 --split train
    python -m upstream_tokens info --store tokens/wavlm_base_plus_k200
    python -m upstream_tokens cache --csv data/bvcc/train.csv --split train -u wavlm_base_plus \
        --store cache/wavlm_base_plus

Sharded (N GPUs or N array jobs; ranks default to torchrun's RANK / WORLD_SIZE / LOCAL_RANK):

    python -m upstream_tokens fit  ... --out STORE --nshard N --rank R   then   fit --out STORE --from_shards N
    python -m upstream_tokens dump ... --store STORE --split S --nshard N --rank R
    then   python -m upstream_tokens merge --store STORE --split S --nshard N
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import torch

from distilmos.data.batching import AUTO, parse_max_pad
from distilmos.errors import reports_errors

from .extract import Batching


def _default_device() -> str:
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return "cpu"


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _add_batching(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("forward batching (length-aware)")
    group.add_argument(
        "--max_batch_seconds",
        type=float,
        default=100.0,
        help="padded audio per forward batch, in seconds (default 100)",
    )
    group.add_argument("--max_batch_utts", type=int, default=64, help="utterances per forward batch (default 64)")
    group.add_argument(
        "--max_pad",
        type=parse_max_pad,
        default=AUTO,
        help="most padding a row may get, as a fraction of its batch's longest utterance, or "
        "none. Default auto: no cap for WavLM / HuBERT / wav2vec 2.0 (their padding-exact "
        "forward), 0.02 for other upstreams; 0 = equal lengths only (see upstream_tokens.extract)",
    )
    group.add_argument(
        "--num_workers", type=int, default=None, help="audio read-ahead processes (default 2 on CUDA, 0 on CPU)"
    )


def _add_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default=None, help="cpu, cuda or cuda:N (default: cuda:LOCAL_RANK if available, else cpu)"
    )
    parser.add_argument("--nshard", type=int, default=None, help="number of shards (default: WORLD_SIZE or 1)")
    parser.add_argument("--rank", type=int, default=None, help="this shard, 0..nshard-1 (default: RANK or 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace what is there")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m upstream_tokens", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    fit = sub.add_parser("fit", help="learn per-layer k-means centroids; creates a token store")
    fit.add_argument("--csv", help="data list to fit on (sample_id,system_id,wav_path,score)")
    fit.add_argument("-u", "--upstream", help="s3prl hub name, NAME_local (with -k) or package.module:callable")
    fit.add_argument("-k", "--upstream_ckpt", default=None, help="checkpoint path or URL for the upstream")
    fit.add_argument("--out", required=True, help="store folder to create")
    fit.add_argument("--layers", default="all", help="all (1..N, default), 1-12, 3,6,9; 0 = pre-transformer features")
    fit.add_argument("--n_clusters", type=int, default=200, help="k (default 200)")
    fit.add_argument("--batch_size", type=int, default=64, help="k-means mini-batch size in frames (default 64)")
    fit.add_argument(
        "--init_size",
        type=int,
        default=None,
        help="frames seeding the centres (default max(3*batch_size, 3*k) as sklearn)",
    )
    fit.add_argument(
        "--backend",
        choices=("sklearn", "torch"),
        default="sklearn",
        help="sklearn MiniBatchKMeans.partial_fit (default) or the torch implementation (GPU/CPU)",
    )
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument(
        "--from_shards",
        type=int,
        default=None,
        metavar="N",
        help="combine the N shard fits in STORE/fit_shards into the store (other options are taken from the shards)",
    )
    _add_run(fit)
    _add_batching(fit)

    dump = sub.add_parser("dump", help="write the token ids of a data list as one split of a store")
    dump.add_argument("--csv", required=True)
    dump.add_argument("--store", required=True)
    dump.add_argument("--split", required=True, help="split name, e.g. train, val, test")
    dump.add_argument(
        "-k", "--upstream_ckpt", default=None, help="the store's checkpoint at a new path (must have the same sha256)"
    )
    _add_run(dump)
    _add_batching(dump)

    cache = sub.add_parser(
        "cache",
        help="write a frozen upstream's hidden states of a data list as one split of a "
        "feature cache (created on first use)",
    )
    cache.add_argument("--csv", required=True)
    cache.add_argument("--store", required=True, help="feature cache folder")
    cache.add_argument("--split", required=True, help="split name, e.g. train, val, test")
    cache.add_argument(
        "-u", "--upstream", required=True, help="s3prl hub name, NAME_local (with -k) or package.module:callable"
    )
    cache.add_argument("-k", "--upstream_ckpt", default=None, help="checkpoint path or URL for the upstream")
    cache.add_argument(
        "--layers",
        default="hidden_states",
        help="hidden_states (0..N, every layer the featurizer sees; default), or the layer a run "
        "selects: last for -s last_hidden_state, 12 for -s hidden_state_12",
    )
    cache.add_argument(
        "--dtype",
        choices=("float32", "float16"),
        default="float32",
        help="on disk (default float32; float16 halves the disk, reads back as float32)",
    )
    _add_run(cache)
    _add_batching(cache)

    merge = sub.add_parser(
        "merge", help="finish a sharded dump (tokens or features): write the split from every rank's parts"
    )
    merge.add_argument("--store", required=True)
    merge.add_argument("--split", required=True)
    merge.add_argument("--nshard", type=int, default=None, help="shard count of the dump (names unfinished ranks)")

    info = sub.add_parser("info", help="print a store's meta, summary and splits")
    info.add_argument("--store", required=True)
    return parser


def _batching(args, device: str) -> Batching:
    workers = args.num_workers if args.num_workers is not None else (2 if device.startswith("cuda") else 0)
    return Batching(args.max_batch_seconds, args.max_batch_utts, args.max_pad, workers)


def _is_feature_cache(path: str) -> bool:
    from distilmos.data.stores import META, read_json

    meta = os.path.join(path, META)
    return os.path.isfile(meta) and read_json(meta).get("kind") == "features"


def _shards(args):
    nshard = args.nshard if args.nshard is not None else _env_int("WORLD_SIZE", 1)
    rank = args.rank if args.rank is not None else _env_int("RANK", 0)
    return nshard, rank


def _run_options(args) -> dict:
    """What fit, dump and cache take alike: device, batching, this process's shard, progress, overwrite."""
    device = args.device or _default_device()
    nshard, rank = _shards(args)
    return {
        "device": device,
        "batching": _batching(args, device),
        "nshard": nshard,
        "rank": rank,
        "progress": not args.quiet,
        "overwrite": args.overwrite,
    }


@reports_errors
def main(argv: list[str] | None = None) -> int:
    """``python -m upstream_tokens`` / ``distilmos-tokens``: the run's summary as JSON on stdout; exit status 0,
    or 2 with one error message (bad input)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = _run(args)
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


def _options(args, *names: str) -> dict:
    """The options ``names`` as keyword arguments (the flags are named as the functions' parameters)."""
    return {name: getattr(args, name) for name in names}


def _run(args) -> dict:
    if args.command == "fit":
        from .fit import fit_from_shards, fit_store

        if args.from_shards is not None:
            result = fit_from_shards(args.out, args.from_shards, overwrite=args.overwrite)
        else:
            if not args.csv or not args.upstream:
                build_parser().error("fit needs --csv and -u/--upstream (or --from_shards N)")
            kmeans = _options(args, "layers", "n_clusters", "batch_size", "init_size", "backend", "seed")
            result = fit_store(args.csv, args.upstream, args.upstream_ckpt, args.out, **kmeans, **_run_options(args))
    elif args.command == "dump":
        from .dump import dump_split

        result = dump_split(args.csv, args.store, args.split, upstream_ckpt=args.upstream_ckpt, **_run_options(args))
    elif args.command == "cache":
        from .feature_cache import dump_features

        features = _options(args, "upstream", "upstream_ckpt", "layers", "dtype")
        result = dump_features(args.csv, args.store, args.split, **features, **_run_options(args))
    elif args.command == "merge":
        from .splits import split_lock

        if _is_feature_cache(args.store):
            from .feature_cache import merge_features as merge
        else:
            from .dump import finalize_split as merge
        with split_lock(args.store, args.split):
            result = merge(args.store, args.split, args.nshard)
    else:
        if _is_feature_cache(args.store):
            from distilmos.data.stores import FeatureStore as Store
        else:
            from distilmos.data.stores import TokenStore as Store

        store = Store(args.store)
        result = {"store": store.path, "meta": store.meta, "summary": store.summary, "splits": store.split_sizes()}
    return result
