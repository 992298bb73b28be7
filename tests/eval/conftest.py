"""Fixtures shared by the evaluation tests."""

from pathlib import Path

import pytest
from eval.eval_helpers import write_tiny_openai_clip
from torch import nn


@pytest.fixture(scope="session")
def tiny_clip_file(tmp_path_factory) -> tuple[Path, nn.Module]:
    path = tmp_path_factory.mktemp("clip") / "ViT-L-14.pt"
    return path, write_tiny_openai_clip(path)
