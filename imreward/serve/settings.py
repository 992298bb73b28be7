"""Limits and batching options of the reward server."""

from __future__ import annotations

import os
from dataclasses import dataclass

from imreward.image_io import FORBIDDEN_FORMATS, WEB_FORMATS

TOKEN_ENV = "IMREWARD_SERVE_TOKEN"


@dataclass(frozen=True)
class ServeSettings:
    """Options of one server instance.

    Args:
        max_batch_size: images per model forward; requests arriving together share batches.
        max_wait_ms: how long the first queued image waits for others to fill its batch.
        max_body_bytes: requests with a larger body get 413 before being read in full.
        max_images_per_request: requests with more images get 413.
        max_pixels: images with more pixels (width x height, read from the header) fail their item.
        decode_workers: threads decoding and preprocessing images off the event loop.
        token: if set, ``/v1/*`` and ``/metrics`` need ``Authorization: Bearer <token>``; it must
            not be empty or contain white space (an empty one would accept a bare ``Bearer``).
        max_queued_images: images accepted and not yet answered, over all requests; a request that
            would exceed it gets 503 with ``Retry-After`` (None: no limit).
        retry_after_s: the ``Retry-After`` seconds of that 503.
        header_timeout_s: a connection is closed if a request's headers are not complete this long
            after it opened or after the request's first byte.
        body_timeout_s: a connection is closed if a request's body is not complete this long after
            its headers (at the 64 MiB body limit, 60 s means at least 1.1 MB/s).
        keep_alive_timeout_s: an idle connection is closed this long after its last response.
        max_connections: open connections; more are answered 503 and closed at once.
        max_header_bytes: request headers (request line included) larger than this get 431 (or
            400 from h11) and the connection is closed.
        limit_concurrency: connections and requests uvicorn handles at once; requests beyond get
            503 (None: no limit besides ``max_connections``).
        image_formats: Pillow ids of the encoded formats accepted (``imreward.image_io.parse_formats``);
            others fail their item, naming the format. EPS, PDF, WMF and EMF can never be allowed.
    """

    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_body_bytes: int = 64 * 2**20
    max_images_per_request: int = 256
    max_pixels: int = 4096 * 4096
    decode_workers: int = min(8, os.cpu_count() or 1)
    token: str | None = None
    max_queued_images: int | None = None
    retry_after_s: int = 1
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    keep_alive_timeout_s: float = 5.0
    max_connections: int = 1000
    max_header_bytes: int = 16 * 1024
    limit_concurrency: int | None = None
    image_formats: frozenset[str] = WEB_FORMATS

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_body_bytes", "max_images_per_request", "max_pixels", "decode_workers",
                     "max_connections", "max_header_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("header_timeout_s", "body_timeout_s", "keep_alive_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.limit_concurrency is not None and self.limit_concurrency < 1:
            raise ValueError("limit_concurrency must be at least 1 (or None for no limit)")
        if self.max_queued_images is not None and self.max_queued_images < 1:
            raise ValueError("max_queued_images must be at least 1 (or None for no limit)")
        if self.token is not None and (not self.token or any(character.isspace() for character in self.token)):
            raise ValueError("the token must not be empty or contain spaces (check --token or $IMREWARD_SERVE_TOKEN)")
        if self.retry_after_s < 0:
            raise ValueError("retry_after_s must not be negative")
        if not self.image_formats or self.image_formats & FORBIDDEN_FORMATS:
            raise ValueError(f"image_formats must be a non-empty set without {sorted(FORBIDDEN_FORMATS)}")
        if self.max_wait_ms < 0:
            raise ValueError("max_wait_ms must not be negative")
