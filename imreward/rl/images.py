"""The image batches RL trainers hand to a reward, as uint8 RGB arrays [H, W, 3].

Every placement scores these arrays, so local, remote and Ray rewards see the same pixels: a
float image in [0, 1] is quantised once, here, as Flow-GRPO's reward functions do it
(``round(x * 255)`` clamped to 0..255), and the server receives the same bytes (raw pixels) or
a lossless PNG of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

RewardImages = torch.Tensor | np.ndarray | Sequence[Image.Image | np.ndarray | torch.Tensor]


def to_uint8_images(images: RewardImages) -> list[np.ndarray]:
    """One C-contiguous uint8 array [H, W, 3] per image, never sharing memory with ``images``.

    Args:
        images: a float tensor or array [N, 3, H, W] in [0, 1] (values outside are clamped);
            a uint8 tensor or array [N, H, W, 3] (or [N, 3, H, W]); or a list of PIL images
            (converted to RGB), uint8 arrays [H, W, 3] or float tensors [3, H, W].
    Raises:
        ValueError: a wrong shape, NaN or infinite values; TypeError: an unsupported type or dtype.
    """
    if isinstance(images, (torch.Tensor, np.ndarray)):
        if images.ndim != 4:
            raise ValueError(f"a batch of images must have 4 dimensions (N, C, H, W or N, H, W, C), "
                             f"got shape {tuple(images.shape)}")
        return list(_batch_to_nhwc(images))
    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        raise TypeError(f"images must be a tensor, an array or a list of images, not {type(images).__name__}")
    return [_one_to_hwc(image, index) for index, image in enumerate(images)]


def _batch_to_nhwc(batch: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(batch, np.ndarray):
        tensor = torch.from_numpy(batch if batch.flags.writeable else batch.copy())  # torch wants writable memory
    else:
        tensor = batch.detach()
    if tensor.is_floating_point():
        if tensor.shape[1] != 3:
            raise ValueError(f"float images must be [N, 3, H, W] in [0, 1], got shape {tuple(tensor.shape)}")
        tensor = tensor.float()
        if not torch.isfinite(tensor).all():
            raise ValueError("images hold NaN or infinite values")
        tensor = (tensor * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    elif tensor.dtype == torch.uint8:
        if tensor.shape[3] != 3 and tensor.shape[1] == 3:
            tensor = tensor.permute(0, 2, 3, 1)
        if tensor.shape[3] != 3:
            raise ValueError(f"uint8 images must be [N, H, W, 3] (or [N, 3, H, W]), got shape {tuple(tensor.shape)}")
    else:
        raise TypeError(f"images must be float in [0, 1] or uint8, got {tensor.dtype}")
    return np.array(tensor.cpu().numpy(), order="C", copy=True)  # never the caller's memory


def _one_to_hwc(image: object, index: int) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8).copy()
    if isinstance(image, (torch.Tensor, np.ndarray)) and image.ndim == 3:
        return _batch_to_nhwc(image[None])[0]
    raise TypeError(f"images[{index}]: expected a PIL image, an array [H, W, 3] or a tensor [3, H, W], "
                    f"got {type(image).__name__}{f' of shape {tuple(image.shape)}' if hasattr(image, 'shape') else ''}")
