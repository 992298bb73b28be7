"""What the CLIP-family scorers share: a dual-encoder score (scale x cosine of the normalised image
and prompt embeddings), open_clip models built from a config and a state dict, and OpenAI's own
CLIP file format (``ViT-L-14.pt``: a TorchScript archive whose state dict holds the weights; a plain
state dict of the same keys is accepted too).

PickScore (transformers' CLIPModel), HPSv2 and CLIP ViT-H/14 (open_clip) and the CLIP-score and
aesthetic baselines (OpenAI CLIP via open_clip) all build on this module.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
import torch.nn.functional as F

from imreward.hub import CheckpointError, load_weights, resolve_device
from imreward.precision import torch_dtype
from imreward.scoring import RewardScorer


class DualEncoderScore(RewardScorer):
    """Score = ``scale`` x cosine of the image and prompt embeddings, in float32.

    Subclasses give ``image_embeddings`` and ``text_embeddings`` (unnormalised, [B, D]);
    ``scale`` is 1 for a plain cosine, or a model's ``exp(logit_scale)``.
    """

    scale: float = 1.0

    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def text_embeddings(self, **text: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pixel_values: torch.Tensor, **text: torch.Tensor) -> torch.Tensor:
        """pixel_values [B, 3, S, S] normalised, prompts [B, L] -> scores [B] float32."""
        image = F.normalize(self.image_embeddings(pixel_values).float(), dim=-1)
        prompt = F.normalize(self.text_embeddings(**text).float(), dim=-1)
        return self.scale * (image * prompt).sum(dim=-1)


class OpenClipScore(DualEncoderScore):
    """A dual-encoder score on an ``open_clip`` CLIP with its BPE tokenizer (77 tokens, cut ones end
    with the end-of-text token), and CLIP's PIL preprocessing (bicubic resize of the shorter side in
    the image's own mode, centre crop, then RGB) unless a subclass changes ``preprocess``."""

    # open_clip reads the text tower's input dtype from this layer's weight, which int8 would turn into a method
    float_modules = ("clip.transformer.resblocks.0.mlp.c_fc",)

    def __init__(self, clip_model, image_mean=None, image_std=None) -> None:
        super().__init__()
        from open_clip.tokenizer import SimpleTokenizer

        from imreward.config import CLIP_IMAGE_MEAN, CLIP_IMAGE_STD

        self.clip = clip_model
        self.tokenizer = SimpleTokenizer(context_length=clip_model.context_length)
        self.image_size = clip_image_size(clip_model)
        self.image_mean = tuple(image_mean or CLIP_IMAGE_MEAN)
        self.image_std = tuple(image_std or CLIP_IMAGE_STD)

    def encode_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """CLIP BPE tokens [N, 77]."""
        return {"input_ids": self.tokenizer(list(prompts))}

    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(pixel_values)

    def text_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_text(input_ids)


def place(scorer: RewardScorer, device: str | torch.device | None, dtype: torch.dtype | str | None,
          backbone: torch.nn.Module | None = None) -> RewardScorer:
    """Move a scorer to ``device`` (default CUDA when available) and cast ``backbone`` (default: the
    whole scorer) to ``dtype``; eval mode. Scores are always returned in float32."""
    scorer.to(resolve_device(device))
    dtype = torch_dtype(dtype, device)
    if dtype is not None:
        target = backbone or scorer
        target.to(dtype)
        for module in target.modules():  # open_clip's LayerNormFp32 (OpenAI CLIP) needs float32 weights
            if type(module).__name__ == "LayerNormFp32":
                module.float()
    return scorer.eval()


# ---- open_clip models from a config and a state dict -----------------------------------------

def open_clip_config(architecture: str | dict[str, Any]) -> dict[str, Any]:
    """An open_clip model config: a registered name (e.g. ``"ViT-H-14"``) or the config itself."""
    import open_clip

    if isinstance(architecture, dict):
        return architecture
    config = open_clip.get_model_config(architecture)
    if config is None:
        raise ValueError(f"open_clip has no model config named {architecture!r}")
    return config


def build_open_clip(architecture: str | dict[str, Any], state_dict: dict[str, torch.Tensor], source: str):
    """An open_clip ``CLIP`` (float32, eval) holding exactly ``state_dict``, checked strictly."""
    from open_clip.model import CLIP

    config = open_clip_config(architecture)
    with torch.device("meta"):  # every weight comes from the state dict
        model = CLIP(**config)
    load_weights(model, state_dict, source)
    context = model.positional_embedding.shape[0]
    # The causal text mask is a buffer open_clip builds, not a weight: the same -inf upper triangle.
    model.attn_mask = torch.full((context, context), float("-inf")).triu_(1)
    return model.eval()


# ---- OpenAI's CLIP file format ---------------------------------------------------------------

def read_openai_clip_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of an OpenAI CLIP file, TorchScript archive or ``torch.save``d state dict."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated, the file format is not
            # A TorchScript archive holds only tensors and TorchScript code, no arbitrary pickled objects.
            return dict(torch.jit.load(os.fspath(path), map_location="cpu").state_dict())
    except RuntimeError:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or "visual.proj" not in state:
        raise CheckpointError(f"{path} is not an OpenAI CLIP ViT checkpoint (no 'visual.proj' tensor)")
    return state


def load_openai_clip(path: str | os.PathLike):
    """An ``open_clip`` CLIP in float32 and eval mode; the architecture is read from the tensor shapes."""
    from open_clip.model import build_model_from_openai_state_dict

    state_dict = read_openai_clip_state_dict(path)
    try:
        model = build_model_from_openai_state_dict(state_dict)
    except (KeyError, RuntimeError) as error:
        raise CheckpointError(f"{path} does not match OpenAI's CLIP layout: {error}") from error
    return model.float().eval()


def clip_image_size(clip_model) -> int:
    size = clip_model.visual.image_size
    return size[0] if isinstance(size, (tuple, list)) else int(size)


def clip_image_features(clip_model, pixel_values: torch.Tensor) -> torch.Tensor:
    """L2-normalised image embeddings [B, embed_dim] (float32) for normalised pixels [B, 3, S, S]."""
    return F.normalize(clip_model.encode_image(pixel_values).float(), dim=-1)
