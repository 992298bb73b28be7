"""Architecture and preprocessing configs of the reward model, as frozen dataclasses.

Each config round-trips through the dict written to ``config.json`` by ``save_pretrained``.
The defaults describe the published ImageReward-v1.0 model (Xu et al. 2023, arXiv 2304.05977):
a BLIP ViT-L/16 image encoder at 224 px and a 12-layer BERT-base text encoder whose every layer
cross-attends to the image tokens, followed by a linear MLP head.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Normalisation of the image encoder's input: the CLIP statistics BLIP was trained with.
CLIP_IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)

# Mean and standard deviation of the raw head output over the ImageReward training set; the
# published scores are (raw - mean) / std, so 0 is an average image and 1 one std above it.
IMAGE_REWARD_MEAN = 0.16717362830052426
IMAGE_REWARD_STD = 1.0333394966054072


@dataclass(frozen=True)
class VisionConfig:
    """ViT image encoder (timm VisionTransformer, BLIP parameter names)."""

    image_size: int = 224
    patch_size: int = 16
    width: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    layer_norm_eps: float = 1e-6


@dataclass(frozen=True)
class TextConfig:
    """BERT text encoder with a cross-attention block over the image tokens in every layer."""

    vocab_size: int = 30524  # uncased BERT WordPiece (30522) plus [DEC] and [ENC]
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-12
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    pad_token_id: int = 0
    encoder_width: int = 1024  # width of the image tokens that keys and values project from

    @classmethod
    def from_med_config(cls, med_config: dict[str, Any] | str | Path, encoder_width: int) -> "TextConfig":
        """Read BLIP's ``med_config.json`` (a transformers BertConfig). BLIP overrides its
        ``encoder_width`` with the width of the vision encoder, so the caller passes that."""
        if not isinstance(med_config, dict):
            med_config = json.loads(Path(med_config).read_text())
        if med_config.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"unsupported hidden_act {med_config['hidden_act']!r} in med_config (expected 'gelu')")
        if med_config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("only absolute position embeddings are supported in med_config")
        return cls(
            vocab_size=med_config["vocab_size"],
            hidden_size=med_config["hidden_size"],
            num_layers=med_config["num_hidden_layers"],
            num_heads=med_config["num_attention_heads"],
            intermediate_size=med_config["intermediate_size"],
            max_position_embeddings=med_config["max_position_embeddings"],
            layer_norm_eps=med_config["layer_norm_eps"],
            hidden_dropout=med_config.get("hidden_dropout_prob", 0.1),
            attention_dropout=med_config.get("attention_probs_dropout_prob", 0.1),
            pad_token_id=med_config.get("pad_token_id", 0),
            encoder_width=encoder_width,
        )

    def to_med_config(self) -> dict[str, Any]:
        """This config as BLIP's ``med_config.json`` (BLIP itself then sets ``encoder_width`` to the
        vision width, which is why 768 stands there)."""
        return {
            "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
            "vocab_size": self.vocab_size, "hidden_size": self.hidden_size, "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads, "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.max_position_embeddings, "layer_norm_eps": self.layer_norm_eps,
            "hidden_dropout_prob": self.hidden_dropout, "attention_probs_dropout_prob": self.attention_dropout,
            "pad_token_id": self.pad_token_id, "type_vocab_size": 2, "initializer_range": 0.02,
            "encoder_width": 768, "add_cross_attention": True,
        }


@dataclass(frozen=True)
class HeadConfig:
    """MLP head on the text encoder's [CLS] feature.

    The published head has no nonlinearity between its linear layers; dropout follows each
    hidden layer whose rate is above zero (rates 0.2, 0.2, 0.1, 0 give ``mlp.layers.{0,2,4,6,7}``).
    """

    hidden_sizes: tuple[int, ...] = (1024, 128, 64, 16)
    dropouts: tuple[float, ...] = (0.2, 0.2, 0.1, 0.0)

    def __post_init__(self) -> None:
        if len(self.hidden_sizes) != len(self.dropouts):
            raise ValueError("HeadConfig needs one dropout rate per hidden layer")


@dataclass(frozen=True)
class ImageRewardConfig:
    """The whole reward model: encoders, head, projection width, tokenizer length and score scale."""

    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    embed_dim: int = 256  # width of BLIP's vision_proj / text_proj (kept for checkpoint compatibility)
    max_length: int = 35  # prompt tokens the published model was trained with
    reward_mean: float = IMAGE_REWARD_MEAN
    reward_std: float = IMAGE_REWARD_STD
    image_mean: tuple[float, float, float] = CLIP_IMAGE_MEAN
    image_std: tuple[float, float, float] = CLIP_IMAGE_STD

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": "image_reward", **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ImageRewardConfig":
        data = dict(data)
        model_type = data.pop("model_type", "image_reward")
        if model_type != "image_reward":
            raise ValueError(f"config.json describes a {model_type!r} model, not an image_reward model")
        head = data.pop("head", {})
        return cls(
            vision=VisionConfig(**data.pop("vision", {})),
            text=TextConfig(**data.pop("text", {})),
            head=HeadConfig(**{k: tuple(v) for k, v in head.items()}),
            **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()},
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "ImageRewardConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_med_config(cls, med_config: dict[str, Any] | str | Path, **overrides: Any) -> "ImageRewardConfig":
        """The published architecture with the text encoder read from BLIP's ``med_config.json``."""
        vision = overrides.pop("vision", VisionConfig())
        return cls(vision=vision, text=TextConfig.from_med_config(med_config, vision.width), **overrides)
