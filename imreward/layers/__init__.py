"""Building blocks written once and shared by the models."""

from imreward.layers.attention import BertAttention, Intermediate, ResidualOutput

__all__ = ["BertAttention", "Intermediate", "ResidualOutput"]
