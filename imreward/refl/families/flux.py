"""FLUX.1 (dev, schnell): a rectified-flow transformer (``FluxTransformer2DModel``) on packed latents.

The transformer sees latents packed into 2x2 patches ([B, h/2 * w/2, 4C]) with rotary position
ids per patch and per text token; its timestep is sigma (0..1). FLUX.1-dev is guidance-distilled:
the guidance scale is an embedding input (one forward pass per image, no CFG rows); schnell has
no guidance embedding. Conditioning: CLIP pooled embedding and T5 token embeddings, from the
pipeline's ``encode_prompt``. The sampler starts from sigmas linspace(1, 1/T, T) with the
resolution-dependent dynamic shift, as the FLUX pipeline does.
"""

from __future__ import annotations

import torch

from imreward.refl.families.base import Conditioning, GeneratorFamily
from imreward.refl.families.sd3 import TRANSFORMER_LORA_TARGETS
from imreward.refl.samplers import FlowMatchSampler

FLUX_SIZES = {
    "tiny": dict(transformer=dict(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                  attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                  pooled_projection_dim=32, guidance_embeds=True, axes_dims_rope=(4, 4, 8)),
                 vae=dict(channels=(32, 64), layers_per_block=1, latent_channels=4),
                 clip=dict(hidden=32, layers=1, heads=2, intermediate=64, max_length=48),
                 t5=dict(width=32, layers=1, heads=4, feed_forward=64)),
    # The published FLUX.1-dev transformer config (black-forest-labs/FLUX.1-dev: 19 double and 38 single
    # blocks, width 3072, 11.9B parameters) and VAE; the text encoders keep their output widths
    # (CLIP-L 768, T5-XXL 4096) with one layer each (frozen, off the gradient path).
    "flux-dev": dict(transformer=dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38,
                                      attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                                      pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=(16, 56, 56)),
                     vae=dict(channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=16),
                     clip=dict(hidden=768, layers=1, heads=12, intermediate=3072, max_length=77),
                     t5=dict(width=4096, layers=1, heads=64, feed_forward=10240)),
}


class FluxFamily(GeneratorFamily):
    name = "flux"
    pipeline_classes = ("FluxPipeline",)
    model_attribute = "transformer"
    lora_targets = TRANSFORMER_LORA_TARGETS
    default_guidance = 3.5  # the FLUX pipeline's default (distilled) guidance
    flow_matching = True

    def matches(self, pipeline) -> bool:
        return type(getattr(pipeline, "transformer", None)).__name__ == "FluxTransformer2DModel"

    @torch.no_grad()
    def encode_prompts(self, pipeline, prompts, height, width, device, guidance_scale=1.0,
                       classifier_free=True) -> Conditioning:
        max_length = min(512, pipeline.tokenizer_2.model_max_length)
        embeds, pooled, text_ids = pipeline.encode_prompt(prompts, None, device=device, num_images_per_prompt=1,
                                                          max_sequence_length=max_length)
        guidance = None
        if pipeline.transformer.config.guidance_embeds:
            guidance = torch.full((len(prompts),), float(guidance_scale), device=device, dtype=torch.float32)
        return Conditioning({"encoder_hidden_states": embeds, "pooled_projections": pooled, "txt_ids": text_ids,
                             "guidance": guidance})

    def call_model(self, model, latents, timestep, conditioning):
        from diffusers import FluxPipeline

        batch, channels, height, width = latents.shape
        packed = FluxPipeline._pack_latents(latents, batch, channels, height, width)
        image_ids = FluxPipeline._prepare_latent_image_ids(batch, height // 2, width // 2, latents.device,
                                                           latents.dtype)
        sigma = timestep.to(latents.device, latents.dtype).expand(batch) / 1000
        prediction = model(hidden_states=packed, timestep=sigma, img_ids=image_ids, return_dict=False,
                           **conditioning.inputs)[0]
        return FluxPipeline._unpack_latents(prediction, height, width, 1)

    def make_sampler(self, pipeline, num_steps, height, width, device):
        factor = 2 * pipeline.vae_scale_factor
        if height % factor or width % factor:
            raise ValueError(f"FLUX needs image sides divisible by {factor} (VAE factor x 2x2 packing), "
                             f"got {height}x{width}")
        return FlowMatchSampler(pipeline.scheduler.config, num_steps, (height // factor) * (width // factor),
                                linear_sigmas=True, device=device)


def build_random_flux_pipeline(preset: str = "tiny", image_size: int = 32, seed: int = 0, **transformer):
    """A ``FluxPipeline`` with random weights from configs (no downloads; byte-level tokenizers);
    ``transformer`` overrides the preset's transformer config (e.g. fewer blocks)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from imreward.refl.components import byte_level_clip_tokenizer, inference_mode, random_t5_encoder, random_vae

    sizes = FLUX_SIZES[preset]
    torch.manual_seed(seed)
    vae_sizes = sizes["vae"]
    vae = random_vae(vae_sizes["channels"], vae_sizes["layers_per_block"], image_size,
                     latent_channels=vae_sizes["latent_channels"], norm_num_groups=min(32, vae_sizes["channels"][0]),
                     scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False)
    clip = sizes["clip"]
    tokenizer = byte_level_clip_tokenizer(clip["max_length"])
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=clip["hidden"], intermediate_size=clip["intermediate"],
        num_hidden_layers=clip["layers"], num_attention_heads=clip["heads"], max_position_embeddings=clip["max_length"],
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    t5 = random_t5_encoder(len(tokenizer), **sizes["t5"])
    transformer = FluxTransformer2DModel(**{**sizes["transformer"], **transformer})
    # FLUX.1-dev's scheduler config: resolution-dependent shift.
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                base_image_seq_len=256, max_image_seq_len=4096)
    return inference_mode(FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                       text_encoder_2=t5, tokenizer_2=tokenizer, transformer=transformer))
