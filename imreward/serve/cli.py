"""``imreward serve``; heavy imports happen inside the handler."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from imreward.cli import (DEFAULT_MODEL, add_image_formats_argument, add_model_arguments, image_formats_from_args,
                          load_model_from_args, model_specs)
from imreward.serve.connection_limits import add_connection_arguments, connection_limits_from_args
from imreward.serve.settings import TOKEN_ENV, ServeSettings


def register(subparsers) -> None:
    """Add the ``serve`` command."""
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
    serve.add_argument("--max-queued-images", type=int, default=defaults.max_queued_images,
                       help="images in flight over all requests; more get 503 with Retry-After (default: "
                            "%(default)s; 0: no limit)")
    serve.add_argument("--max-queued-mb", type=float, default=defaults.max_queued_bytes / 2**20,
                       help="decoded images held over all requests, in MiB; more get 503 with Retry-After "
                            "(default: %(default)s; 0: no limit)")
    add_connection_arguments(serve)
    serve.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                       help=f"require 'Authorization: Bearer TOKEN' (default: ${TOKEN_ENV})")
    serve.add_argument("--graceful-timeout", type=float, default=30.0,
                       help="seconds to finish requests in flight on shutdown")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(handler=_serve)


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
                                 max_queued_images=args.max_queued_images or None,
                                 max_queued_bytes=int(args.max_queued_mb * 2**20) or None, image_formats=formats,
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
