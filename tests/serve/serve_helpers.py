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


def encoded_image(seed: int, size: tuple[int, int] = (48, 40), fmt: str = "PNG") -> bytes:
    """A random RGB image (width, height) encoded as ``fmt``."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """``imreward serve`` in a subprocess on a loopback port."""

    def __init__(self, arguments: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "imreward.cli", "serve", "--device", "cpu", "--host", "127.0.0.1",
                   "--port", str(self.port), "--log-level", "warning", *arguments]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        env={**os.environ, "OMP_NUM_THREADS": "1"})
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
