"""Stable Diffusion 1.x/2.x and SDXL: a UNet predicting noise (or v), sampled with DDIM.

SDXL adds ``added_cond_kwargs`` to the UNet's input: the pooled text embedding of the second
encoder and the size/crop micro-conditioning time ids. Prompt encoding is the pipeline's own.
"""

from __future__ import annotations

import torch

from imreward.refl.families.base import Conditioning, GeneratorFamily, cat_guided
from imreward.refl.samplers import DDIMSampler


def is_sdxl(pipeline) -> bool:
    """SDXL-style conditioning: the UNet takes pooled text embeddings and size/crop time ids."""
    return pipeline.unet.config.addition_embed_type == "text_time"


class UNetFamily(GeneratorFamily):
    name = "sd"
    pipeline_classes = ("StableDiffusionPipeline", "StableDiffusionXLPipeline")
    model_attribute = "unet"

    def matches(self, pipeline) -> bool:
        return all(getattr(pipeline, name, None) is not None for name in ("unet", "vae", "text_encoder", "tokenizer"))

    @torch.no_grad()
    def encode_prompts(self, pipeline, prompts, height, width, device, guidance_scale=1.0,
                       classifier_free=True) -> Conditioning:
        guided = classifier_free and guidance_scale > 1
        if is_sdxl(pipeline):
            embeds, negative, pooled, negative_pooled = pipeline.encode_prompt(
                prompts, device=device, num_images_per_prompt=1, do_classifier_free_guidance=guided)
            # SDXL micro-conditioning: (original height, width, crop top, crop left, target height, width).
            time_ids = torch.tensor([[height, width, 0, 0, height, width]], device=device, dtype=embeds.dtype)
            time_ids = time_ids.expand(len(prompts), 6)
            added = {"text_embeds": cat_guided(negative_pooled, pooled, guided),
                     "time_ids": cat_guided(time_ids, time_ids, guided)}
            return Conditioning({"encoder_hidden_states": cat_guided(negative, embeds, guided),
                                 "added_cond_kwargs": added}, guided)
        embeds, negative = pipeline.encode_prompt(prompts, device, 1, guided)
        return Conditioning({"encoder_hidden_states": cat_guided(negative, embeds, guided),
                             "added_cond_kwargs": None}, guided)

    def call_model(self, model, latents, timestep, conditioning):
        return model(latents, timestep, **conditioning.inputs).sample

    def make_sampler(self, pipeline, num_steps, height, width, device):
        return DDIMSampler(pipeline.scheduler.config, num_steps, device)

    def lora_layers(self, model) -> dict:
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft.utils import get_peft_model_state_dict

        return {"unet_lora_layers": convert_state_dict_to_diffusers(get_peft_model_state_dict(model))}
