"""Remote placement: the reward models live in an ``imreward serve`` process.

Every rank of a trainer sends its images to the same server, whose dynamic batching then scores
them together; the reward's dependencies stay out of the trainer's environment. Images travel as
raw uint8 pixels by default (no encode/decode, no JPEG loss); ``transport="png"`` or ``"jpeg"``
sends encoded images instead.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from imreward.client import RewardClient, raw_pixels

TRANSPORTS = ("raw", "png", "jpeg")
JPEG_QUALITY = 95  # what Flow-GRPO's remote rewards send
PNG_COMPRESS_LEVEL = 1  # zlib's fastest: on loopback, encoding time matters more than bytes


def encode_for_transport(image: np.ndarray, transport: str) -> bytes | dict:
    """One uint8 image [H, W, 3] as the request carries it."""
    if transport == "raw":
        return raw_pixels(image)
    buffer = io.BytesIO()
    if transport == "png":
        Image.fromarray(image).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    else:
        Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


class RemotePlacement:
    """Scores images through ``imreward serve`` at ``url``.

    Args:
        names: the reward names; each is sent as the request's ``model`` unless ``models`` maps
            it to the server's name for it.
        url, token, timeout, retries: as ``imreward.client.RewardClient`` takes them.
        transport: ``"raw"`` (uint8 pixels), ``"png"`` (lossless, same scores) or ``"jpeg"``.
        max_images_per_request, max_request_bytes: a call is split into requests within the
            server's limits (``--max-images``, ``--max-body-mb``).
        server: a ``ManagedRewardServer`` this placement owns: ``close`` stops it.
    """

    kind = "remote"

    def __init__(self, names: Sequence[str], url: str, models: Mapping[str, str] | None = None,
                 token: str | None = None, timeout: float = 120.0, retries: int = 3, transport: str = "raw",
                 max_images_per_request: int = 256, max_request_bytes: int = 32 * 2**20,
                 server=None) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, got {transport!r}")
        self.server_names = {name: (models or {}).get(name, name) for name in names}
        self.url, self.transport = url, transport
        self.max_images, self.max_bytes = max_images_per_request, max_request_bytes
        self.client = RewardClient(url, token=token, timeout=timeout, retries=retries)
        self.pool = ThreadPoolExecutor(max(1, len(self.server_names)), thread_name_prefix="reward-request")
        self.server = server

    def score(self, names: Sequence[str], images: list[np.ndarray], prompts: list[str]) -> dict[str, np.ndarray]:
        """Raw scores [B] (float32) of each reward in ``names``; the models' requests run side by side."""
        payload = [encode_for_transport(image, self.transport) for image in images]
        futures = {name: self.pool.submit(self._score_one, self.server_names[name], payload, prompts)
                   for name in names}
        return {name: future.result() for name, future in futures.items()}

    def _score_one(self, model: str, payload: list, prompts: list[str]) -> np.ndarray:
        scores: list[float | None] = []
        for start, stop in self._request_slices(payload):
            result = self.client.score_detailed(prompts[start:stop], payload[start:stop], model=model)
            if result.errors:
                raise RuntimeError(f"reward server {self.url} could not score model {model!r}: "
                                   + "; ".join(error["message"] for error in result.errors[:3]))
            scores.extend(result.scores)
        return np.asarray(scores, dtype=np.float32)

    def _request_slices(self, payload: list) -> Iterator[tuple[int, int]]:
        start, size = 0, 0
        for index, item in enumerate(payload):
            item_bytes = len(item["data"]) if isinstance(item, dict) else len(item)
            if index > start and (index - start >= self.max_images or size + item_bytes > self.max_bytes):
                yield start, index
                start, size = index, 0
            size += item_bytes
        if start < len(payload):
            yield start, len(payload)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()
        if self.server is not None:
            self.server.stop()
