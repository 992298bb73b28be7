"""Python clients of ``imreward serve``, for RL loops and scripts (imports only httpx and msgpack).

    from imreward.client import RewardClient
    with RewardClient("http://127.0.0.1:8000") as client:
        rewards = client.score("a cat on a sofa", [png_bytes, "sample.jpg", pil_image])

Requests travel as msgpack (raw image bytes, no base64, no pickle); a uint8 array [H, W, 3] travels
as its raw pixels (``raw_pixels``), with no PNG/JPEG round trip. Connection failures, timeouts
and 429/502/503/504 answers are retried with exponential backoff, or after the server's
``Retry-After`` (scoring is idempotent); other 4xx answers raise ``RewardServerError`` at once
with the server's message.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import msgpack

MSGPACK = "application/msgpack"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_AFTER = 60.0


class RewardServerError(RuntimeError):
    """The server refused a request (4xx) or kept failing (5xx) after the retries."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


@dataclass
class ScoreResult:
    """One score per image (None where the image failed) and ``[{"index", "message"}]`` for the failures;
    ``normalized``: the z-scores within each prompt's images, when asked for with ``normalize``."""

    scores: list[float | None]
    errors: list[dict]
    normalized: list[float | None] | None = None


def raw_pixels(array: object) -> dict:
    """The raw-pixel form of a uint8 numpy array [H, W, 3] (or [H, W], [H, W, 1], [H, W, 4]):
    ``{"shape": [...], "dtype": "uint8", "data": bytes}``, C order."""
    if str(getattr(array, "dtype", "")) != "uint8":
        raise TypeError(f"raw pixels must be a uint8 array, got {getattr(array, 'dtype', type(array).__name__)}")
    return {"shape": list(array.shape), "dtype": "uint8", "data": array.tobytes(order="C")}


def encode_image(image: object) -> bytes | dict:
    """Encoded image bytes for bytes, a file path or a PIL image (sent as PNG); the raw pixels
    (``raw_pixels``) of a uint8 numpy array; a raw-pixel map as it is."""
    if isinstance(image, dict):
        return image
    if hasattr(image, "__array_interface__") and not hasattr(image, "save"):
        return raw_pixels(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as stream:
            return stream.read()
    if hasattr(image, "save"):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    raise TypeError(f"send images as encoded bytes, file paths, PIL images or uint8 arrays, not {type(image).__name__}")


def _score_request(prompts: str | Sequence[str], images: Sequence[object], model: str | None,
                   normalize: str | None = None) -> dict:
    body = {"prompts": [prompts] if isinstance(prompts, str) else list(prompts),
            "images": [encode_image(image) for image in images]}
    if model is not None:
        body["model"] = model
    if normalize is not None:
        body["normalize"] = normalize
    return {"content": msgpack.packb(body), "headers": {"content-type": MSGPACK, "accept": MSGPACK}}


def _content(response: httpx.Response) -> dict:
    kind = response.headers.get("content-type", "")
    try:
        content = msgpack.unpackb(response.content) if kind.startswith(MSGPACK) else response.json()
    except ValueError:
        content = {"detail": response.text}
    if response.status_code >= 400:
        detail = content.get("detail", response.text) if isinstance(content, dict) else response.text
        raise RewardServerError(response.status_code, str(detail))
    return content


def _retry_delay(attempt: int, retries: int, backoff: float, response: httpx.Response | None) -> float | None:
    """Seconds to wait before trying again, or None to stop (``response`` None: a transport error).

    The server's ``Retry-After`` (in seconds, at most ``MAX_RETRY_AFTER``) wins over the backoff.
    """
    if attempt >= retries or (response is not None and response.status_code not in RETRY_STATUSES):
        return None
    retry_after = response.headers.get("retry-after", "") if response is not None else ""
    if retry_after.strip().isdigit():
        return min(float(retry_after), MAX_RETRY_AFTER)
    return backoff * 2**attempt * (1.0 + 0.25 * random.random())


class RewardClient:
    """Blocking client with timeouts and retries.

    Args:
        base_url: where ``imreward serve`` listens.
        token: bearer token, if the server requires one.
        timeout: seconds per attempt (connect, read, write).
        retries: extra attempts after a connection failure, timeout or 429/502/503/504.
        backoff: first wait in seconds; doubles on each retry.
        model: model name used when a call does not give one (None: the server's default).
        transport: an httpx transport to use instead of the network (tests, custom TLS or proxies).
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8000", token: str | None = None, timeout: float = 60.0,
                 retries: int = 3, backoff: float = 0.25, model: str | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url, timeout=timeout, headers=headers, transport=transport)
        self.retries, self.backoff, self.model = retries, backoff, model

    def score(self, prompts: str | Sequence[str], images: Sequence[object], model: str | None = None
              ) -> list[float | None]:
        """Scores of (prompt, image) pairs in order; one prompt may stand for all images."""
        return self.score_detailed(prompts, images, model).scores

    def score_detailed(self, prompts: str | Sequence[str], images: Sequence[object], model: str | None = None,
                       normalize: str | None = None) -> ScoreResult:
        """Scores, errors and, with ``normalize="prompt-zscore"``, the z-scores within each prompt's images."""
        request = _score_request(prompts, images, model or self.model, normalize)
        content = _content(self._send("POST", "/v1/score", **request))
        return ScoreResult(content["scores"], content["errors"], content.get("normalized"))

    def models(self) -> list[dict]:
        return _content(self._send("GET", "/v1/models"))["models"]

    def health(self) -> dict:
        return _content(self._send("GET", "/health"))

    def _send(self, method: str, path: str, **request) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **request)
            except httpx.TransportError:
                if attempt >= self.retries:
                    raise
                response = None
            delay = _retry_delay(attempt, self.retries, self.backoff, response)
            if delay is None:
                return response
            time.sleep(delay)
            attempt += 1

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RewardClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class AsyncRewardClient:
    """The asyncio counterpart of ``RewardClient`` (same arguments), for concurrent requests."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", token: str | None = None, timeout: float = 60.0,
                 retries: int = 3, backoff: float = 0.25, model: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=headers, transport=transport)
        self.retries, self.backoff, self.model = retries, backoff, model

    async def score(self, prompts: str | Sequence[str], images: Sequence[object], model: str | None = None
                    ) -> list[float | None]:
        return (await self.score_detailed(prompts, images, model)).scores

    async def score_detailed(self, prompts: str | Sequence[str], images: Sequence[object],
                             model: str | None = None, normalize: str | None = None) -> ScoreResult:
        request = _score_request(prompts, images, model or self.model, normalize)
        content = _content(await self._send("POST", "/v1/score", **request))
        return ScoreResult(content["scores"], content["errors"], content.get("normalized"))

    async def models(self) -> list[dict]:
        return _content(await self._send("GET", "/v1/models"))["models"]

    async def health(self) -> dict:
        return _content(await self._send("GET", "/health"))

    async def _send(self, method: str, path: str, **request) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, **request)
            except httpx.TransportError:
                if attempt >= self.retries:
                    raise
                response = None
            delay = _retry_delay(attempt, self.retries, self.backoff, response)
            if delay is None:
                return response
            await asyncio.sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncRewardClient":
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()
