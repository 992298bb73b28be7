"""The diffusion passes ReFL needs: prompt conditioning, sampling, the reward step, the pre-training loss.

One code path serves SD 1.x/2.x and SDXL: ``Conditioning`` carries the text embeddings and,
for SDXL, the ``added_cond_kwargs`` (pooled text embeddings and size/crop time ids) the UNet
takes as extra input. Prompt encoding is the pipeline's own ``encode_prompt``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from imreward.refl.components import is_sdxl


@dataclass
class Conditioning:
    """UNet conditioning for a batch; with classifier-free guidance, unconditional rows come first.

    Attributes:
        prompt_embeds: [B, L, D] (or [2B, L, D] with guidance).
        added_cond_kwargs: SDXL only: ``text_embeds`` [B, P] and ``time_ids`` [B, 6].
        guided: whether rows hold (unconditional, conditional) halves.
    """

    prompt_embeds: torch.Tensor
    added_cond_kwargs: dict[str, torch.Tensor] | None = None
    guided: bool = False


@torch.no_grad()
def encode_prompts(pipeline, prompts: list[str], height: int, width: int, device: torch.device,
                   guidance: bool = False) -> Conditioning:
    """Embed prompts with the pipeline's text encoder(s); no gradients (text encoders stay frozen)."""
    if is_sdxl(pipeline):
        embeds, negative, pooled, negative_pooled = pipeline.encode_prompt(
            prompts, device=device, num_images_per_prompt=1, do_classifier_free_guidance=guidance)
        # SDXL micro-conditioning: (original height, width, crop top, crop left, target height, width).
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], device=device, dtype=embeds.dtype)
        time_ids = time_ids.expand(len(prompts), 6)
        if guidance:
            embeds, pooled = torch.cat([negative, embeds]), torch.cat([negative_pooled, pooled])
            time_ids = torch.cat([time_ids, time_ids])
        return Conditioning(embeds, {"text_embeds": pooled, "time_ids": time_ids}, guided=guidance)
    embeds, negative = pipeline.encode_prompt(prompts, device, 1, guidance)
    if guidance:
        embeds = torch.cat([negative, embeds])
    return Conditioning(embeds, guided=guidance)


def predict_noise(unet, latents: torch.Tensor, timestep: torch.Tensor, conditioning: Conditioning,
                  scheduler, guidance_scale: float = 1.0) -> torch.Tensor:
    """The UNet's prediction (noise, v or sample, per the scheduler) for latents [B, C, h, w]."""
    model_input = torch.cat([latents, latents]) if conditioning.guided else latents
    model_input = scheduler.scale_model_input(model_input, timestep)
    prediction = unet(model_input, timestep, encoder_hidden_states=conditioning.prompt_embeds,
                      added_cond_kwargs=conditioning.added_cond_kwargs).sample
    if conditioning.guided:
        unconditional, conditional = prediction.chunk(2)
        prediction = unconditional + guidance_scale * (conditional - unconditional)
    return prediction


def initial_latents(pipeline, batch_size: int, height: int, width: int, generator: torch.Generator,
                    scheduler, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Gaussian latents [B, C, H/f, W/f], drawn on the CPU so a seed gives the same start on any device."""
    factor = pipeline.vae_scale_factor
    shape = (batch_size, pipeline.unet.config.in_channels, height // factor, width // factor)
    noise = torch.randn(shape, generator=generator, dtype=torch.float32)
    return (noise * scheduler.init_noise_sigma).to(device, dtype)


@torch.no_grad()
def denoise(unet, latents: torch.Tensor, conditioning: Conditioning, scheduler, timesteps: torch.Tensor,
            guidance_scale: float = 1.0) -> torch.Tensor:
    """Run the sampler without gradients over ``timesteps``; returns the final latents."""
    for timestep in timesteps:
        prediction = predict_noise(unet, latents, timestep, conditioning, scheduler, guidance_scale)
        latents = scheduler.step(prediction, timestep, latents).prev_sample
    return latents


def decode(pipeline, latents: torch.Tensor) -> torch.Tensor:
    """VAE-decode latents into pixels [B, 3, H, W] in [0, 1] (differentiable)."""
    vae = pipeline.vae
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    latents = latents / vae.config.scaling_factor + shift
    images = vae.decode(latents.to(vae.dtype)).sample
    return (images / 2 + 0.5).clamp(0, 1)


def reward_step_images(pipeline, unet, sampling_unet, conditioning: Conditioning, scheduler,
                       latents: torch.Tensor, stop_index: int, guidance_scale: float = 1.0) -> torch.Tensor:
    """The ReFL forward pass: sample to step ``stop_index`` without gradients, take that one
    denoising step with gradients, predict x0 and decode it.

    Args:
        unet: the trained UNet (possibly wrapped for distributed training); used for the gradient step.
        sampling_unet: the same weights, unwrapped, for the gradient-free steps.
        scheduler: a scheduler whose ``step`` returns ``pred_original_sample`` (DDIM), with timesteps set.
        latents: starting noise [B, C, h, w].
        stop_index: index into ``scheduler.timesteps`` of the step taken with gradients.
    Returns:
        Decoded predicted images [B, 3, H, W] in [0, 1], attached to the UNet's graph.
    """
    timesteps = scheduler.timesteps
    if not 0 <= stop_index < len(timesteps):
        raise ValueError(f"stop_index {stop_index} outside the {len(timesteps)} sampling steps")
    latents = denoise(sampling_unet, latents, conditioning, scheduler, timesteps[:stop_index], guidance_scale)
    timestep = timesteps[stop_index]
    prediction = predict_noise(unet, latents, timestep, conditioning, scheduler, guidance_scale)
    predicted_x0 = scheduler.step(prediction, timestep, latents).pred_original_sample
    return decode(pipeline, predicted_x0)


def pretraining_loss(pipeline, unet, scheduler, pixels: torch.Tensor, conditioning: Conditioning,
                     generator: torch.Generator) -> torch.Tensor:
    """The ordinary latent-diffusion loss: MSE between the UNet's prediction and its target
    (noise, or velocity for v-prediction models) at a random training timestep.

    Args:
        pixels: [B, 3, H, W] in [-1, 1].
        conditioning: for the captions, without guidance.
    """
    vae = pipeline.vae
    with torch.no_grad():
        sample = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.sample(generator=generator)
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        latents = ((sample - shift) * vae.config.scaling_factor).float()
    noise = torch.randn(latents.shape, generator=generator).to(latents)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],),
                              generator=generator).to(latents.device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    prediction_type = scheduler.config.prediction_type
    if prediction_type == "epsilon":
        target = noise
    elif prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, timesteps)
    else:
        raise ValueError(f"pre-training loss does not support prediction_type={prediction_type!r}")
    prediction = unet(noisy, timesteps, encoder_hidden_states=conditioning.prompt_embeds,
                      added_cond_kwargs=conditioning.added_cond_kwargs).sample
    return F.mse_loss(prediction.float(), target.float())
