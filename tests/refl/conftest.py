"""Fixtures for the ReFL tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def one_thread(single_cpu_thread):
    """Every test here runs on one intra-op thread (see tests/conftest.py)."""


@pytest.fixture
def captioned_images(tmp_path):
    """A JSON file of three image-caption pairs (solid-colour PNGs)."""
    import json

    from PIL import Image

    records = []
    for index, colour in enumerate([(255, 0, 0), (0, 255, 0), (20, 20, 200)]):
        Image.new("RGB", (24, 20), colour).save(tmp_path / f"image{index}.png")
        records.append({"image": f"image{index}.png", "text": f"a plain colour number {index}"})
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(records))
    return path


@pytest.fixture
def fresh_accelerator_state():
    """accelerate keeps one process-wide state whose mixed precision is fixed by the first
    ``Accelerator``; a test asking for another one starts from, and leaves, a reset state."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
