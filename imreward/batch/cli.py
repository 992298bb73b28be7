"""``imreward score-dataset``; heavy imports happen inside the handler."""

from __future__ import annotations

import argparse
import sys

from imreward.cli import (DEFAULT_MODEL, add_image_formats_argument, add_model_arguments, add_threads_argument,
                          image_formats_from_args, model_specs, print_summary)


def register(subparsers) -> None:
    from imreward.data.shards import LAYOUTS

    dataset = subparsers.add_parser("score-dataset", help="score WebDataset/Parquet shards, a folder tree, manifest, "
                                                          "ImageRewardDB or hub dataset into one Parquet file per "
                                                          "shard (resumable; --engine ray for clusters)",
                                    conflict_handler="resolve")
    add_model_arguments(dataset)
    dataset.add_argument("--model", action="append", metavar="[NAME=]MODEL",
                         help=f"scorer to run (default {DEFAULT_MODEL}); repeat for several in one pass over the "
                              "images, each image decoded once, into one column score_NAME per model")
    add_image_formats_argument(dataset)
    dataset.add_argument("input", nargs="+",
                         help="tar or Parquet shards (a folder, a glob 'data/*.tar', braces 'data/{00000..00999}.tar'"
                              " or several), an image folder tree, a manifest (.jsonl/.csv/.parquet), an "
                              "ImageRewardDB folder, or a published dataset by hub id (THUDM/ImageRewardDB, "
                              "ymhao/HPDv2, yuvalkirstain/pickapic_v2) or local copy")
    dataset.add_argument("--output", "-o", required=True,
                         help="folder of result files, one <shard>.parquet per input shard; or a .parquet/.jsonl "
                              "file: the shards go to <output>.shards/ and are merged into it when all are done")
    dataset.add_argument("--merge", metavar="FILE", default=None,
                         help="also concatenate the shard files into FILE (.parquet or .jsonl) when all are done")
    dataset.add_argument("--engine", choices=["local", "ray"], default="local",
                         help="local: DataLoader decode workers and one device; ray: Ray Data (imreward[ray])")
    dataset.add_argument("--layout", choices=list(LAYOUTS), default="auto")
    dataset.add_argument("--split", default="train", help="split of a dataset (default: %(default)s)")
    dataset.add_argument("--prompt-field", default=None,
                         help="WebDataset: member holding the prompt (default txt) or json:KEY; Parquet and "
                              "manifests: the prompt column (default prompt/caption/text)")
    dataset.add_argument("--image-field", default=None,
                         help="WebDataset: image member extensions (default jpg,jpeg,png,webp); Parquet: image "
                              "column (default image/jpg/png/webp/img); manifests: path column (default image)")
    dataset.add_argument("--key-field", default=None,
                         help="column (or json:KEY) holding each row's key (default: __key__, key/id column, or "
                              "the image's path)")
    dataset.add_argument("--keep-columns", default="prompt",
                         help="comma-separated source columns to carry into the results: prompt, image (its "
                              "location) or any column / JSON key of the source (default: %(default)s; '' for none)")
    dataset.add_argument("--rows-per-shard", type=int, default=10_000,
                         help="rows per shard of a folder, manifest or dataset (default: %(default)s)")
    dataset.add_argument("--allow-outside-root", action="store_true",
                         help="read images that symlinks or manifest paths place outside the input's folder")
    dataset.add_argument("--batch-size", type=int, default=64)
    dataset.add_argument("--num-workers", type=int, default=None,
                         help="local engine: decoding processes (default: CPU count - 1)")
    dataset.add_argument("--actors", type=int, default=1, help="ray engine: scoring actors (default: %(default)s)")
    dataset.add_argument("--gpus-per-actor", type=float, default=0.0,
                         help="ray engine: GPUs per actor, a fraction shares a GPU (default: %(default)s)")
    dataset.add_argument("--cpus-per-actor", type=float, default=1.0,
                         help="ray engine: CPUs per actor (default: %(default)s)")
    dataset.add_argument("--ray-address", default=None,
                         help="ray engine: cluster to join (auto, ray://HOST:10001; default: start a local Ray)")
    dataset.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_threads_argument(dataset, by_model_size=False)
    dataset.set_defaults(handler=_score_dataset)


def _score_dataset(args: argparse.Namespace) -> int:
    import json

    from imreward.batch.job import SUMMARY, output_locations, score_shards
    from imreward.batch.outputs import RunMismatch
    from imreward.batch.ray_engine import RayOptions
    from imreward.data.shards import ShardOptions, ShardReadError
    from imreward.threads import set_threads

    set_threads(args.threads)  # the model is loaded later: an explicit count, else the cores per process
    if args.batch_size < 1 or args.rows_per_shard < 1 or args.actors < 1:
        raise SystemExit("imreward score-dataset: --batch-size, --rows-per-shard and --actors must be at least 1")
    keep = tuple(column.strip() for column in args.keep_columns.split(",") if column.strip())
    reading = ShardOptions(prompt_field=args.prompt_field, image_field=args.image_field, key_field=args.key_field,
                           keep_columns=keep, rows_per_shard=args.rows_per_shard, split=args.split,
                           allow_outside_root=args.allow_outside_root)
    ray = RayOptions(actors=args.actors, gpus_per_actor=args.gpus_per_actor, address=args.ray_address,
                     cpus_per_actor=args.cpus_per_actor)
    load_options = {name: getattr(args, name) for name in ("download_root", "med_config", "max_length")
                    if getattr(args, name, None) is not None}
    try:
        score_shards(args.input if len(args.input) > 1 else args.input[0], args.output, model_specs(args.model),
                     engine=args.engine, layout=args.layout, reading=reading, batch_size=args.batch_size,
                     num_workers=args.num_workers, device=args.device, dtype=args.dtype,
                     image_formats=image_formats_from_args(args), ray=ray, merge=args.merge,
                     progress=not args.quiet, load_options=load_options)
    except (ShardReadError, RunMismatch, ValueError, FileNotFoundError, ImportError) as error:
        raise SystemExit(f"imreward score-dataset: {error}") from error
    folder, _ = output_locations(args.output, args.merge)
    summary = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
    print_summary(summary, main_process=True)
    if not summary["complete"]:
        print(f"{summary['shards_left']} shards are not scored yet; rerun to finish", file=sys.stderr)
    return 0 if summary["complete"] else 1
