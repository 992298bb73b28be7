"""Builders shared by the ReFL tests: tiny random diffusers components and a trainer over them."""

from __future__ import annotations

import pytest
import torch

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

FLOW_RESOLUTION = 16


def flow_pipeline(family: str):
    """A tiny random SD3 or FLUX pipeline (seeded: every call starts from the same weights)."""
    from imreward.refl import build_random_flux_pipeline, build_random_sd3_pipeline

    build = {"sd3": build_random_sd3_pipeline, "flux": build_random_flux_pipeline}[family]
    return build(image_size=FLOW_RESOLUTION, seed=0)


def flow_trainer(output_dir, family: str, reward=None, monitors=None, pipeline=None, **overrides) -> ReFLTrainer:
    """A trainer over a tiny flow-matching pipeline (``pipeline``, or a fresh one): 4 sampler steps,
    the brightness reward; ``monitors`` maps names to scorers."""
    from imreward.refl import RegionBrightness

    settings = dict(resolution=FLOW_RESOLUTION, num_inference_steps=4, refl_step_range=None,
                    monitors=list(monitors or {}))
    settings.update(overrides)
    reward = reward if reward is not None else RegionBrightness(image_size=FLOW_RESOLUTION)
    return ReFLTrainer(pipeline or flow_pipeline(family), reward, tiny_config(output_dir, **settings), TRAIN_PROMPTS,
                       monitors=monitors)


class ScriptedMonitor:
    """A monitor with only ``score_batch`` (no gradient, no module) whose score follows a script, one
    value per validation (the last value repeats); records the (prompts, images) it was given."""

    def __init__(self, values) -> None:
        self.values, self.calls = list(values), []

    def score_batch(self, prompts, images):
        value = self.values[min(len(self.calls), len(self.values) - 1)]
        self.calls.append((list(prompts), list(images)))
        return [float(value)] * len(images)


def dark_monitor(device=None, download_root=None):
    """A ``module:function`` monitor factory for the CLI tests: darkness of the image centre."""
    from imreward.refl import RegionBrightness

    class Darkness(RegionBrightness):
        def forward(self, pixel_values, **text):
            return 1 - super().forward(pixel_values, **text)

    return Darkness()  # the same box and size as the "brightness" reward
