"""Helpers for the evaluation tests: a counting brightness scorer, generated images and a tiny
OpenAI-format CLIP file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from imreward.scoring import RewardScorer


class BrightnessScorer(RewardScorer):
    """Scores an image by its mean pixel value (prompt ignored); counts the images it scored."""

    image_size = 16
    image_mean = (0.0, 0.0, 0.0)
    image_std = (1.0, 1.0, 1.0)

    def __init__(self, sign: float = 1.0) -> None:
        super().__init__()
        self.sign = nn.Parameter(torch.tensor(sign), requires_grad=False)
        self.images_scored = 0

    def encode_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        return {}

    def forward(self, pixel_values: torch.Tensor, **unused: torch.Tensor) -> torch.Tensor:
        self.images_scored += pixel_values.shape[0]
        return self.sign * pixel_values.mean(dim=(1, 2, 3))


def write_gray_png(path: Path, level: int, size: int = 24) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), level, dtype=np.uint8)).save(path)
    return path


def write_tiny_openai_clip(path: Path, seed: int = 0, as_torchscript: bool = True) -> nn.Module:
    """Save a tiny CLIP the way OpenAI published ``ViT-L-14.pt`` (a traced TorchScript archive with
    float16 weights and an ``input_resolution`` entry), or as a plain state dict.

    Returns:
        the same model in float32 (weights rounded through float16), for computing expected values.
    """
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg, convert_weights_to_fp16

    torch.manual_seed(seed)
    model = CLIP(32, vision_cfg=CLIPVisionCfg(layers=1, width=64, patch_size=8, image_size=32),
                 text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=1, layers=1),
                 quick_gelu=True).eval()
    convert_weights_to_fp16(model)
    if as_torchscript:
        mask = model.attn_mask  # OpenAI's model keeps the causal mask as a constant, not a weight
        del model._buffers["attn_mask"]
        model.attn_mask = mask
        model.register_buffer("input_resolution", torch.tensor(32))
        images, tokens = torch.ones(1, 3, 32, 32, dtype=torch.float16), torch.zeros(1, 77, dtype=torch.int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and torch.jit deprecation warnings
            traced = torch.jit.trace_module(model, dict(forward=(images, tokens), encode_text=(tokens,),
                                                        encode_image=(images,)))
            torch.jit.save(traced, str(path))
        del model._buffers["input_resolution"]
    else:
        torch.save(model.state_dict(), path)
    return model.float()
