"""imreward: learn and evaluate human preferences for text-to-image generation (ImageReward)."""

from imreward.config import HeadConfig, ImageRewardConfig, TextConfig, VisionConfig
from imreward.hub import (
    CheckpointError,
    ModelDownloadError,
    ModelSpec,
    available_models,
    available_scores,
    list_models,
    load,
    load_score,
    register,
    register_scorer,
)
from imreward.image_io import ImageLoadError, load_image
from imreward.models.image_reward import ImageReward
from imreward.scoring import RewardScorer, Scorer

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "HeadConfig", "ImageLoadError", "ImageReward", "ImageRewardConfig", "ModelDownloadError",
    "ModelSpec", "RewardScorer", "Scorer", "TextConfig", "VisionConfig", "available_models", "available_scores",
    "list_models", "load", "load_image", "load_score", "register", "register_scorer",
]
