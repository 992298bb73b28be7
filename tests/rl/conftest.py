"""Fixtures of the RL reward tests: two tiny saved models, generated images, a venv-like environment."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import imreward
from imreward.testing import tiny_model


@pytest.fixture(autouse=True)
def one_thread(single_cpu_thread):
    """Every test here runs on one intra-op thread (see tests/conftest.py)."""


@pytest.fixture(scope="session")
def reward_model_dirs(tmp_path_factory) -> dict[str, str]:
    """The two rewards of ``rl_helpers.WEIGHTS``: tiny ImageRewards (two seeds) saved with save_pretrained."""
    folders = {}
    for name, seed in (("tiny", 0), ("other", 1)):
        folder = tmp_path_factory.mktemp(f"rl-{name}")
        tiny_model(seed=seed).save_pretrained(folder)
        folders[name] = str(folder)
    return folders


@pytest.fixture(scope="session")
def reward_scorers(reward_model_dirs) -> dict:
    """The saved rewards loaded once (CPU, eval mode)."""
    return {name: imreward.load(folder, device="cpu") for name, folder in reward_model_dirs.items()}


@pytest.fixture(scope="session")
def reward_env_python(tmp_path_factory) -> str:
    """The interpreter of a separate virtual environment that sees this checkout and the project's
    installed packages through a .pth file (as an environment with imreward installed would)."""
    env = tmp_path_factory.mktemp("reward-env")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    checkout = Path(imreward.__file__).resolve().parents[1]
    Path(site, "trainer-free-paths.pth").write_text(f"{checkout}\n{sysconfig.get_paths()['purelib']}\n")
    return str(python)
