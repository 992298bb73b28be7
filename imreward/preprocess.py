"""Image preprocessing of the reward model, on PIL images and on differentiable tensors.

The PIL path reproduces the original ImageReward transform step for step: resize the shorter side
to the model size with bicubic filtering *in the image's own mode* (Pillow falls back to nearest
for palette and 1-bit images), centre-crop, and only then convert to RGB, scale to [0, 1] and
normalise. Converting after the resize matters for palette, alpha and grayscale images. 16-bit
("I;16") and 32-bit ("I", "F") images are clipped to 0..255 by that conversion, as in the original.
Two modes whose conversion after resizing Pillow cannot do are converted first: "La" (to "LA";
Pillow raises) and "PA" (to "RGBA"; Pillow returns a black image).

The tensor path does the same geometry with ``torch.nn.functional.interpolate`` (bicubic,
antialiased), so gradients flow to the pixels. It differs from the PIL path only by interpolation
details and the PIL path's rounding to 8 bits (the README gives the measured bound).

Both refuse (``ImageLoadError``, before resizing) an image whose resized size would exceed
``MAX_RESIZED_PIXELS``: resizing the short side of an 8192x1 image to 224 asks for 1.8 M x 224
pixels, hundreds of MB from a 90-byte PNG. Only aspect ratios beyond about 330:1 reach the bound.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from imreward.errors import ImageLoadError

CONVERT_BEFORE_RESIZE = {"La": "LA", "PA": "RGBA"}
MAX_RESIZED_PIXELS = 2**24  # 16.8 M: 64 MiB as RGBA, ample for any photograph's shape


def resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) with the shorter side equal to ``size``; the longer side truncated to an int.

    Raises:
        ImageLoadError: the resized image would have more than ``MAX_RESIZED_PIXELS`` pixels.
    """
    resized = (size, int(size * width / height)) if height <= width else (int(size * height / width), size)
    if resized[0] * resized[1] > MAX_RESIZED_PIXELS:
        raise ImageLoadError(f"a {width}x{height} image resized to {size} px on its shorter side would have "
                             f"{resized[1]}x{resized[0]} pixels, more than the limit of {MAX_RESIZED_PIXELS} "
                             f"(aspect ratio {max(height, width) / min(height, width):.0f}:1)")
    return resized


class PilPreprocessor:
    """PIL image -> normalised float tensor [3, size, size]."""

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.size = size
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    @property
    def cache_key(self) -> tuple:
        """Equal for preprocessors that give the same tensor for every image (score-dataset then
        preprocesses each image once for all of them)."""
        return (type(self).__name__, getattr(self, "resize_to", self.size), self.size,
                tuple(self.mean.flatten().tolist()), tuple(self.std.flatten().tolist()))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if image.mode in CONVERT_BEFORE_RESIZE:
            image = image.convert(CONVERT_BEFORE_RESIZE[image.mode])
        resized_size(image.height, image.width, self.size)  # refuses extreme aspect ratios before resizing
        image = TF.resize(image, self.size, interpolation=InterpolationMode.BICUBIC)
        image = TF.center_crop(image, self.size).convert("RGB")
        pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
        return (pixels - self.mean) / self.std


def preprocess_tensor(pixels: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Differentiable counterpart of ``PilPreprocessor`` for a batch.

    Args:
        pixels: [B, 3, H, W] float RGB in [0, 1].
    Returns:
        [B, 3, size, size] normalised, in the dtype of ``pixels``.
    """
    if pixels.ndim != 4 or pixels.shape[1] != 3:
        raise ValueError(f"expected pixels of shape [B, 3, H, W], got {tuple(pixels.shape)}")
    if not pixels.is_floating_point():
        raise TypeError(f"expected a float tensor in [0, 1], got {pixels.dtype}")
    height, width = pixels.shape[-2:]
    new_height, new_width = resized_size(height, width, size)
    if (new_height, new_width) != (height, width):
        pixels = F.interpolate(pixels, size=(new_height, new_width), mode="bicubic", align_corners=False,
                               antialias=True).clamp(0.0, 1.0)
    top = int(round((new_height - size) / 2.0))
    left = int(round((new_width - size) / 2.0))
    pixels = pixels[:, :, top: top + size, left: left + size]
    mean = torch.tensor(mean, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
    std = torch.tensor(std, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
    return (pixels - mean) / std


class HFCLIPPilPreprocessor(PilPreprocessor):
    """PIL image -> normalised [3, size, size] as transformers' ``CLIPImageProcessor`` does it (the
    preprocessing of hub CLIP repos such as laion/CLIP-ViT-H-14-laion2B-s32B-b79K): convert to RGB
    first, bicubic resize of the shorter side, then a centre crop whose offsets round down (torchvision
    rounds to nearest, so the two differ by a pixel for some sizes)."""

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float], resize_to: int | None = None) -> None:
        super().__init__(size, mean, std)
        self.resize_to = resize_to or size  # the processor's shortest_edge; the crop is ``size``

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image if image.mode == "RGB" else image.convert("RGB")
        height, width = resized_size(image.height, image.width, self.resize_to)
        image = image.resize((width, height), Image.BICUBIC)
        top, left = (height - self.size) // 2, (width - self.size) // 2
        image = image.crop((left, top, left + self.size, top + self.size))
        pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0
        return (pixels - self.mean) / self.std
