"""Builders shared by the ReFL tests: tiny random diffusers components and a trainer over them."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("accelerate")
pytest.importorskip("peft")

from imreward.refl import ReFLConfig, ReFLTrainer, build_random_pipeline  # noqa: E402
from imreward.testing import tiny_model  # noqa: E402

TRAIN_PROMPTS = ["a cat", "a red house", "a bowl of fruit", "the sea at dawn"]
RESOLUTION = 16


def tiny_config(output_dir, **overrides) -> ReFLConfig:
    settings = dict(output_dir=str(output_dir), resolution=RESOLUTION, batch_size=2, max_steps=2,
                    num_inference_steps=3, refl_step_range=(1, 2), learning_rate=1e-3, reward_weight=1.0)
    settings.update(overrides)
    return ReFLConfig(**settings)


def tiny_trainer(output_dir, reward=None, sdxl=False, pretrain_data=None, **overrides) -> ReFLTrainer:
    """A trainer over a freshly built tiny pipeline (seeded: every call starts from the same weights)."""
    pipeline = build_random_pipeline(image_size=RESOLUTION, sdxl=sdxl, seed=0)
    reward = reward if reward is not None else tiny_model()
    return ReFLTrainer(pipeline, reward, tiny_config(output_dir, **overrides), TRAIN_PROMPTS,
                       pretrain_data=pretrain_data)
