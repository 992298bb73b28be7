"""CLIP score baseline: cosine similarity of OpenAI CLIP ViT-L/14 image and prompt embeddings.

As in the original package, images go through CLIP's own preprocessing (bicubic resize of the
shorter side, centre crop, CLIP mean/std) and prompts are truncated to CLIP's 77 tokens.
"""

from __future__ import annotations

import os

import torch

from imreward.config import CLIP_IMAGE_MEAN, CLIP_IMAGE_STD
from imreward.models._clip_backbone import clip_image_features, clip_image_size, clip_text_features, load_openai_clip
from imreward.hub import resolve_device
from imreward.models.baselines import CLIP_VIT_L14, resolve_checkpoint
from imreward.scoring import RewardScorer


class CLIPScore(RewardScorer):
    """Scores in [-1, 1]: cosine of the normalised image and text features."""

    def __init__(self, clip_model) -> None:
        super().__init__()
        from open_clip.tokenizer import SimpleTokenizer

        self.clip = clip_model
        self.tokenizer = SimpleTokenizer(context_length=clip_model.context_length)
        self.image_size = clip_image_size(clip_model)
        self.image_mean = CLIP_IMAGE_MEAN
        self.image_std = CLIP_IMAGE_STD

    def encode_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """CLIP BPE tokens [N, 77]; longer prompts are cut and end with the end-of-text token."""
        return {"input_ids": self.tokenizer(list(prompts))}

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """pixel_values [B, 3, S, S] normalised, input_ids [B, 77] -> cosine similarities [B] float32."""
        image_features = clip_image_features(self.clip, pixel_values)
        text_features = clip_text_features(self.clip, input_ids)
        return (image_features * text_features).sum(dim=-1)


def load_clip_score(name: str = "CLIP", device: str | torch.device | None = None,
                    download_root: str | os.PathLike | None = None,
                    checkpoint: str | os.PathLike | None = None) -> CLIPScore:
    """The CLIP-score baseline in eval mode.

    Args:
        name: registry name (unused; every name loads OpenAI's ViT-L/14).
        device: defaults to CUDA when available.
        download_root: cache folder for ``ViT-L-14.pt`` (default ``~/.cache/imreward``).
        checkpoint: a local OpenAI CLIP file to use instead of the published one.
    """
    path = resolve_checkpoint(CLIP_VIT_L14, checkpoint, download_root)
    return CLIPScore(load_openai_clip(path)).to(resolve_device(device)).eval()
