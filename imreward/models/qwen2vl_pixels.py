"""Qwen2-VL image input: resize to a pixel budget, normalise, cut into patches, on PIL images and
on differentiable tensors.

The PIL path is qwen-vl-utils' ``fetch_image`` (as vendored by the ``hpsv3`` package: convert to
RGB, bicubic resize to ``smart_resize``'s size) followed by transformers' ``Qwen2VLImageProcessor``
(rescale by 1/255, normalise, repeat the frame ``temporal_patch_size`` times, flatten patches in
2x2 merge order). The image processor's own resize is a no-op there: the size is already a
multiple of 28 inside its range. Transformers' processors run in numpy without gradients, so the
patch layout is written once here in torch and serves both paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

MAX_ASPECT_RATIO = 200


@dataclass(frozen=True)
class PatchConfig:
    """Qwen2-VL's preprocessor_config.json values, and the pixel budget of the caller."""

    min_pixels: int
    max_pixels: int
    image_mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    image_std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    @property
    def patch_dim(self) -> int:
        return 3 * self.temporal_patch_size * self.patch_size ** 2


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(height, width) rounded to multiples of ``factor`` with the area inside [min_pixels, max_pixels]
    and the aspect ratio kept as closely as possible (qwen-vl-utils' rule, step for step)."""
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"image aspect ratio must be at most {MAX_ASPECT_RATIO}, got {height}x{width}")
    new_height = max(factor, round(height / factor) * factor)
    new_width = max(factor, round(width / factor) * factor)
    if new_height * new_width > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        new_height = math.floor(height / beta / factor) * factor
        new_width = math.floor(width / beta / factor) * factor
    elif new_height * new_width < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        new_height = math.ceil(height * beta / factor) * factor
        new_width = math.ceil(width * beta / factor) * factor
    return new_height, new_width


def patchify(pixels: torch.Tensor, config: PatchConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised pixels [3, H, W] (H, W multiples of the merge factor) -> (patches [N, patch_dim],
    grid_thw [3]) in the order the vision tower and its 2x2 patch merger expect."""
    channels, height, width = pixels.shape
    p, m, t = config.patch_size, config.merge_size, config.temporal_patch_size
    grid_h, grid_w = height // p, width // p
    frames = pixels.unsqueeze(0).expand(t, channels, height, width)  # one image = t identical frames
    patches = frames.reshape(1, t, channels, grid_h // m, m, p, grid_w // m, m, p)
    patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return patches.reshape(grid_h * grid_w, config.patch_dim), torch.tensor([1, grid_h, grid_w])


def normalise(pixels: torch.Tensor, config: PatchConfig) -> torch.Tensor:
    mean = torch.tensor(config.image_mean, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
    std = torch.tensor(config.image_std, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
    return (pixels - mean) / std


def pil_patches(image: Image.Image, config: PatchConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """A PIL image of any mode -> (patches [N, patch_dim] float32, grid_thw [3])."""
    image = image.convert("RGB")
    height, width = smart_resize(image.height, image.width, config.factor, config.min_pixels, config.max_pixels)
    image = image.resize((width, height), Image.BICUBIC)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0
    return patchify(normalise(pixels, config), config)


def tensor_patches(pixels: torch.Tensor, config: PatchConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable counterpart of ``pil_patches`` for one RGB image [3, H, W] in [0, 1]: antialiased
    bicubic resize in torch, no rounding to 8 bits."""
    if pixels.ndim != 3 or pixels.shape[0] != 3:
        raise ValueError(f"expected pixels of shape [3, H, W], got {tuple(pixels.shape)}")
    height, width = smart_resize(pixels.shape[1], pixels.shape[2], config.factor, config.min_pixels,
                                 config.max_pixels)
    if (height, width) != tuple(pixels.shape[1:]):
        pixels = F.interpolate(pixels[None], size=(height, width), mode="bicubic", align_corners=False,
                               antialias=True)[0].clamp(0.0, 1.0)
    return patchify(normalise(pixels, config), config)
