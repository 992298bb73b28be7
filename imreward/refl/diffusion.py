"""The diffusion passes ReFL needs, written once for every generator family and sampler.

A ``GeneratorFamily`` (``imreward.refl.families``) conditions and calls the denoiser; a sampler
(``imreward.refl.samplers``) steps the latents and predicts x0. Latents are always
[B, C, h, w] (FLUX packs them inside its family). The reward pass samples without gradients up
to a first gradient step, takes the steps of the gradient window with gradients and decodes the
x0 predicted by the last of them:

- ReFL: a window of one step t in [T1, T2] (the image is that step's x0 prediction);
- DRaFT-K / AlignProp: the last K (or a random k <= K) steps, ending at the final sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from imreward.refl.families import Conditioning, GeneratorFamily


def initial_latents(pipeline, batch_size: int, height: int, width: int, generator: torch.Generator,
                    sampler, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Gaussian latents [B, C, H/f, W/f], drawn on the CPU so a seed gives the same start on any device."""
    factor = pipeline.vae_scale_factor
    shape = (batch_size, pipeline.vae.config.latent_channels, height // factor, width // factor)
    noise = torch.randn(shape, generator=generator, dtype=torch.float32)
    return (noise * sampler.init_noise_sigma).to(device, dtype)


@torch.no_grad()
def denoise(family: GeneratorFamily, model, latents: torch.Tensor, conditioning: Conditioning, sampler,
            steps: range, guidance_scale: float = 1.0) -> torch.Tensor:
    """Run the sampler without gradients over the step indices ``steps``; returns the latents after them."""
    for index in steps:
        prediction = family.predict(model, latents, index, conditioning, sampler, guidance_scale)
        latents, _ = sampler.step(prediction, index, latents)
    return latents


def decode(pipeline, latents: torch.Tensor) -> torch.Tensor:
    """VAE-decode latents into pixels [B, 3, H, W] in [0, 1], float32 whatever the VAE's dtype
    (rewards resize and normalise them; differentiable)."""
    vae = pipeline.vae
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    latents = latents / vae.config.scaling_factor + shift
    images = vae.decode(latents.to(vae.dtype)).sample
    return (images.float() / 2 + 0.5).clamp(0, 1)


def reward_images(family: GeneratorFamily, pipeline, model, sampling_model, conditioning: Conditioning, sampler,
                  latents: torch.Tensor, first_index: int, last_index: int | None = None,
                  guidance_scale: float = 1.0) -> torch.Tensor:
    """Sample to ``first_index`` without gradients, take steps ``first_index..last_index`` with
    gradients, decode the x0 predicted at ``last_index``.

    Args:
        model: the trained denoiser (possibly wrapped for distributed training), for the gradient steps.
        sampling_model: the same weights, unwrapped, for the gradient-free steps.
        latents: starting noise [B, C, h, w].
        first_index, last_index: the gradient window (indices into ``sampler.timesteps``, inclusive);
            ``last_index`` defaults to ``first_index`` (ReFL's single step).
    Returns:
        Decoded predicted images [B, 3, H, W] in [0, 1], attached to the denoiser's graph.
    """
    last_index = first_index if last_index is None else last_index
    if not 0 <= first_index <= last_index < len(sampler.timesteps):
        raise ValueError(f"gradient steps {first_index}..{last_index} outside the {len(sampler.timesteps)} "
                         "sampling steps")
    latents = denoise(family, sampling_model, latents, conditioning, sampler, range(first_index), guidance_scale)
    for index in range(first_index, last_index + 1):
        prediction = family.predict(model, latents, index, conditioning, sampler, guidance_scale)
        latents, predicted_x0 = sampler.step(prediction, index, latents)
    return decode(pipeline, predicted_x0)


def encode_images(pipeline, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """VAE latents (scaled and shifted as the denoiser sees them) of pixels [B, 3, H, W] in [-1, 1]."""
    vae = pipeline.vae
    with torch.no_grad():
        sample = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.sample(generator=generator)
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return ((sample - shift) * vae.config.scaling_factor).float()


def pretraining_loss(family: GeneratorFamily, pipeline, model, sampler, pixels: torch.Tensor,
                     conditioning: Conditioning, generator: torch.Generator) -> torch.Tensor:
    """The ordinary denoising loss: MSE between the denoiser's prediction and its target (noise or
    v for DDPM-trained UNets, the velocity noise - x0 for flow models) at a random training timestep.

    Args:
        pixels: [B, 3, H, W] in [-1, 1].
        conditioning: for the captions, without classifier-free guidance rows.
    """
    latents = encode_images(pipeline, pixels, generator)
    noisy, timesteps, target = sampler.training_example(latents, generator)
    prediction = family.call_model(model, noisy, timesteps, conditioning)
    return F.mse_loss(prediction.float(), target.float())
