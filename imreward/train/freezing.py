"""Which parameters train: the paper freezes the embeddings and the first 70% of each encoder's layers.

``freeze(model, ratio)`` freezes the ``*_proj`` layers always (a reward model does not use them),
and for ``ratio > 0`` the text and image embeddings and the first ``int(ratio * L)`` layers of each
encoder (L = 12 text and 24 image layers in the published model). The original code also froze one
more tensor (the first weight of the next layer) by a loop quirk; this does not.
"""

from __future__ import annotations

from dataclasses import dataclass

from imreward.models.image_reward import ImageReward


@dataclass(frozen=True)
class FreezeSummary:
    trainable: int
    total: int
    frozen_text_layers: int
    frozen_image_layers: int
    frozen_embeddings: bool
    lora_rank: int | None = None

    def describe(self) -> str:
        if self.lora_rank:
            return (f"training {self.trainable:,} of {self.total:,} parameters "
                    f"({100.0 * self.trainable / max(self.total, 1):.1f}%): rank-{self.lora_rank} LoRA adapters "
                    "and the reward head; every backbone weight frozen")
        return (f"training {self.trainable:,} of {self.total:,} parameters "
                f"({100.0 * self.trainable / max(self.total, 1):.1f}%); frozen: the *_proj layers"
                + (f", the embeddings and the first {self.frozen_text_layers} text / {self.frozen_image_layers} "
                   "image layers" if self.frozen_embeddings else ""))


def freeze(model: ImageReward, ratio: float) -> FreezeSummary:
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"freeze ratio must be in [0, 1], got {ratio}")
    blip = model.blip
    model.requires_grad_(True)
    blip.vision_proj.requires_grad_(False)
    blip.text_proj.requires_grad_(False)
    text_layers = blip.text_encoder.encoder.layer
    image_layers = blip.visual_encoder.blocks
    frozen_text, frozen_image = int(ratio * len(text_layers)), int(ratio * len(image_layers))
    if ratio > 0:
        blip.text_encoder.embeddings.requires_grad_(False)
        vision = blip.visual_encoder
        vision.patch_embed.requires_grad_(False)
        vision.cls_token.requires_grad_(False)
        vision.pos_embed.requires_grad_(False)
        for layer in list(text_layers)[:frozen_text] + list(image_layers)[:frozen_image]:
            layer.requires_grad_(False)
    parameters = list(model.parameters())
    return FreezeSummary(sum(p.numel() for p in parameters if p.requires_grad), sum(p.numel() for p in parameters),
                         frozen_text, frozen_image, ratio > 0)
