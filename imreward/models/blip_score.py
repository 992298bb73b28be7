"""BLIP score baseline: cosine of BLIP's contrastive image and text embeddings (BLIP ViT-L).

The image side is ``vision_proj`` of the image encoder's [CLS] token; the text side is
``text_proj`` of the text encoder's [CLS] token with the encoder run *text-only* (self-attention
and feed-forward, no cross-attention), as BLIP's ``mode='text'`` does in the original package.
Prompts are cut to 35 tokens like there.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from imreward.config import ImageRewardConfig
from imreward.hub import CheckpointError, bert_tokenizer, load_weights
from imreward.models._clip_backbone import place
from imreward.models.baselines import BLIP_LARGE, resolve_checkpoint
from imreward.models.blip import BLIPBackbone
from imreward.scoring import RewardScorer
from imreward.tokenizer import PromptTokenizer

# Parts of BLIP's pre-training checkpoint that the score does not use: momentum encoders and
# projections, contrastive queues and temperature, the image-text matching head and the decoder.
IGNORED_PREFIXES = ("visual_encoder_m.", "text_encoder_m.", "vision_proj_m.", "text_proj_m.", "image_queue",
                    "text_queue", "idx_queue", "ptr_queue", "queue_ptr", "temp", "itm_head.", "text_decoder.")
USED_PREFIXES = ("visual_encoder.", "text_encoder.", "vision_proj.", "text_proj.")


class BLIPScore(RewardScorer):
    """Scores in [-1, 1]. ``config`` describes the backbone (default: BLIP ViT-L + BERT-base)."""

    float_modules = ("blip.vision_proj", "blip.text_proj")

    def __init__(self, config: ImageRewardConfig, tokenizer: PromptTokenizer) -> None:
        super().__init__()
        self.config = config
        self.blip = BLIPBackbone(config.vision, config.text, config.embed_dim)
        self.tokenizer = tokenizer
        self.image_size = config.vision.image_size
        self.image_mean = config.image_mean
        self.image_std = config.image_std

    def encode_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(list(prompts), self.config.max_length)

    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Normalised ``vision_proj`` of the image [CLS] token: [B, embed_dim]."""
        return F.normalize(self.blip.vision_proj(self.blip.visual_encoder(pixel_values)[:, 0]), dim=-1)

    def text_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Normalised ``text_proj`` of the text-only [CLS] feature: [B, embed_dim]."""
        return F.normalize(self.blip.text_proj(self.blip.text_encoder(input_ids, attention_mask)), dim=-1)

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:
        """pixel_values [B, 3, S, S] normalised, prompts [B, L] -> cosine similarities [B] float32."""
        image = self.image_embeddings(pixel_values)
        text = self.text_embeddings(input_ids, attention_mask)
        return (image * text).sum(dim=-1).float()


def backbone_state_dict(checkpoint: dict, source: str) -> dict[str, torch.Tensor]:
    """The backbone tensors of BLIP's ``{"model": state_dict}`` file, under this module's ``blip.`` prefix.

    Keys with ``IGNORED_PREFIXES`` are dropped; any other unknown key is an error.
    """
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{source} is not a BLIP checkpoint: expected a dict with a 'model' state dict")
    unknown = sorted(k for k in state if not k.startswith(USED_PREFIXES + IGNORED_PREFIXES))
    if unknown:
        raise CheckpointError(f"{source} has keys outside BLIP's pre-training layout: {', '.join(unknown[:20])}")
    return {f"blip.{key}": value for key, value in state.items() if key.startswith(USED_PREFIXES)}


def load_blip_score(name: str = "BLIP", device: str | torch.device | None = None,
                    dtype: torch.dtype | str | None = None,
                    download_root: str | os.PathLike | None = None,
                    checkpoint: str | os.PathLike | None = None,
                    config: ImageRewardConfig | None = None,
                    tokenizer: PromptTokenizer | None = None) -> BLIPScore:
    """The BLIP-score baseline in eval mode.

    Args:
        device: defaults to CUDA when available.
        dtype: e.g. ``torch.bfloat16`` for the whole model (scores stay float32).
        download_root: cache folder for ``model_large.pth`` (default ``~/.cache/imreward``).
        checkpoint: a local BLIP pre-training checkpoint instead of the published ``model_large.pth``.
        config: backbone architecture (default: the published ViT-L/16 + BERT-base at 224 px).
        tokenizer: default: BERT uncased WordPiece, as BLIP.
    """
    path = resolve_checkpoint(BLIP_LARGE, checkpoint, download_root)
    tokenizer = tokenizer or bert_tokenizer(download_root)
    with torch.device("meta"):  # every tensor comes from the checkpoint
        scorer = BLIPScore(config or ImageRewardConfig(), tokenizer)
    state = backbone_state_dict(torch.load(path, map_location="cpu", weights_only=True), str(path))
    load_weights(scorer, state, str(path))
    return place(scorer, device, dtype)
