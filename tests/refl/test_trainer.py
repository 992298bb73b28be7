"""End-to-end ReFL on tiny diffusers components (CPU, no hub): gradients, checkpoints, loss cycle, export."""

from __future__ import annotations

import json
import math

import pytest
import torch
from refl.refl_helpers import RESOLUTION, tiny_trainer

from imreward.refl import CaptionedImages
from imreward.refl.config import PRETRAIN, REFL


def unet_weights(trainer) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in trainer.sampling_model.state_dict().items()}


def frozen_parameters(trainer):
    modules = [trainer.pipeline.vae, trainer.pipeline.text_encoder]
    if getattr(trainer.pipeline, "text_encoder_2", None) is not None:
        modules.append(trainer.pipeline.text_encoder_2)
    return [parameter for module in modules for parameter in module.parameters()]


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_refl_loss_is_finite_and_gradients_reach_only_the_unet(tmp_path, lora_rank):
    trainer = tiny_trainer(tmp_path, lora_rank=lora_rank)
    parts = trainer.compute_loss(REFL)
    assert math.isfinite(parts["loss"].item()) and parts["loss"].item() > 0
    # Rewards of the tiny model are far below the threshold 2, so loss = weight * (2 - mean reward).
    assert parts["refl_loss"] == pytest.approx(1.0 * (2.0 - parts["reward"]), rel=1e-5)
    parts["loss"].backward()

    unet_parameters = dict(trainer.sampling_model.named_parameters())
    trainable = {name for name, parameter in unet_parameters.items() if parameter.requires_grad}
    if lora_rank:
        assert trainable and all("lora" in name for name in trainable)
        assert all(unet_parameters[name].grad is None for name in unet_parameters.keys() - trainable)
    else:
        assert trainable == set(unet_parameters)
    assert all(unet_parameters[name].grad is not None for name in trainable)
    nonzero = {name for name in trainable if unet_parameters[name].grad.abs().sum() > 0}
    if lora_rank:  # lora_B starts at zero, so only it receives a gradient on the first step
        assert nonzero == {name for name in trainable if "lora_B" in name}
    else:
        assert len(nonzero) > len(trainable) // 2
    assert all(parameter.grad is None and not parameter.requires_grad for parameter in frozen_parameters(trainer))
    # the caller's reward model gets no gradient and keeps its own requires_grad
    assert all(parameter.grad is None and parameter.requires_grad for parameter in trainer.reward.parameters())


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_resumed_run_repeats_the_uninterrupted_run(tmp_path, lora_rank):
    straight = tiny_trainer(tmp_path / "straight", lora_rank=lora_rank, max_steps=3, use_ema=True)
    initial = unet_weights(straight)
    straight.train()

    interrupted = tiny_trainer(tmp_path / "resumed", lora_rank=lora_rank, max_steps=2, checkpoint_every=2,
                               use_ema=True)
    interrupted.train()
    checkpoint = tmp_path / "resumed" / "checkpoints" / "step_000002"
    saved = {path.name for path in checkpoint.iterdir()}
    assert ("unet_lora.safetensors" in saved) == bool(lora_rank)
    assert ("model.safetensors" in saved) == (not lora_rank)

    resumed = tiny_trainer(tmp_path / "resumed", lora_rank=lora_rank, max_steps=3, use_ema=True)
    assert resumed.resume("latest") == 2
    assert all(torch.equal(value, unet_weights(interrupted)[name]) for name, value in unet_weights(resumed).items())
    resumed.train()
    assert resumed.step == 3
    final, expected = unet_weights(resumed), unet_weights(straight)
    assert any(not torch.equal(expected[name], initial[name]) for name in expected)
    for name in expected:
        torch.testing.assert_close(final[name], expected[name], rtol=1e-5, atol=1e-6)
    assert resumed.history[-1]["reward"] == pytest.approx(straight.history[-1]["reward"], rel=1e-4)


def test_resume_rejects_a_folder_that_is_no_checkpoint(tmp_path):
    trainer = tiny_trainer(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        trainer.resume("latest")
    with pytest.raises(FileNotFoundError, match="not a ReFL checkpoint"):
        trainer.resume(tmp_path)


@pytest.mark.parametrize("cycle, steps, expected", [
    ("refl,pretrain", 4, {REFL: 2, PRETRAIN: 2}),
    ("refl,refl,pretrain", 3, {REFL: 2, PRETRAIN: 1}),
    ("refl+pretrain,refl", 3, {REFL: 3, PRETRAIN: 2}),
])
def test_pretraining_and_refl_losses_follow_the_cycle(tmp_path, captioned_images, cycle, steps, expected):
    data = CaptionedImages(captioned_images, RESOLUTION)
    trainer = tiny_trainer(tmp_path, pretrain_data=data, loss_cycle=cycle, max_steps=steps)
    history = trainer.train()
    assert dict(trainer.loss_counts) == expected
    entries = cycle.split(",")
    for index, record in enumerate(history):
        wanted = set(entries[index % len(entries)].split("+"))
        assert ("refl_loss" in record) == (REFL in wanted)
        assert ("pretrain_loss" in record) == (PRETRAIN in wanted)
        assert math.isfinite(record["loss"])
        parts = record.get("refl_loss", 0.0) + trainer.config.pretrain_weight * record.get("pretrain_loss", 0.0)
        assert record["loss"] == pytest.approx(parts, rel=1e-5)


def test_pretraining_needs_data(tmp_path):
    with pytest.raises(ValueError, match="pretrain_data"):
        tiny_trainer(tmp_path, loss_cycle="refl,pretrain")


def test_sdxl_conditioning_runs_through_the_same_path(tmp_path, captioned_images):
    data = CaptionedImages(captioned_images, RESOLUTION)
    trainer = tiny_trainer(tmp_path, sdxl=True, pretrain_data=data, loss_cycle="refl+pretrain", guidance_scale=3.0)
    assert trainer.pipeline.text_encoder_2 is not None
    for loss_name in (REFL, PRETRAIN):
        loss = trainer.compute_loss(loss_name)["loss"]
        assert math.isfinite(loss.item())
        loss.backward()
    add_embedding = trainer.sampling_model.add_embedding.linear_1.weight
    assert add_embedding.grad is not None and add_embedding.grad.abs().sum() > 0
    assert all(parameter.grad is None for parameter in frozen_parameters(trainer))


def test_validation_saves_a_grid_and_logs_the_mean_reward(tmp_path):
    prompts = ["held out one", "held out two", "held out three"]
    trainer = tiny_trainer(tmp_path, max_steps=1, validation_every=1, validation_prompts=prompts)
    trainer.train()
    records = [json.loads(line) for line in (tmp_path / "validation.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records] == [0, 1]
    for record in records:
        assert len(record["rewards"]) == 3
        assert record["mean_reward"] == pytest.approx(sum(record["rewards"]) / 3, rel=1e-6)
    from PIL import Image

    grid = Image.open(tmp_path / "validation" / "step_000001.png")
    assert grid.size == (2 * RESOLUTION + 3 * 2, 2 * RESOLUTION + 3 * 2)  # 2x2 grid, 2-pixel padding
    # Same seed, same weights: validating again repeats the last rewards exactly.
    assert trainer.validate() == pytest.approx(records[-1]["mean_reward"], rel=1e-6)


def test_export_writes_a_loadable_pipeline(tmp_path):
    from diffusers import StableDiffusionPipeline

    trainer = tiny_trainer(tmp_path, max_steps=1)
    trainer.train()
    folder = trainer.export()
    loaded = StableDiffusionPipeline.from_pretrained(folder)
    expected = unet_weights(trainer)
    assert all(torch.equal(value, expected[name]) for name, value in loaded.unet.state_dict().items())


def test_unknown_loss_names_raise(tmp_path):
    with pytest.raises(ValueError, match="unknown loss"):
        tiny_trainer(tmp_path).compute_loss("noise")


def test_images_per_prompt_with_a_normalised_reward(tmp_path):
    from imreward.refl.rewards import RegionBrightness, with_normalization

    scored = []

    class Recording(RegionBrightness):
        def score_tensor(self, pixels, prompts):
            scored.append(list(prompts))
            return super().score_tensor(pixels, prompts)

    reward = with_normalization(Recording(image_size=RESOLUTION), "prompt-zscore")
    trainer = tiny_trainer(tmp_path, reward=reward, images_per_prompt=3, reward_threshold=5.0)
    parts = trainer.compute_loss(REFL)
    prompts = scored[-1]
    assert len(prompts) == 6 and prompts[0::3] == prompts[1::3] == prompts[2::3]
    assert parts["reward"] == pytest.approx(0.0, abs=1e-5)  # z-scores average to 0 within each prompt
    parts["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.sampling_unet.parameters())
    assert 0.0 < trainer.validate(["a cat", "a dog"]) < 1.0  # the raw brightness; normalised, one image would be 0
