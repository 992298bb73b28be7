"""imreward: learn and evaluate human preferences for text-to-image generation (ImageReward).

Public names are imported on first use, so ``import imreward.annotate`` or ``imreward --help``
do not pay for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imreward._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "imreward.batch.job": ["score_shards"],
    "imreward.config": ["HeadConfig", "ImageRewardConfig", "TextConfig", "VisionConfig"],
    "imreward.errors": ["CheckpointError", "ImageLoadError", "ModelDownloadError"],
    "imreward.hub": ["ModelSpec", "available_models", "available_scores",
                     "list_models", "load", "load_score", "load_scorer", "register", "register_scorer", "ScorerInfo",
                     "scorer_info"],
    "imreward.image_io": ["load_image", "verify_image"],
    "imreward.models.image_reward": ["ImageReward"],
    "imreward.scoring": ["RewardScorer", "Scorer"],
}
__all__, __getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from imreward.batch.job import score_shards
    from imreward.config import HeadConfig, ImageRewardConfig, TextConfig, VisionConfig
    from imreward.errors import CheckpointError, ImageLoadError, ModelDownloadError
    from imreward.hub import (ModelSpec, ScorerInfo, available_models, available_scores, list_models, load, load_score,
                              load_scorer, register, register_scorer, scorer_info)
    from imreward.image_io import load_image, verify_image
    from imreward.models.image_reward import ImageReward
    from imreward.scoring import RewardScorer, Scorer

