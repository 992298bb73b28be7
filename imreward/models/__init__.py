"""Reward models and baseline scorers, one per module."""

from imreward.models.blip import BLIPBackbone
from imreward.models.head import RewardHead
from imreward.models.image_reward import ImageReward
from imreward.models.text_encoder import CrossAttentionTextEncoder
from imreward.models.vision_encoder import VisionEncoder

__all__ = ["BLIPBackbone", "CrossAttentionTextEncoder", "ImageReward", "RewardHead", "VisionEncoder"]
