"""Validation images for fixed prompts and seeds: generated, scored and saved as a PNG grid."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from imreward.refl.diffusion import decode, denoise, encode_prompts, initial_latents


@torch.no_grad()
def generate_images(pipeline, unet, scheduler, prompts: list[str], resolution: int, seed: int,
                    guidance_scale: float = 1.0, batch_size: int = 4) -> torch.Tensor:
    """Sample one image per prompt over all of ``scheduler.timesteps``.

    The starting noise depends only on ``seed`` and the prompt's position, so successive
    validations (and runs on other devices) start from the same latents.

    Returns:
        Pixels [N, 3, resolution, resolution] in [0, 1].
    """
    device = pipeline.vae.device
    generator = torch.Generator().manual_seed(seed)
    latents = initial_latents(pipeline, len(prompts), resolution, resolution, generator, scheduler, device,
                              torch.float32)
    images = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start: start + batch_size]
        conditioning = encode_prompts(pipeline, chunk, resolution, resolution, device, guidance=guidance_scale > 1)
        final = denoise(unet, latents[start: start + len(chunk)], conditioning, scheduler, scheduler.timesteps,
                        guidance_scale)
        images.append(decode(pipeline, final).float())
    return torch.cat(images)


def save_grid(images: torch.Tensor, path: str | os.PathLike) -> Path:
    """Save images [N, 3, H, W] in [0, 1] as one PNG grid (about square)."""
    from torchvision.utils import save_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.cpu(), path, nrow=max(1, math.ceil(math.sqrt(images.shape[0]))), padding=2)
    return path


def append_record(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line (validation rewards per step) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")
