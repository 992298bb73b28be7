"""BLIP's ViT image encoder, built from timm's VisionTransformer (same parameter names:
``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``blocks.N.*``, ``norm``)."""

from __future__ import annotations

from functools import partial

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from imreward.config import VisionConfig


class VisionEncoder(VisionTransformer):
    """ViT returning every output token after the final LayerNorm: [B, 1 + patches, width]."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__(
            img_size=config.image_size,
            patch_size=config.patch_size,
            embed_dim=config.width,
            depth=config.depth,
            num_heads=config.num_heads,
            mlp_ratio=config.mlp_ratio,
            qkv_bias=True,
            norm_layer=partial(nn.LayerNorm, eps=config.layer_norm_eps),
            act_layer=nn.GELU,
            num_classes=0,
            global_pool="",
        )
        self.config = config

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values [B, 3, image_size, image_size], normalised -> tokens [B, N, width]."""
        return self.forward_features(pixel_values)
