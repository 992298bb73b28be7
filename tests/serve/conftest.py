"""Fixtures: tiny saved models and two real servers on loopback ports, started side by side."""

from __future__ import annotations

from pathlib import Path

import pytest

from imreward.testing import tiny_model
from serve.serve_helpers import GRACEFUL_EXIT, HARDENED_LIMITS, MAX_QUEUED_IMAGES, TOKEN, ServerProcess


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
def servers(model_dirs) -> dict[str, ServerProcess]:
    """Both servers of the tests, their start-ups (mostly imports) overlapping.

    ``main``: two models, small limits: 8 images per request, 1 MiB bodies, 1 Mpixel images.
    ``slow_batching``: batches wait 1.5 s to fill up, a token is required, at most
    ``MAX_QUEUED_IMAGES`` images in flight.
    ``hardened``: short connection limits (``HARDENED_LIMITS``) for the attack tests.
    """
    started = {
        "main": ServerProcess(["--model", f"tiny={model_dirs['tiny']}", "--model", f"other={model_dirs['other']}",
                               "--max-images", "8", "--max-body-mb", "1", "--max-pixels", "1000000",
                               "--max-wait-ms", "10", "--decode-workers", "2"], wait=False),
        "slow_batching": ServerProcess(["--model", str(model_dirs["tiny"]), "--max-wait-ms", "1500",
                                        "--token", TOKEN, "--max-queued-images", str(MAX_QUEUED_IMAGES)], wait=False),
        "hardened": ServerProcess(["--model", str(model_dirs["tiny"]),
                                   "--header-timeout", str(HARDENED_LIMITS["header"]),
                                   "--body-timeout", str(HARDENED_LIMITS["body"]),
                                   "--keep-alive-timeout", str(HARDENED_LIMITS["keep_alive"]),
                                   "--max-connections", str(HARDENED_LIMITS["connections"])], wait=False),
    }
    try:
        for running in started.values():
            running.wait_until_ready()
        yield started
    finally:
        exit_statuses = {name: running.stop() for name, running in started.items()}
    assert exit_statuses["main"] in GRACEFUL_EXIT


@pytest.fixture(scope="session")
def server(servers) -> ServerProcess:
    return servers["main"]


@pytest.fixture(scope="session")
def hardened_server(servers) -> ServerProcess:
    return servers["hardened"]


@pytest.fixture(scope="session")
def slow_batching_server(servers) -> ServerProcess:
    return servers["slow_batching"]
