"""ImageReward (Xu et al., NeurIPS 2023, arXiv 2304.05977): a BLIP backbone whose text encoder reads
the prompt while cross-attending to the image, and an MLP head on the [CLS] feature. Scores are the
head output normalised by the training set's mean and standard deviation."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from safetensors.torch import save_file

from imreward.config import ImageRewardConfig
from imreward.models.blip import BLIPBackbone
from imreward.models.head import RewardHead
from imreward.scoring import RewardScorer
from imreward.tokenizer import PromptTokenizer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class ImageReward(RewardScorer):
    """The reward model. Build it with ``imreward.load``; the constructor downloads nothing.

    State-dict keys are those of the published ``ImageReward.pt`` (``blip.visual_encoder.*``,
    ``blip.text_encoder.*``, ``blip.vision_proj.*``, ``blip.text_proj.*``, ``mlp.layers.*``).
    """

    # int8 leaves the head and the text encoder in float: the text encoder is under a tenth of the
    # FLOPs but gave half of int8's score error on the full-size model (README "Speed")
    float_modules = ("mlp", "blip.vision_proj", "blip.text_proj", "blip.text_encoder")

    def __init__(self, config: ImageRewardConfig, tokenizer: PromptTokenizer | None = None) -> None:
        super().__init__()
        self.config = config
        self.blip = BLIPBackbone(config.vision, config.text, config.embed_dim)
        self.mlp = RewardHead(config.text.hidden_size, config.head)
        self.tokenizer = tokenizer
        self.image_size = config.vision.image_size
        self.image_mean = config.image_mean
        self.image_std = config.image_std
        self._max_length = config.max_length

    @property
    def max_length(self) -> int:
        """Prompt length in tokens, [CLS] and [SEP] included; longer prompts are truncated."""
        return self._max_length

    @max_length.setter
    def max_length(self, value: int) -> None:
        if not 2 <= value <= self.config.text.max_position_embeddings:
            raise ValueError(f"max_length must be in [2, {self.config.text.max_position_embeddings}]")
        if value > self.config.max_length:
            warnings.warn(f"max_length {value} exceeds the {self.config.max_length} tokens this model was trained "
                          "with; scores of longer prompts are outside its training distribution", stacklevel=2)
        self._max_length = value

    def encode_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        if self.tokenizer is None:
            raise RuntimeError("this ImageReward has no tokenizer; load it with imreward.load")
        return self.tokenizer(prompts, self.max_length)

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:
        """Normalised rewards [B] (float32).

        Args:
            pixel_values: [B, 3, S, S] normalised images.
            input_ids, attention_mask: [B, L] tokenised prompts.
        """
        features = self.blip.multimodal_features(pixel_values, input_ids, attention_mask)
        head_dtype = self.mlp.layers[0].weight.dtype
        raw = self.mlp(features.to(head_dtype)).float()
        return (raw - self.config.reward_mean) / self.config.reward_std

    def save_pretrained(self, folder: str | Path) -> None:
        """Write ``config.json``, ``model.safetensors`` and the tokenizer files; ``imreward.load(folder)``
        reads them back without any network."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.config.save(folder / CONFIG_FILE)
        tensors = {key: value.detach().contiguous().cpu() for key, value in self.state_dict().items()}
        save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
        if self.tokenizer is not None:
            self.tokenizer.save(folder)
