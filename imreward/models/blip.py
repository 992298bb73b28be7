"""The BLIP backbone shared by ImageReward and the BLIP-score baseline (Li et al. 2022).

Holds the image encoder, the multimodal text encoder and the two contrastive projections, under
BLIP's names (``visual_encoder``, ``text_encoder``, ``vision_proj``, ``text_proj``).
"""

from __future__ import annotations

import torch
from torch import nn

from imreward.config import TextConfig, VisionConfig
from imreward.models.text_encoder import CrossAttentionTextEncoder
from imreward.models.vision_encoder import VisionEncoder


class BLIPBackbone(nn.Module):
    def __init__(self, vision: VisionConfig, text: TextConfig, embed_dim: int) -> None:
        super().__init__()
        if text.encoder_width != vision.width:
            raise ValueError(f"text encoder_width {text.encoder_width} != vision width {vision.width}")
        self.visual_encoder = VisionEncoder(vision)
        self.text_encoder = CrossAttentionTextEncoder(text)
        self.vision_proj = nn.Linear(vision.width, embed_dim)
        self.text_proj = nn.Linear(text.hidden_size, embed_dim)

    def multimodal_features(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                            attention_mask: torch.Tensor) -> torch.Tensor:
        """[CLS] feature of the text encoder attending to the image: [B, text hidden size]."""
        image_tokens = self.visual_encoder(pixel_values)
        return self.text_encoder(input_ids, attention_mask, image_tokens)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.visual_encoder.set_grad_checkpointing(enable)
        self.text_encoder.gradient_checkpointing = enable
