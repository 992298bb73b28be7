"""OpenAI CLIP for the CLIP-score and aesthetic baselines, built by open_clip from OpenAI's own
file format (``ViT-L-14.pt``: a TorchScript archive whose state dict holds the weights; a plain
state dict of the same keys is accepted too)."""

from __future__ import annotations

import os
import warnings

import torch
import torch.nn.functional as F

from imreward.hub import CheckpointError


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


def clip_text_features(clip_model, input_ids: torch.Tensor) -> torch.Tensor:
    """L2-normalised text embeddings [B, embed_dim] (float32) for CLIP token ids [B, context_length]."""
    return F.normalize(clip_model.encode_text(input_ids).float(), dim=-1)
