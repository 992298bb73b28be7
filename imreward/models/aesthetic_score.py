"""Aesthetic baseline: the LAION improved aesthetic predictor, a linear MLP on L2-normalised
OpenAI CLIP ViT-L/14 image embeddings. It ignores the prompt.

The published ``sac+logos+ava1-l14-linearMSE.pth`` holds the MLP's state dict under
``layers.{0,2,4,6,7}``: Linear(768, 1024), Dropout(0.2), Linear(1024, 128), Dropout(0.2),
Linear(128, 64), Dropout(0.1), Linear(64, 16), Linear(16, 1), with no activations in between;
that is the layout of the ImageReward head, so ``RewardHead`` is reused.
"""

from __future__ import annotations

import os

import torch

from imreward.config import CLIP_IMAGE_MEAN, CLIP_IMAGE_STD, HeadConfig
from imreward.hub import CheckpointError, load_weights
from imreward.models._clip_backbone import clip_image_features, clip_image_size, load_openai_clip, place
from imreward.models.baselines import AESTHETIC_MLP, CLIP_VIT_L14, resolve_checkpoint
from imreward.models.head import RewardHead
from imreward.scoring import RewardScorer

AESTHETIC_HEAD = HeadConfig(hidden_sizes=(1024, 128, 64, 16), dropouts=(0.2, 0.2, 0.1, 0.0))


class AestheticScore(RewardScorer):
    """Predicted aesthetic rating (roughly 1-10) of an image; the prompt is not used."""

    float_modules = ("mlp",)

    def __init__(self, clip_model, head: RewardHead) -> None:
        super().__init__()
        self.clip = clip_model
        self.mlp = head
        self.image_size = clip_image_size(clip_model)
        self.image_mean = CLIP_IMAGE_MEAN
        self.image_std = CLIP_IMAGE_STD

    def encode_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        return {}

    def forward(self, pixel_values: torch.Tensor, **unused_text: torch.Tensor) -> torch.Tensor:
        """pixel_values [B, 3, S, S] normalised -> ratings [B] float32."""
        return self.mlp(clip_image_features(self.clip, pixel_values)).float()


def read_aesthetic_head(path: str | os.PathLike, feature_width: int) -> RewardHead:
    """The MLP of a published-layout state dict, checked strictly against ``feature_width`` inputs."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "layers.0.weight" not in state:
        raise CheckpointError(f"{path} is not an aesthetic-predictor MLP state dict (no 'layers.0.weight')")
    head = RewardHead(feature_width, AESTHETIC_HEAD)
    load_weights(head, state, str(path))
    return head


def load_aesthetic_score(name: str = "Aesthetic", device: str | torch.device | None = None,
                         dtype: torch.dtype | str | None = None,
                         download_root: str | os.PathLike | None = None,
                         checkpoint: str | os.PathLike | None = None,
                         clip_checkpoint: str | os.PathLike | None = None) -> AestheticScore:
    """The aesthetic baseline in eval mode.

    Args:
        device: defaults to CUDA when available.
        dtype: e.g. ``torch.bfloat16`` for CLIP; the MLP stays float32, as in the original.
        download_root: cache folder for both files (default ``~/.cache/imreward``).
        checkpoint: a local MLP state dict instead of the published one.
        clip_checkpoint: a local OpenAI CLIP file instead of the published ViT-L/14.
    """
    clip_model = load_openai_clip(resolve_checkpoint(CLIP_VIT_L14, clip_checkpoint, download_root))
    head = read_aesthetic_head(resolve_checkpoint(AESTHETIC_MLP, checkpoint, download_root),
                               clip_model.visual.output_dim)
    scorer = AestheticScore(clip_model, head)
    return place(scorer, device, dtype, backbone=scorer.clip)
