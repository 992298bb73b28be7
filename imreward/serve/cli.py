"""``imreward serve`` and ``imreward score-dataset``; heavy imports happen inside the handlers."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from imreward.cli import (add_image_formats_argument, add_model_arguments, add_threads_argument,
                          image_formats_from_args, load_model_from_args)
from imreward.serve.connection_limits import add_connection_arguments, connection_limits_from_args
from imreward.serve.settings import TOKEN_ENV, ServeSettings

DEFAULT_MODEL = "ImageReward-v1.0"


def register(subparsers) -> None:
    """Add the ``serve`` and ``score-dataset`` commands."""
    defaults = ServeSettings()
    serve = subparsers.add_parser("serve", help="serve rewards over HTTP with dynamic batching",
                                  conflict_handler="resolve")
    add_model_arguments(serve)
    add_image_formats_argument(serve)
    serve.add_argument("--model", action="append", metavar="[NAME=]MODEL",
                       help=f"model to load (repeat for several; the first is the default; default {DEFAULT_MODEL}); "
                            "NAME= sets the name requests use")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: localhost only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-batch-size", type=int, default=defaults.max_batch_size)
    serve.add_argument("--max-wait-ms", type=float, default=defaults.max_wait_ms,
                       help="how long a batch waits to fill up (default: %(default)s)")
    serve.add_argument("--max-body-mb", type=float, default=defaults.max_body_bytes / 2**20)
    serve.add_argument("--max-images", type=int, default=defaults.max_images_per_request,
                       help="images per request (default: %(default)s)")
    serve.add_argument("--max-pixels", type=int, default=defaults.max_pixels, help="pixels per image")
    serve.add_argument("--decode-workers", type=int, default=defaults.decode_workers)
    serve.add_argument("--threads", type=int, default=None,
                       help="torch threads of the model forward (default: torch's default, one per core)")
    serve.add_argument("--max-queued-images", type=int, default=None,
                       help="images in flight over all requests; more get 503 with Retry-After (default: no limit)")
    add_connection_arguments(serve)
    serve.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                       help=f"require 'Authorization: Bearer TOKEN' (default: ${TOKEN_ENV})")
    serve.add_argument("--graceful-timeout", type=float, default=30.0,
                       help="seconds to finish requests in flight on shutdown")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(handler=_serve)

    dataset = subparsers.add_parser("score-dataset", help="score a folder tree, manifest or ImageRewardDB dataset "
                                                          "into parquet / JSON lines (resumable, torchrun-sharded)",
                                    conflict_handler="resolve")
    add_model_arguments(dataset)
    dataset.add_argument("--model", action="append", metavar="[NAME=]MODEL",
                         help=f"scorer to run (default {DEFAULT_MODEL}); repeat for several in one pass over the "
                              "images, each image decoded once, into one column score_NAME per model")
    add_image_formats_argument(dataset)
    dataset.add_argument("input", type=Path,
                         help="image folder tree, manifest (.jsonl/.csv/.parquet), ImageRewardDB folder, or a "
                              "published dataset by hub id (THUDM/ImageRewardDB, ymhao/HPDv2, "
                              "yuvalkirstain/pickapic_v2) or local copy")
    dataset.add_argument("--output", "-o", type=Path, required=True, help="result file: .parquet or .jsonl")
    dataset.add_argument("--layout", choices=["auto", "folder", "manifest", "imagerewarddb", "dataset"],
                         default="auto")
    dataset.add_argument("--split", default="train", help="split of a dataset (default: %(default)s)")
    dataset.add_argument("--batch-size", type=int, default=64)
    dataset.add_argument("--num-workers", type=int, default=None, help="decoding processes (default: CPU count)")
    dataset.add_argument("--rows-per-part", type=int, default=4096,
                         help="rows per committed part file; a crash loses at most this many (default: %(default)s)")
    dataset.add_argument("--no-merge", action="store_true", help="leave the part files; merge in a later run")
    dataset.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_threads_argument(dataset, by_model_size=False)
    dataset.set_defaults(handler=_score_dataset)


def model_specs(specs: list[str] | None) -> dict[str, str]:
    """Name -> scorer spec of each ``--model`` (default ``DEFAULT_MODEL``); refuses two with one name."""
    models: dict[str, str] = {}
    for spec in specs or [DEFAULT_MODEL]:
        name, source = parse_model_spec(spec)
        if name in models:
            raise SystemExit(f"two models are named {name!r}: give them names with NAME=MODEL")
        models[name] = source
    return models


def parse_model_spec(spec: str) -> tuple[str, str]:
    """``"name=path"`` -> (name, path); a bare path or registry name is named after its last component."""
    name, separator, source = spec.partition("=")
    if separator and name and "/" not in name and os.sep not in name:
        return name, source
    return Path(spec.rstrip("/\\")).name or spec, spec


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _serve(args: argparse.Namespace) -> int:
    import torch

    from imreward.serve.app import create_app
    from imreward.serve.connections import run_server

    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    formats = image_formats_from_args(args)
    models = {name: load_model_from_args(args, source) for name, source in model_specs(args.model).items()}
    try:
        settings = ServeSettings(max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
                                 max_body_bytes=int(args.max_body_mb * 2**20), max_images_per_request=args.max_images,
                                 max_pixels=args.max_pixels, decode_workers=args.decode_workers, token=args.token,
                                 max_queued_images=args.max_queued_images, image_formats=formats,
                                 connections=connection_limits_from_args(args))
    except ValueError as error:
        raise SystemExit(f"imreward serve: error: {error}") from None
    if not _is_loopback(args.host) and not args.token:
        print(f"warning: serving on {args.host} without a token; anyone who can reach the port can use the model "
              f"(set --token or ${TOKEN_ENV})", file=sys.stderr)
    try:
        app = create_app(models, settings)
    except ValueError as error:
        raise SystemExit(f"imreward serve: {error}")
    run_server(app, settings.connections, host=args.host, port=args.port, log_level=args.log_level,
               graceful_timeout=args.graceful_timeout)
    return 0


def _score_dataset(args: argparse.Namespace) -> int:
    from imreward.serve.dataset_scoring import score_dataset_command
    from imreward.threads import set_threads

    set_threads(args.threads)  # the model is loaded later: an explicit count, else the cores per process
    return score_dataset_command(args, model_specs(args.model))
