"""Fixtures for the training tests: a tiny synthetic dataset and tiny model configs (no network)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from imreward.config import HeadConfig
from imreward.data.synthetic import write_synthetic_dataset
from imreward.testing import tiny_config
from imreward.train import TrainConfig

CORRUPT_IMAGES = 3  # first image of prompts 0, 1, 2: zero bytes, not an image, zero bytes


def deterministic_tiny_config():
    """tiny_config without dropout: the same weights and batch give the same update on any process count."""
    config = tiny_config(image_size=32)
    return dataclasses.replace(config, text=dataclasses.replace(config.text, hidden_dropout=0.0, attention_dropout=0.0),
                               head=HeadConfig(hidden_sizes=(16, 8), dropouts=(0.0, 0.0)))


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    write_synthetic_dataset(folder, train_prompts=16, validation_prompts=6, test_prompts=6, images_per_prompt=3,
                            image_size=32, seed=1, images_per_zip=20, corrupt_images=CORRUPT_IMAGES)
    return folder


@pytest.fixture(scope="session")
def tiny_config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("configs") / "tiny.json"
    tiny_config(image_size=32).save(path)
    return path


@pytest.fixture(scope="session")
def deterministic_config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("configs") / "tiny_no_dropout.json"
    deterministic_tiny_config().save(path)
    return path


def tiny_run(data: Path, output: Path, model_config: Path, **overrides) -> TrainConfig:
    """A TrainConfig for a few-second CPU run on ``data``."""
    settings = dict(train_data=data, val_data=data, output_dir=output, model_config=model_config, batch_size=4,
                    lr=1e-3, num_workers=0, device="cpu", progress=False, tensorboard=False, seed=3)
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture(autouse=True)
def one_thread(single_cpu_thread):
    """Every test here runs on one intra-op thread (see tests/conftest.py)."""
