"""Helpers of the serve tests: generated images and the real server running in a subprocess."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
from PIL import Image

SERVER_START_TIMEOUT = 90.0
GRACEFUL_EXIT = (0, -signal.SIGTERM)
TOKEN = "s3cret"  # of the slow-batching test server
MAX_QUEUED_IMAGES = 6  # of the slow-batching test server
HARDENED_LIMITS = {"header": 1.0, "body": 1.5, "keep_alive": 1.0, "connections": 6}  # of the hardened server


def encoded_image(seed: int, size: tuple[int, int] = (48, 40), fmt: str = "PNG") -> bytes:
    """A random RGB image (width, height) encoded as ``fmt``."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def metric_sums(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """Each named metric in Prometheus text, summed over its labels (0.0 where absent)."""
    values = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in values:
            values[name] += float(line.rsplit(" ", 1)[1])
    return values


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """``imreward serve`` in a subprocess on a loopback port, with ``threads`` torch threads.

    ``wait=False`` returns at once, so several servers start side by side; call ``wait_until_ready``.
    """

    def __init__(self, arguments: list[str], threads: int = 1, wait: bool = True) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "imreward.cli", "serve", "--device", "cpu", "--host", "127.0.0.1",
                   "--port", str(self.port), "--log-level", "warning", "--threads", str(threads), *arguments]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        if wait:
            self.wait_until_ready()

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stdout.read().decode()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not start in time")

    def alive(self) -> bool:
        return self.process.poll() is None and httpx.get(f"{self.url}/health", timeout=5.0).status_code == 200

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit status: uvicorn re-raises the signal after its graceful shutdown."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def seconds_until_closed(connection: socket.socket, trickle: bytes = b"", every_s: float = 0.2,
                         limit_s: float = 8.0) -> float:
    """Send ``trickle`` one byte every ``every_s`` (nothing if empty) until the server closes the
    connection; seconds from now until then (``limit_s`` if it stayed open)."""
    started = time.monotonic()
    connection.settimeout(every_s)
    position = 0
    while time.monotonic() - started < limit_s:
        try:
            if connection.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
        except ConnectionResetError:
            return time.monotonic() - started
        if trickle:
            try:
                connection.send(trickle[position % len(trickle): position % len(trickle) + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
            position += 1
    return limit_s
