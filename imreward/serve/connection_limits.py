"""Connection limits shared by the reward server and the annotation server, and their options.

Kept free of uvicorn imports, so that building the command line stays cheap; the uvicorn
protocols that enforce them are in ``imreward.serve.connections``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may cost a server before its request reaches the application.

    Args:
        header_timeout_s: a connection is closed if a request's headers are not complete this long
            after it opened or after the request's first byte.
        body_timeout_s: a connection is closed if a request's body (trailers included) is not
            complete this long after its headers (at a 64 MiB body, 60 s means at least 1.1 MB/s).
        keep_alive_timeout_s: an idle connection is closed this long after its last response.
        max_connections: open connections; more are answered 503 and closed at once.
        max_header_bytes: request headers (request line included), and separately a chunked body's
            framing and trailers, larger than this get 431 (or 400 from h11) and the connection is closed.
        limit_concurrency: connections and requests uvicorn handles at once; requests beyond get
            503 (None: no limit besides ``max_connections``).
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    keep_alive_timeout_s: float = 5.0
    max_connections: int = 1000
    max_header_bytes: int = 16 * 1024
    limit_concurrency: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_header_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("header_timeout_s", "body_timeout_s", "keep_alive_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.limit_concurrency is not None and self.limit_concurrency < 1:
            raise ValueError("limit_concurrency must be at least 1 (or None for no limit)")


def add_connection_arguments(parser: argparse.ArgumentParser, defaults: ConnectionLimits = ConnectionLimits()) -> None:
    """The ``--header-timeout``, ``--body-timeout``, ``--keep-alive-timeout``, ``--max-connections``
    and ``--limit-concurrency`` options of a server command."""
    parser.add_argument("--limit-concurrency", type=int, default=None,
                        help="connections and requests uvicorn handles at once; more get 503 (default: no limit)")
    parser.add_argument("--max-connections", type=int, default=defaults.max_connections,
                        help="open connections; more are answered 503 and closed (default: %(default)s)")
    parser.add_argument("--header-timeout", type=float, default=defaults.header_timeout_s, metavar="SECONDS",
                        help="close a connection whose request headers take longer (default: %(default)s)")
    parser.add_argument("--body-timeout", type=float, default=defaults.body_timeout_s, metavar="SECONDS",
                        help="close a connection whose request body takes longer after its headers "
                             "(default: %(default)s)")
    parser.add_argument("--keep-alive-timeout", type=float, default=defaults.keep_alive_timeout_s, metavar="SECONDS",
                        help="close a connection idle this long after a response (default: %(default)s)")


def connection_limits_from_args(args: argparse.Namespace) -> ConnectionLimits:
    """The limits the options of ``add_connection_arguments`` give; ValueError for invalid ones."""
    return ConnectionLimits(header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout,
                            keep_alive_timeout_s=args.keep_alive_timeout, max_connections=args.max_connections,
                            limit_concurrency=args.limit_concurrency)
