"""The generator components ReFL trains, held as a diffusers pipeline.

The pipeline (SD 1.x/2.x, SDXL, SD3/3.5, FLUX.1) is the container: it loads and saves the folder
layout, encodes prompts and knows the VAE scale. ``build_random_pipeline`` makes a Stable
Diffusion one from configs with random weights and an offline byte-level tokenizer, for tests, the
CPU demo and the GPU benchmark (no hub access); the SD3 and FLUX families build theirs in
``imreward.refl.families``, from the shared VAE, T5 and tokenizer builders here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

TINY = "tiny"
SD15 = "sd15"


@dataclass(frozen=True)
class ComponentSizes:
    """Widths of a randomly initialised Stable Diffusion (UNet, VAE, CLIP text encoder)."""

    unet_channels: tuple[int, ...]
    unet_layers_per_block: int
    attention_head_dim: int
    vae_channels: tuple[int, ...]
    vae_layers_per_block: int
    text_hidden_size: int
    text_layers: int
    text_heads: int
    text_intermediate_size: int
    text_max_length: int
    text_vocab_size: int = 0  # embedding rows beyond the offline tokenizer's (SD's CLIP has 49408)
    norm_num_groups: int = 32


PRESETS: dict[str, ComponentSizes] = {
    TINY: ComponentSizes(unet_channels=(32, 64), unet_layers_per_block=1, attention_head_dim=8,
                         vae_channels=(32, 64), vae_layers_per_block=1, text_hidden_size=32, text_layers=2,
                         text_heads=4, text_intermediate_size=64, text_max_length=48),
    # The shapes of Stable Diffusion 1.5 (860M-parameter UNet, 84M VAE, 123M CLIP ViT-L/14 text encoder).
    SD15: ComponentSizes(unet_channels=(320, 640, 1280, 1280), unet_layers_per_block=2, attention_head_dim=8,
                         vae_channels=(128, 256, 512, 512), vae_layers_per_block=2, text_hidden_size=768,
                         text_layers=12, text_heads=12, text_intermediate_size=3072, text_max_length=77,
                         text_vocab_size=49408),
}


def byte_level_clip_tokenizer(max_length: int):
    """A CLIP tokenizer over the 256 byte-level symbols (no merges), built offline.

    Every string tokenises (one token per character), which is all random-weight components need.
    """
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    symbols = sorted(ByteLevel.alphabet())
    vocab = {symbol: index for index, symbol in enumerate(symbols)}
    vocab.update({symbol + "</w>": index + len(symbols) for index, symbol in enumerate(symbols)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def random_vae(channels: tuple[int, ...], layers_per_block: int, image_size: int, latent_channels: int = 4,
               norm_num_groups: int = 32, **config):
    """An ``AutoencoderKL`` with random weights; ``config`` sets e.g. ``scaling_factor``/``shift_factor``."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=latent_channels, block_out_channels=channels,
        layers_per_block=layers_per_block, norm_num_groups=norm_num_groups,
        down_block_types=("DownEncoderBlock2D",) * len(channels),
        up_block_types=("UpDecoderBlock2D",) * len(channels), sample_size=image_size, **config)


def inference_mode(pipeline):
    """Every module of ``pipeline`` in eval mode (no dropout), as ``from_pretrained`` leaves them."""
    for component in pipeline.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    return pipeline


def random_t5_encoder(vocab_size: int, width: int, layers: int, heads: int, feed_forward: int):
    """A T5 encoder (the third text encoder of SD3, the second of FLUX) with random weights."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=vocab_size, d_model=width, d_kv=width // heads, d_ff=feed_forward,
                                   num_layers=layers, num_heads=heads, relative_attention_num_buckets=8))


def _text_encoder(sizes: ComponentSizes, tokenizer, with_projection: bool, projection_dim: int):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=max(len(tokenizer), sizes.text_vocab_size), hidden_size=sizes.text_hidden_size, intermediate_size=sizes.text_intermediate_size,
        num_hidden_layers=sizes.text_layers, num_attention_heads=sizes.text_heads,
        max_position_embeddings=sizes.text_max_length, projection_dim=projection_dim,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)


def build_random_pipeline(preset: str | ComponentSizes = TINY, image_size: int = 32, sdxl: bool = False,
                          seed: int = 0):
    """A Stable Diffusion pipeline with random weights, built from configs (no downloads).

    Args:
        preset: ``"tiny"`` (unit tests, CPU demo), ``"sd15"`` (SD-1.5 shapes) or explicit sizes.
        image_size: pixel resolution the UNet's ``sample_size`` is set for.
        sdxl: build the SDXL layout: two text encoders (the second with a projection giving the
            pooled embedding) and a UNet with ``addition_embed_type="text_time"``.
        seed: seeds the weight initialisation.
    Returns:
        ``StableDiffusionPipeline`` or ``StableDiffusionXLPipeline`` (on CPU, float32).
    """
    from diffusers import DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel

    sizes = PRESETS[preset] if isinstance(preset, str) else preset
    torch.manual_seed(seed)
    depth = len(sizes.unet_channels)
    vae_scale = 2 ** (len(sizes.vae_channels) - 1)
    vae = random_vae(sizes.vae_channels, sizes.vae_layers_per_block, image_size,
                     norm_num_groups=min(sizes.norm_num_groups, sizes.vae_channels[0]))
    tokenizer = byte_level_clip_tokenizer(sizes.text_max_length)
    text_encoder = _text_encoder(sizes, tokenizer, with_projection=False, projection_dim=sizes.text_hidden_size)
    unet_kwargs = {}
    cross_attention_dim = sizes.text_hidden_size
    if sdxl:
        text_encoder_2 = _text_encoder(sizes, tokenizer, with_projection=True, projection_dim=sizes.text_hidden_size)
        time_embed_dim = 8
        cross_attention_dim = 2 * sizes.text_hidden_size
        unet_kwargs = dict(addition_embed_type="text_time", addition_time_embed_dim=time_embed_dim,
                           projection_class_embeddings_input_dim=6 * time_embed_dim + sizes.text_hidden_size)
    unet = UNet2DConditionModel(
        sample_size=image_size // vae_scale, in_channels=4, out_channels=4,
        layers_per_block=sizes.unet_layers_per_block, block_out_channels=sizes.unet_channels,
        down_block_types=("CrossAttnDownBlock2D",) * (depth - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (depth - 1),
        cross_attention_dim=cross_attention_dim, attention_head_dim=sizes.attention_head_dim,
        norm_num_groups=min(sizes.norm_num_groups, sizes.unet_channels[0]), **unet_kwargs)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    if sdxl:
        return StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                         tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet, scheduler=scheduler)
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def cast_pipeline(pipeline, dtype: torch.dtype, denoiser_dtype: torch.dtype | None = None):
    """Cast, in place, the modules of a pipeline built in memory to a run's dtypes (``dtype``; the
    UNet or transformer to ``denoiser_dtype``, default ``dtype``), as ``load_pipeline`` reads a folder.
    The trainer never casts a pipeline itself; returns ``pipeline``."""
    from imreward.refl.families import family_of

    trained = family_of(pipeline).model_attribute
    for name, component in pipeline.components.items():
        if isinstance(component, torch.nn.Module):
            component.to((denoiser_dtype or dtype) if name == trained else dtype)
    return pipeline


def load_pipeline(name_or_path: str | os.PathLike, revision: str | None = None, variant: str | None = None,
                  dtype: torch.dtype = torch.float32, denoiser_dtype: torch.dtype | None = None,
                  device: str | torch.device | None = None):
    """Load a pipeline folder or hub repo of a supported family (SD 1.x/2.x, SDXL, SD3/3.5, FLUX.1),
    without a safety checker. A local folder's family is checked from ``model_index.json`` first.

    Args:
        dtype: the dtype every weight is loaded in (the training/inference dtype, e.g. bfloat16 under
            bf16 mixed precision): weights are read straight into it, never held in float32 first.
        denoiser_dtype: the UNet's or transformer's dtype when it differs (float32 for a full
            fine-tune, whose weights train in float32); default ``dtype``.
        device: an accelerator device to place the weights on as they are read (no host copy of the
            whole model); ``None`` or a CPU device leaves them on the CPU.
    """
    from diffusers import DiffusionPipeline

    from imreward.refl.families import FAMILIES, family_of, family_of_folder

    no_safety_checker = {"safety_checker": None, "requires_safety_checker": False}
    if Path(name_or_path).is_dir() and family_of_folder(name_or_path).name != "sd":
        no_safety_checker = {}
    dtypes = {family.model_attribute: denoiser_dtype or dtype for family in FAMILIES.values()}
    placement = {}
    if device is not None and torch.device(device).type != "cpu":
        placement["device_map"] = torch.device(device).type  # the current device of that type
    # Pipelines without a safety checker (SDXL) ignore these two arguments with a warning.
    pipeline = DiffusionPipeline.from_pretrained(name_or_path, revision=revision, variant=variant,
                                                 dtype={**dtypes, "default": dtype}, **placement,
                                                 **no_safety_checker)
    family_of(pipeline)
    return pipeline
