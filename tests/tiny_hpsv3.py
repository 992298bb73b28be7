"""A reduced HPSv3 in the published layout: the Qwen2-VL base files of ``tests/golden/hpsv3/`` and a
checkpoint of name-seeded tensors (``scripts/make_golden_hpsv3.py`` scored the same one with hpsv3 1.0.0)."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

import imreward
from imreward.testing import seeded_state_dict

GOLDEN = Path(__file__).resolve().parent / "golden"
BASE = GOLDEN / "hpsv3" / "base"


def golden_values() -> dict:
    """The original's outputs, tokens and patch statistics (``tests/golden/hpsv3/scores.json``)."""
    return json.loads((GOLDEN / "hpsv3" / "scores.json").read_text(encoding="utf-8"))


def published_layout_shapes() -> dict[str, tuple[int, ...]]:
    """Each tensor's name and shape in the reduced checkpoint, as HPSv3.safetensors names them."""
    return {k: tuple(v) for k, v in json.loads((GOLDEN / "hpsv3" / "published_keys.json").read_text()).items()}


def write_checkpoint(path: Path) -> Path:
    """Save the seeded checkpoint the golden values were computed with to ``path`` (safetensors)."""
    save_file(seeded_state_dict(published_layout_shapes(), salt=golden_values()["salt"]), str(path))
    return path


def load_tiny_hpsv3(checkpoint: Path, **options):
    """``load_score("HPSv3")`` of ``checkpoint`` on the reduced base, on the CPU unless ``device`` is given."""
    return imreward.load_score("HPSv3", **{"device": "cpu", **options}, checkpoint=checkpoint, base_model=BASE)
