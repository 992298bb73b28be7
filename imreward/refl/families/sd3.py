"""Stable Diffusion 3 / 3.5: an MMDiT (``SD3Transformer2DModel``) predicting the flow velocity.

Conditioning: the pipeline's ``encode_prompt`` (two CLIP encoders and T5) gives token embeddings
and a pooled embedding; guidance is ordinary classifier-free guidance (two rows per image).
The sampler is flow-matching Euler over the scheduler's shifted sigmas (dynamic shift when the
scheduler config asks for it, as SD3.5's does not by default).
"""

from __future__ import annotations

import torch

from imreward.refl.families.base import Conditioning, GeneratorFamily, cat_guided
from imreward.refl.samplers import FlowMatchSampler

# Attention projections of the joint blocks: image stream (to_*) and text stream (add_*, to_add_out).
TRANSFORMER_LORA_TARGETS = ("to_k", "to_q", "to_v", "to_out.0", "add_k_proj", "add_q_proj", "add_v_proj",
                            "to_add_out")

# Published SD3-medium transformer config (stabilityai/stable-diffusion-3-medium-diffusers), and a
# tiny one for tests. Text encoders keep the output widths the transformer expects.
SD3_SIZES = {
    "tiny": dict(transformer=dict(patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8,
                                  num_attention_heads=4, joint_attention_dim=32, caption_projection_dim=32,
                                  pooled_projection_dim=64, out_channels=4),
                 vae=dict(channels=(32, 64), layers_per_block=1, latent_channels=4),
                 clip=dict(hidden=16, projection=32, layers=1, heads=2, intermediate=32, max_length=48),
                 t5=dict(width=32, layers=1, heads=4, feed_forward=64)),
    "sd3-medium": dict(transformer=dict(patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64,
                                        num_attention_heads=24, joint_attention_dim=4096,
                                        caption_projection_dim=1536, pooled_projection_dim=2048, out_channels=16,
                                        pos_embed_max_size=192),
                       vae=dict(channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=16),
                       # one layer per text encoder (frozen, off the gradient path), full widths
                       clip=dict(hidden=(768, 1280), projection=(768, 1280), layers=1, heads=(12, 20),
                                 intermediate=(3072, 5120), max_length=77),
                       t5=dict(width=4096, layers=1, heads=64, feed_forward=10240)),
}


class SD3Family(GeneratorFamily):
    name = "sd3"
    pipeline_classes = ("StableDiffusion3Pipeline",)
    model_attribute = "transformer"
    lora_targets = TRANSFORMER_LORA_TARGETS
    default_guidance = 7.0  # the SD3 pipeline's default CFG scale
    flow_matching = True

    def matches(self, pipeline) -> bool:
        return type(getattr(pipeline, "transformer", None)).__name__ == "SD3Transformer2DModel"

    @torch.no_grad()
    def encode_prompts(self, pipeline, prompts, height, width, device, guidance_scale=1.0,
                       classifier_free=True) -> Conditioning:
        guided = classifier_free and guidance_scale > 1
        tokenizer = getattr(pipeline, "tokenizer_3", None)
        max_length = min(256, tokenizer.model_max_length) if tokenizer is not None else 256
        embeds, negative, pooled, negative_pooled = pipeline.encode_prompt(
            prompts, None, None, device=device, num_images_per_prompt=1, do_classifier_free_guidance=guided,
            max_sequence_length=max_length)
        return Conditioning({"encoder_hidden_states": cat_guided(negative, embeds, guided),
                             "pooled_projections": cat_guided(negative_pooled, pooled, guided)}, guided)

    def call_model(self, model, latents, timestep, conditioning):
        timestep = timestep.to(latents.device).expand(latents.shape[0])
        return model(hidden_states=latents, timestep=timestep, return_dict=False, **conditioning.inputs)[0]

    def make_sampler(self, pipeline, num_steps, height, width, device):
        patch = pipeline.transformer.config.patch_size * pipeline.vae_scale_factor
        return FlowMatchSampler(pipeline.scheduler.config, num_steps, (height // patch) * (width // patch),
                                device=device)


def _clip_encoder(tokenizer, hidden, projection, layers, heads, intermediate, max_length):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    return CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, max_position_embeddings=max_length, projection_dim=projection,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))


def build_random_sd3_pipeline(preset: str = "tiny", image_size: int = 32, seed: int = 0, **transformer):
    """A ``StableDiffusion3Pipeline`` with random weights from configs (no downloads); ``transformer``
    overrides the preset's transformer config (e.g. fewer blocks).

    The three tokenizers are the offline byte-level one (see ``components.byte_level_clip_tokenizer``).
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    from imreward.refl.components import byte_level_clip_tokenizer, inference_mode, random_t5_encoder, random_vae

    sizes = SD3_SIZES[preset]
    torch.manual_seed(seed)
    vae_sizes = sizes["vae"]
    vae = random_vae(vae_sizes["channels"], vae_sizes["layers_per_block"], image_size,
                     latent_channels=vae_sizes["latent_channels"], norm_num_groups=min(32, vae_sizes["channels"][0]),
                     scaling_factor=1.5305, shift_factor=0.0609, use_quant_conv=False, use_post_quant_conv=False)
    clip = sizes["clip"]
    tokenizer = byte_level_clip_tokenizer(clip["max_length"])
    encoders = []
    for index in range(2):
        pick = {key: value[index] if isinstance(value, tuple) else value for key, value in clip.items()}
        encoders.append(_clip_encoder(tokenizer, **pick))
    t5 = random_t5_encoder(len(tokenizer), **sizes["t5"])
    latent_size = image_size // 2 ** (len(vae_sizes["channels"]) - 1)
    transformer_config = {"sample_size": latent_size, "pos_embed_max_size": latent_size, **sizes["transformer"],
                          **transformer}
    transformer = SD3Transformer2DModel(**transformer_config)
    return inference_mode(StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae,
        text_encoder=encoders[0], tokenizer=tokenizer, text_encoder_2=encoders[1], tokenizer_2=tokenizer,
        text_encoder_3=t5, tokenizer_3=tokenizer))
