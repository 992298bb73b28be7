"""Fixtures: tiny saved models and the real server on a loopback port."""

from __future__ import annotations

from pathlib import Path

import pytest

from imreward.testing import tiny_model
from serve.serve_helpers import GRACEFUL_EXIT, ServerProcess


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    """Two tiny models (different seeds) saved with save_pretrained."""
    folders = {}
    for name, seed in (("tiny", 0), ("other", 1)):
        folder = tmp_path_factory.mktemp(name)
        tiny_model(seed=seed).save_pretrained(folder)
        folders[name] = folder
    return folders


@pytest.fixture(scope="session")
def server(model_dirs) -> ServerProcess:
    """Two models, small limits: 8 images per request, 1 MiB bodies, 1 Mpixel images."""
    running = ServerProcess(["--model", f"tiny={model_dirs['tiny']}", "--model", f"other={model_dirs['other']}",
                             "--max-images", "8", "--max-body-mb", "1", "--max-pixels", "1000000",
                             "--max-wait-ms", "10", "--decode-workers", "2"])
    yield running
    assert running.stop() in GRACEFUL_EXIT
