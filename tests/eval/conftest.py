"""Fixtures shared by the evaluation tests."""

from pathlib import Path

import pytest
from eval.eval_helpers import write_tiny_openai_clip
from eval.fid_helpers import write_seeded_fid_weights
from torch import nn


@pytest.fixture(scope="session")
def tiny_clip_file(tmp_path_factory) -> tuple[Path, nn.Module]:
    path = tmp_path_factory.mktemp("clip") / "ViT-L-14.pt"
    return path, write_tiny_openai_clip(path)


@pytest.fixture(scope="session")
def seeded_fid_weights(tmp_path_factory) -> Path:
    """Seeded weights in the layout of pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``."""
    return write_seeded_fid_weights(tmp_path_factory.mktemp("fid") / "pt_inception-seeded.pth")
