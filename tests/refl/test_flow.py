"""ReFL on tiny random flow-matching transformers (SD3-style and FLUX-style, built from configs):
the sampler against diffusers' own pipelines, the loss, where gradients go, DRaFT-K's depth,
resume, and the denoising anchor."""

from __future__ import annotations

import math

import pytest
import torch
from refl.refl_helpers import FLOW_RESOLUTION, TRAIN_PROMPTS, flow_pipeline, flow_trainer

from imreward.refl.config import PRETRAIN, REFL
from imreward.refl.diffusion import initial_latents, reward_images
from imreward.refl.families import family_of
from imreward.refl.samplers import FlowMatchSampler
from imreward.refl.trainer import step_generator
from imreward.refl.validation import generate_images

CPU = torch.device("cpu")


@pytest.mark.parametrize("family_name, guidance", [("sd3", 1.0), ("sd3", 4.0), ("flux", 3.5)])
def test_sampling_matches_the_diffusers_pipeline(family_name, guidance):
    """Conditioning, CFG / distilled guidance, FLUX packing, the flow sampler and decoding agree
    with the reference: the pipeline's own ``__call__`` from the same starting noise."""
    pipeline = flow_pipeline(family_name)
    family = family_of(pipeline)
    sampler = family.make_sampler(pipeline, 3, FLOW_RESOLUTION, FLOW_RESOLUTION, CPU)
    prompts = ["a cat", "a red house"]
    ours = generate_images(family, pipeline, pipeline.transformer, sampler, prompts, FLOW_RESOLUTION, seed=5,
                           guidance_scale=guidance)
    latents = initial_latents(pipeline, 2, FLOW_RESOLUTION, FLOW_RESOLUTION, torch.Generator().manual_seed(5),
                              sampler, CPU, torch.float32)
    if family_name == "flux":
        latents = pipeline._pack_latents(latents, *latents.shape)
    reference = pipeline(prompts, num_inference_steps=3, guidance_scale=guidance, height=FLOW_RESOLUTION,
                         width=FLOW_RESOLUTION, latents=latents, output_type="pt", max_sequence_length=48).images
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-4)


def test_flow_step_and_x0_prediction_follow_the_rectified_flow():
    from diffusers import FlowMatchEulerDiscreteScheduler

    sampler = FlowMatchSampler(FlowMatchEulerDiscreteScheduler(shift=3.0).config, 4, image_seq_len=64)
    x0, noise = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    sigma, sigma_next = sampler.sigmas[1], sampler.sigmas[2]
    x_t = (1 - sigma) * x0 + sigma * noise
    following, predicted_x0 = sampler.step(noise - x0, 1, x_t)  # the exact velocity
    torch.testing.assert_close(predicted_x0, x0)
    torch.testing.assert_close(following, (1 - sigma_next) * x0 + sigma_next * noise)
    noisy, timesteps, target = sampler.training_example(x0, torch.Generator().manual_seed(0))
    sigmas = (timesteps / 1000).view(-1, 1, 1, 1)
    torch.testing.assert_close(noisy - sigmas * target, x0, rtol=1e-5, atol=1e-5)


def frozen_parameters(trainer):
    modules = [trainer.reward] + [getattr(trainer.pipeline, name) for name in
                                  ("vae", "text_encoder", "text_encoder_2", "text_encoder_3")
                                  if getattr(trainer.pipeline, name, None) is not None]
    return [parameter for module in modules for parameter in module.parameters()]


def recomputed_rewards(trainer) -> torch.Tensor:
    """The step-0 rewards, recomputed outside the trainer from the same seeded draws."""
    generator = step_generator(trainer.config.seed, 0, 0, 0, 0)
    indices = torch.randint(len(TRAIN_PROMPTS), (trainer.config.batch_size,), generator=generator)
    prompts = [TRAIN_PROMPTS[i] for i in indices]
    conditioning = trainer.family.encode_prompts(trainer.pipeline, prompts, FLOW_RESOLUTION, FLOW_RESOLUTION, CPU,
                                                 trainer.guidance_scale)
    latents = initial_latents(trainer.pipeline, len(prompts), FLOW_RESOLUTION, FLOW_RESOLUTION, generator,
                              trainer.sampler, CPU, torch.float32)
    low, high = trainer.config.step_window
    stop = int(torch.randint(low, high + 1, (), generator=generator))
    with torch.no_grad():
        images = reward_images(trainer.family, trainer.pipeline, trainer.sampling_model, trainer.sampling_model,
                               conditioning, trainer.sampler, latents, stop, stop, trainer.guidance_scale)
        return trainer.reward.score_tensor(images, prompts)


@pytest.mark.parametrize("family_name, lora_rank", [("sd3", 0), ("sd3", 4), ("flux", 0), ("flux", 4)])
def test_loss_is_weighted_relu_of_the_reward_and_gradients_reach_only_the_transformer(tmp_path, family_name,
                                                                                      lora_rank):
    first = flow_trainer(tmp_path / "a", family_name, lora_rank=lora_rank, reward_weight=0.5)
    rewards = recomputed_rewards(first)
    assert first.config.step_window == (3, 3)  # the last quarter of 4 steps
    # A threshold between the two rewards: one image is past it and adds nothing (ReLU per image).
    threshold = rewards.mean().item()
    trainer = flow_trainer(tmp_path / "b", family_name, lora_rank=lora_rank, reward_weight=0.5,
                           reward_threshold=threshold)
    parts = trainer.compute_loss(REFL)
    assert parts["reward"] == pytest.approx(rewards.mean().item(), rel=1e-5)
    expected = 0.5 * torch.relu(threshold - rewards).mean().item()
    assert parts["loss"].item() == pytest.approx(expected, rel=1e-4) and expected > 0
    parts["loss"].backward()

    named = dict(trainer.sampling_model.named_parameters())
    trainable = {name for name, parameter in named.items() if parameter.requires_grad}
    if lora_rank:
        assert trainable and all("lora" in name for name in trainable)
        assert any("add_q_proj.lora" in name for name in trainable)  # the text stream is adapted too
        nonzero = {name for name in trainable if named[name].grad.abs().sum() > 0}
        assert nonzero and all("lora_B" in name for name in nonzero)
    else:
        assert trainable == set(named)
        reached = [name for name in named if named[name].grad is not None and named[name].grad.abs().sum() > 0]
        assert len(reached) > len(named) // 2
    assert all(parameter.grad is None and not parameter.requires_grad for parameter in frozen_parameters(trainer))


class RecordingTransformer(torch.nn.Module):
    """Records, per call, whether gradients were on and whether its input carried a graph."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, hidden_states, **kwargs):
        self.calls.append((torch.is_grad_enabled(), hidden_states.requires_grad))
        return self.model(hidden_states=hidden_states, **kwargs)


@pytest.mark.parametrize("family_name, method, depth", [("flux", "draft-k", 1), ("flux", "draft-k", 3),
                                                         ("sd3", "draft-k", 2), ("sd3", "alignprop", 4)])
def test_truncated_backprop_runs_exactly_k_steps_with_gradients(tmp_path, family_name, method, depth):
    trainer = flow_trainer(tmp_path, family_name, method=method, backprop_steps=depth)
    recorder, recorder_free = RecordingTransformer(trainer.sampling_model), RecordingTransformer(trainer.sampling_model)
    generator = step_generator(0, 0, 0, 0, 0)
    first, last = trainer.gradient_window(generator)
    assert last == 3 and (4 - first == depth if method == "draft-k" else 1 <= 4 - first <= depth)
    conditioning = trainer.family.encode_prompts(trainer.pipeline, ["a cat"], FLOW_RESOLUTION, FLOW_RESOLUTION, CPU,
                                                 trainer.guidance_scale)
    latents = initial_latents(trainer.pipeline, 1, FLOW_RESOLUTION, FLOW_RESOLUTION, generator, trainer.sampler,
                              CPU, torch.float32)
    images = reward_images(trainer.family, trainer.pipeline, recorder, recorder_free, conditioning, trainer.sampler,
                           latents, first, last, trainer.guidance_scale)
    k = last - first + 1
    # Gradient-free steps before the window; in it, the first step starts from detached latents and
    # each later one from the previous step's graph: the image depends on exactly k steps.
    assert recorder_free.calls == [(False, False)] * (4 - k)
    assert recorder.calls == [(True, False)] + [(True, True)] * (k - 1)
    images.mean().backward()
    assert any(p.grad is not None for p in trainer.sampling_model.parameters())


def test_alignprop_draws_truncation_depths_up_to_k(tmp_path):
    trainer = flow_trainer(tmp_path, "flux", method="alignprop", backprop_steps=3)
    depths = {4 - trainer.gradient_window(step_generator(0, step))[0] for step in range(40)}
    assert depths == {1, 2, 3}


@pytest.mark.parametrize("family_name, lora_rank, method", [("sd3", 0, "refl"), ("flux", 4, "draft-k")])
def test_flow_resume_repeats_the_uninterrupted_run(tmp_path, family_name, lora_rank, method):
    def weights(trainer):
        return {name: value.detach().clone() for name, value in trainer.sampling_model.state_dict().items()}

    settings = dict(lora_rank=lora_rank, method=method, backprop_steps=2 if method == "draft-k" else None)
    straight = flow_trainer(tmp_path / "straight", family_name, max_steps=3, **settings)
    initial = weights(straight)
    straight.train()
    flow_trainer(tmp_path / "resumed", family_name, max_steps=2, checkpoint_every=2, **settings).train()
    resumed = flow_trainer(tmp_path / "resumed", family_name, max_steps=3, **settings)
    assert resumed.resume("latest") == 2
    resumed.train()
    final, expected = weights(resumed), weights(straight)
    assert any(not torch.equal(expected[name], initial[name]) for name in expected)
    for name in expected:
        torch.testing.assert_close(final[name], expected[name], rtol=1e-5, atol=1e-6)


def test_anchor_trains_the_denoising_loss_on_the_generators_own_samples(tmp_path):
    trainer = flow_trainer(tmp_path, "flux", anchor_samples=3, loss_cycle="refl+pretrain", max_steps=1)
    assert len(trainer.pretrain_data) == 3
    pixels, prompt = trainer.pretrain_data[2]
    assert pixels.shape == (3, FLOW_RESOLUTION, FLOW_RESOLUTION) and -1 <= pixels.min() and pixels.max() <= 1
    assert prompt == TRAIN_PROMPTS[2]
    record = trainer.train_step()
    assert math.isfinite(record["pretrain_loss"]) and record["pretrain_loss"] > 0 and PRETRAIN in trainer.loss_counts
    with pytest.raises(ValueError, match="either pretrain_data or anchor_samples"):
        from imreward.refl import ReFLTrainer

        ReFLTrainer(flow_pipeline("flux"), trainer.reward, trainer.config, TRAIN_PROMPTS, pretrain_data=[1])


@pytest.mark.parametrize("class_name, family_name", [
    ("StableDiffusionPipeline", "sd"), ("StableDiffusionXLPipeline", "sd"),
    ("StableDiffusion3Pipeline", "sd3"), ("FluxPipeline", "flux")])
def test_a_folders_family_is_read_from_its_model_index(tmp_path, class_name, family_name):
    import json

    from imreward.refl.families import family_of_folder

    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": class_name}))
    assert family_of_folder(tmp_path).name == family_name
    (tmp_path / "model_index.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read the pipeline index"):
        family_of_folder(tmp_path)
