"""The ReFL forward pass: gradient-free sampling down to the chosen step, one step with gradients."""

from __future__ import annotations

import pytest
import torch
from refl.refl_helpers import RESOLUTION

from imreward.refl import build_random_pipeline
from imreward.refl.config import ReFLConfig, parse_loss_cycle
from imreward.refl.diffusion import initial_latents, reward_images
from imreward.refl.families import family_of
from imreward.refl.samplers import DDIMSampler


class RecordingUNet(torch.nn.Module):
    """Wraps a UNet and records, per call, the timestep and whether gradients were on."""

    def __init__(self, unet) -> None:
        super().__init__()
        self.unet, self.calls = unet, []

    def forward(self, sample, timestep, **kwargs):
        self.calls.append((int(timestep), torch.is_grad_enabled()))
        return self.unet(sample, timestep, **kwargs)


@pytest.mark.parametrize("stop_index", [0, 2, 4])
def test_only_the_chosen_step_runs_with_gradients(stop_index):
    pipeline = build_random_pipeline(image_size=RESOLUTION)
    family = family_of(pipeline)
    scheduler = DDIMSampler(pipeline.scheduler.config, 5)
    unet = RecordingUNet(pipeline.unet)
    conditioning = family.encode_prompts(pipeline, ["a cat"], RESOLUTION, RESOLUTION, torch.device("cpu"))
    latents = initial_latents(pipeline, 1, RESOLUTION, RESOLUTION, torch.Generator().manual_seed(0), scheduler,
                              torch.device("cpu"), torch.float32)
    images = reward_images(family, pipeline, unet, unet, conditioning, scheduler, latents, stop_index)
    assert images.shape == (1, 3, RESOLUTION, RESOLUTION) and images.requires_grad
    assert 0 <= images.min() and images.max() <= 1
    expected = [(int(t), False) for t in scheduler.timesteps[:stop_index]] + [(int(scheduler.timesteps[stop_index]), True)]
    assert unet.calls == expected
    with pytest.raises(ValueError, match="outside"):
        reward_images(family, pipeline, unet, unet, conditioning, scheduler, latents, 5)


def test_loss_cycle_parsing_and_lookup(tmp_path):
    assert parse_loss_cycle("refl, pretrain") == (frozenset({"refl"}), frozenset({"pretrain"}))
    config = ReFLConfig(output_dir=str(tmp_path), loss_cycle="refl+pretrain,refl")
    assert [sorted(config.losses_at(step)) for step in range(3)] == [["pretrain", "refl"], ["refl"],
                                                                     ["pretrain", "refl"]]
    for bad in ["", "refl,", "refl+noise"]:
        with pytest.raises(ValueError, match="loss cycle"):
            parse_loss_cycle(bad)


@pytest.mark.parametrize("overrides", [dict(refl_step_range=(30, 40)), dict(refl_step_range=(5, 3)),
                                       dict(resolution=100), dict(batch_size=0)])
def test_config_rejects_impossible_settings(tmp_path, overrides):
    with pytest.raises(ValueError):
        ReFLConfig(output_dir=str(tmp_path), **overrides)
