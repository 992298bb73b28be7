"""What a generator family tells the ReFL sampler: how to condition and call its denoiser.

A family (SD 1.x/2.x/SDXL UNets, SD3 transformers, FLUX transformers) is one subclass of
``GeneratorFamily`` in its own module; the sampling, the reward step and the losses in
``imreward.refl.diffusion`` are written once against this interface and a ``Sampler``
(``imreward.refl.samplers``: DDIM-style epsilon/v prediction, or flow matching).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Conditioning:
    """Prompt-derived inputs of the denoiser for one batch.

    Attributes:
        inputs: keyword arguments of the denoiser besides latents and timestep (text embeddings
            [B, L, D], pooled embeddings, SDXL ``added_cond_kwargs``, FLUX text ids and guidance).
            With classifier-free guidance every tensor holds 2B rows, unconditional rows first.
        guided: whether rows hold (unconditional, conditional) halves.
    """

    inputs: dict = field(default_factory=dict)
    guided: bool = False


class GeneratorFamily:
    """One kind of diffusers pipeline ReFL can tune.

    Attributes:
        name: short name (``"sd"``, ``"sd3"``, ``"flux"``).
        pipeline_classes: ``_class_name`` values of ``model_index.json`` this family reads.
        model_attribute: the pipeline attribute holding the trained denoiser.
        frozen_components: pipeline attributes that never train.
        lora_targets: attention projections LoRA adapters attach to (peft ``target_modules``).
        default_guidance: guidance scale when the user gives none.
        flow_matching: the scheduler family (velocity prediction) rather than DDIM-style.
    """

    name = ""
    pipeline_classes: tuple[str, ...] = ()
    model_attribute = "unet"
    frozen_components: tuple[str, ...] = ("vae", "text_encoder", "text_encoder_2", "text_encoder_3")
    lora_targets: tuple[str, ...] = ("to_k", "to_q", "to_v", "to_out.0")
    default_guidance = 1.0
    flow_matching = False

    def matches(self, pipeline) -> bool:
        """Whether ``pipeline`` (a loaded diffusers pipeline) belongs to this family."""
        raise NotImplementedError

    def model(self, pipeline) -> torch.nn.Module:
        return getattr(pipeline, self.model_attribute)

    def encode_prompts(self, pipeline, prompts: list[str], height: int, width: int, device: torch.device,
                       guidance_scale: float = 1.0, classifier_free: bool = True) -> Conditioning:
        """Embed prompts with the frozen text encoders (no gradients); with ``classifier_free`` and a
        scale above 1, CFG families add the unconditional rows (the denoising loss asks for none)."""
        raise NotImplementedError

    def call_model(self, model, latents: torch.Tensor, timestep: torch.Tensor,
                   conditioning: Conditioning) -> torch.Tensor:
        """The raw prediction (noise, v or velocity) for latents [B, C, h, w] at ``timestep``
        (a scalar or [B], on the scheduler's 0..1000 scale); returns [B, C, h, w]."""
        raise NotImplementedError

    def make_sampler(self, pipeline, num_steps: int, height: int, width: int, device: torch.device):
        """The ``Sampler`` over ``num_steps`` steps for images of this size."""
        raise NotImplementedError

    def lora_layers(self, model) -> dict:
        """The adapters of ``model`` as ``save_lora_weights`` keyword arguments."""
        from peft.utils import get_peft_model_state_dict

        return {f"{self.model_attribute}_lora_layers": get_peft_model_state_dict(model)}

    def predict(self, model, latents: torch.Tensor, index: int, conditioning: Conditioning, sampler,
                guidance_scale: float = 1.0) -> torch.Tensor:
        """The (guided) prediction at sampler step ``index`` for latents [B, C, h, w]."""
        timestep = sampler.timesteps[index]
        model_input = torch.cat([latents, latents]) if conditioning.guided else latents
        model_input = sampler.scale_model_input(model_input, timestep)
        prediction = self.call_model(model, model_input, timestep, conditioning)
        if conditioning.guided:
            unconditional, conditional = prediction.chunk(2)
            prediction = unconditional + guidance_scale * (conditional - unconditional)
        return prediction


def cat_guided(negative: torch.Tensor, positive: torch.Tensor, guided: bool) -> torch.Tensor:
    """Rows for classifier-free guidance: (unconditional, conditional), or the conditional alone."""
    return torch.cat([negative, positive]) if guided else positive
