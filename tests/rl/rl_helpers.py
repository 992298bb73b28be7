"""Shared inputs of the RL reward tests (also imported by the stand-in trainer, managed_parent.py)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

WEIGHTS = {"tiny": 0.5, "other": 2.0}
PROMPTS = ["a red bicycle", "a red bicycle", "a red bicycle", "a cat on a sofa", "a cat on a sofa"]


def uint8_batch(count: int = len(PROMPTS), seed: int = 3, size: tuple[int, int] = (40, 48)) -> np.ndarray:
    """Generated-looking images [N, H, W, 3] uint8."""
    return np.random.default_rng(seed).integers(0, 256, (count, *size, 3), dtype=np.uint8)


def input_forms(batch: np.ndarray) -> dict[str, object]:
    """The same pixels in each form trainers pass: NCHW float in [0, 1], NHWC uint8 tensor and array, PIL list."""
    return {"nchw_float": torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0,
            "nhwc_uint8_tensor": torch.from_numpy(batch), "nhwc_uint8_numpy": batch,
            "pil": [Image.fromarray(image) for image in batch]}


def expected_raw(scorers: dict[str, object], batch: np.ndarray, prompts: list[str]) -> dict[str, np.ndarray]:
    """Each reward's scores through the plain scoring API."""
    return {name: np.asarray(scorer.score_batch(prompts, list(batch)), np.float32) for name, scorer in scorers.items()}
