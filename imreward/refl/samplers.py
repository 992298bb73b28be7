"""The two scheduler families ReFL samples with, behind one step-indexed interface.

- ``DDIMSampler``: DDPM-trained UNets (epsilon or v prediction) sampled with diffusers' DDIM
  scheduler, whose step also returns the predicted x0.
- ``FlowMatchSampler``: rectified-flow transformers (SD3, FLUX.1). diffusers'
  ``FlowMatchEulerDiscreteScheduler`` gives the sigma schedule (shift, FLUX's resolution-dependent
  dynamic shift); the Euler step x_next = x_t + (sigma_next - sigma_t) * v and the prediction
  x0 = x_t - sigma_t * v are written here because diffusers' ``step`` keeps a running step counter,
  while ReFL needs any step by its index and x0 at every step.

Both expose ``timesteps`` (model timesteps, 0..1000 scale), ``init_noise_sigma``,
``scale_model_input``, ``step(prediction, index, latents) -> (next latents, predicted x0)`` and
``training_example`` for the denoising (pre-training) loss.
"""

from __future__ import annotations

import numpy as np
import torch


class DDIMSampler:
    """DDIM over ``num_steps`` steps, from a pipeline's scheduler config."""

    def __init__(self, scheduler_config, num_steps: int, device: torch.device | None = None) -> None:
        from diffusers import DDIMScheduler

        self.scheduler = DDIMScheduler.from_config(scheduler_config)
        self.scheduler.set_timesteps(num_steps, device=device)
        self.timesteps = self.scheduler.timesteps
        self.init_noise_sigma = self.scheduler.init_noise_sigma

    def scale_model_input(self, latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return self.scheduler.scale_model_input(latents, timestep)

    def step(self, prediction: torch.Tensor, index: int, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.scheduler.step(prediction, self.timesteps[index], latents)
        return output.prev_sample, output.pred_original_sample

    def training_example(self, latents: torch.Tensor, generator: torch.Generator):
        """(noisy latents, timesteps [B], target) for the denoising loss: noise (epsilon) or v."""
        config = self.scheduler.config
        noise = torch.randn(latents.shape, generator=generator).to(latents)
        timesteps = torch.randint(0, config.num_train_timesteps, (latents.shape[0],),
                                  generator=generator).to(latents.device)
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        if config.prediction_type == "epsilon":
            target = noise
        elif config.prediction_type == "v_prediction":
            target = self.scheduler.get_velocity(latents, noise, timesteps)
        else:
            raise ValueError(f"pre-training loss does not support prediction_type={config.prediction_type!r}")
        return noisy, timesteps, target


def dynamic_shift(scheduler_config, image_seq_len: int) -> float:
    """FLUX/SD3.5's resolution-dependent shift ``mu`` (diffusers' ``calculate_shift``)."""
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    return calculate_shift(image_seq_len, scheduler_config.get("base_image_seq_len", 256),
                           scheduler_config.get("max_image_seq_len", 4096),
                           scheduler_config.get("base_shift", 0.5), scheduler_config.get("max_shift", 1.15))


class FlowMatchSampler:
    """Euler sampling of a rectified flow (x_t = (1 - sigma) x0 + sigma noise, v = noise - x0).

    Args:
        scheduler_config: the pipeline's ``FlowMatchEulerDiscreteScheduler`` config.
        num_steps: sampler steps T.
        image_seq_len: tokens of the image (for the dynamic shift, when the config uses it).
        linear_sigmas: start from sigmas linspace(1, 1/T, T) as the FLUX pipeline does (SD3 lets
            the scheduler space its timesteps).
    """

    init_noise_sigma = 1.0

    def __init__(self, scheduler_config, num_steps: int, image_seq_len: int, linear_sigmas: bool = False,
                 device: torch.device | None = None) -> None:
        from diffusers import FlowMatchEulerDiscreteScheduler

        self.scheduler = FlowMatchEulerDiscreteScheduler.from_config(scheduler_config)
        self.training_sigmas = self.scheduler.sigmas.clone()  # before set_timesteps: the training schedule
        self.training_timesteps = self.scheduler.timesteps.clone()
        kwargs = {}
        if linear_sigmas:
            kwargs["sigmas"] = np.linspace(1.0, 1 / num_steps, num_steps)
        if self.scheduler.config.get("use_dynamic_shifting", False):
            kwargs["mu"] = dynamic_shift(self.scheduler.config, image_seq_len)
        self.scheduler.set_timesteps(num_steps if "sigmas" not in kwargs else None, device=device, **kwargs)
        self.timesteps = self.scheduler.timesteps
        self.sigmas = self.scheduler.sigmas.float()  # T + 1 values, the last 0

    def scale_model_input(self, latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return latents

    def step(self, prediction: torch.Tensor, index: int, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sigma, sigma_next = self.sigmas[index], self.sigmas[index + 1]
        prediction = prediction.to(latents.dtype)
        return latents + (sigma_next - sigma) * prediction, latents - sigma * prediction

    def training_example(self, latents: torch.Tensor, generator: torch.Generator):
        """(noisy latents, timesteps [B], velocity target) at uniformly drawn training sigmas."""
        noise = torch.randn(latents.shape, generator=generator).to(latents)
        indices = torch.randint(0, len(self.training_timesteps), (latents.shape[0],), generator=generator)
        sigmas = self.training_sigmas[indices].to(latents).view(-1, *([1] * (latents.ndim - 1)))
        noisy = (1 - sigmas) * latents + sigmas * noise
        return noisy, self.training_timesteps[indices].to(latents.device), noise - latents
