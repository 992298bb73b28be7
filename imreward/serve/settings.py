"""Limits and batching options of the reward server."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from imreward.image_io import FORBIDDEN_FORMATS, WEB_FORMATS
from imreward.serve.connection_limits import ConnectionLimits

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
            would exceed it gets 503 with ``Retry-After`` (None: no limit). A request alone in the
            server is always admitted.
        max_queued_bytes: the same for the decoded, preprocessed images held (estimated for a new
            request from the largest image of its model so far); 1 GiB holds about 1,700 images
            at 224 px.
        retry_after_s: the ``Retry-After`` seconds of that 503.
        connections: header and body deadlines, keep-alive, connection and header-size limits
            (``imreward.serve.connection_limits.ConnectionLimits``, shared with the annotation server).
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
    max_queued_images: int | None = 512
    max_queued_bytes: int | None = 2**30
    retry_after_s: int = 1
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    image_formats: frozenset[str] = WEB_FORMATS

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_body_bytes", "max_images_per_request", "max_pixels", "decode_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("max_queued_images", "max_queued_bytes"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 (or None for no limit)")
        if self.token is not None and (not self.token or any(character.isspace() for character in self.token)):
            raise ValueError("the token must not be empty or contain spaces (check --token or $IMREWARD_SERVE_TOKEN)")
        if self.retry_after_s < 0:
            raise ValueError("retry_after_s must not be negative")
        if not self.image_formats or self.image_formats & FORBIDDEN_FORMATS:
            raise ValueError(f"image_formats must be a non-empty set without {sorted(FORBIDDEN_FORMATS)}")
        if self.max_wait_ms < 0:
            raise ValueError("max_wait_ms must not be negative")
