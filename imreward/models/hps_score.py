"""HPSv2 and HPSv2.1 (Wu et al., *Human Preference Score v2*, 2023, arXiv 2306.09341): an open_clip
ViT-H/14 fine-tuned on HPDv2 preference pairs; the score is the cosine of the normalised image and
prompt embeddings (no logit scale), as the ``hpsv2`` 1.2.0 package returns it.

The published files (hub ``xswu/HPSv2``: ``HPS_v2_compressed.pt``, ``HPS_v2.1_compressed.pt``) are
``{"state_dict": ...}`` pickles of open_clip's parameter names; they are read with
``weights_only=True``. Preprocessing is the package's own evaluation transform, which differs from
CLIP's: convert to RGB *first*, then resize the float tensor so that its *longer* side is 224
(torchvision bicubic, antialiased, sizes rounded half to even, no clamping or 8-bit rounding) and
pad the shorter side with zeros (black, before normalisation) to a centred square; nothing is
cropped. Two inputs the original cannot score are handled: RGBA images (it keeps four channels and
fails in the model) are converted to RGB like every other mode, and a non-square image whose longer
side is already 224 (it skips the padding and fails) is padded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from imreward.errors import CheckpointError
from imreward.hub import hub_file
from imreward.models._clip_backbone import OpenClipScore, build_open_clip, place
from imreward.preprocess import PilPreprocessor

HPS_REPO = "xswu/HPSv2"
HPS_FILES = {"HPSv2": "HPS_v2_compressed.pt", "HPSv2.1": "HPS_v2.1_compressed.pt"}
HPS_ARCHITECTURE = "ViT-H-14"  # open_clip's config; HPSv2 was fine-tuned from laion2B-s32B-b79K


def resize_and_pad(pixels: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """The package's transform on pixels [B, 3, H, W] in [0, 1] -> normalised [B, 3, size, size]."""
    height, width = pixels.shape[-2:]
    scale = size / max(height, width)
    new_height, new_width = round(height * scale), round(width * scale)
    if scale != 1.0:
        pixels = TF.resize(pixels, [new_height, new_width], interpolation=InterpolationMode.BICUBIC, antialias=True)
    pad_height, pad_width = size - new_height, size - new_width
    pixels = TF.pad(pixels, [pad_width // 2, pad_height // 2, pad_width - pad_width // 2,
                             pad_height - pad_height // 2], fill=0.0)
    return TF.normalize(pixels, mean, std)


class HPSPilPreprocessor(PilPreprocessor):
    """PIL image -> normalised [3, S, S] by the package's transform: RGB, to float, resize the longer
    side, pad (``resize_and_pad``)."""

    def __call__(self, image: Image.Image) -> torch.Tensor:
        pixels = TF.to_tensor(image if image.mode == "RGB" else image.convert("RGB"))
        return resize_and_pad(pixels[None], self.size, self.mean.flatten().tolist(), self.std.flatten().tolist())[0]


class HPSScore(OpenClipScore):
    """HPSv2 / HPSv2.1: cosine of the normalised open_clip image and prompt embeddings."""

    @property
    def pil_preprocess(self) -> HPSPilPreprocessor:
        if getattr(self, "_pil_preprocess", None) is None:
            self._pil_preprocess = HPSPilPreprocessor(self.image_size, self.image_mean, self.image_std)
        return self._pil_preprocess

    def preprocess_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels [B, 3, H, W] in [0, 1] -> normalised [B, 3, S, S]; the same path as ``pil_preprocess``,
        so ``score_tensor`` equals ``score`` up to the 8-bit rounding of decoded images."""
        return resize_and_pad(pixels, self.image_size, self.image_mean, self.image_std)


def read_hps_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a published HPS checkpoint (``{"state_dict": {...}}``, as the package reads it)."""
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or "visual.proj" not in state:
        raise CheckpointError(f"{path} is not an HPSv2 checkpoint: expected {{'state_dict': open_clip "
                              "CLIP tensors}} with a 'visual.proj' tensor")
    return state


def load_hps_score(name: str = "HPSv2.1", device: str | torch.device | None = None,
                   dtype: torch.dtype | str | None = None, download_root: str | os.PathLike | None = None,
                   checkpoint: str | os.PathLike | None = None,
                   architecture: str | dict[str, Any] = HPS_ARCHITECTURE) -> HPSScore:
    """HPSv2 or HPSv2.1 in eval mode.

    Args:
        name: ``"HPSv2"`` or ``"HPSv2.1"``: which published file to download.
        device: defaults to CUDA when available.
        dtype: e.g. ``torch.bfloat16`` for the whole model (scores stay float32).
        download_root: cache folder for hub files (default: the Hugging Face cache).
        checkpoint: a local checkpoint in the published layout instead of the download.
        architecture: open_clip model config name or dict (default ViT-H-14; tests pass tiny ones).
    """
    if checkpoint is None:
        if name not in HPS_FILES:
            raise KeyError(f"unknown HPS version {name!r}; choose one of {', '.join(HPS_FILES)}")
        path = hub_file(HPS_REPO, HPS_FILES[name], download_root=download_root)
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"HPS checkpoint {path} does not exist")
    clip_model = build_open_clip(architecture, read_hps_state_dict(path), str(path))
    return place(HPSScore(clip_model), device, dtype)
