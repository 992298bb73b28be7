"""CLIP score baseline: cosine similarity of OpenAI CLIP ViT-L/14 image and prompt embeddings.

As in the original package (image-reward 1.5, which uses OpenAI's ``clip`` package), images go
through CLIP's own preprocessing (bicubic resize of the shorter side in the image's own mode,
centre crop, then RGB and CLIP mean/std) and prompts are truncated to CLIP's 77 tokens.
"""

from __future__ import annotations

import os

import torch

from imreward.models._clip_backbone import OpenClipScore, load_openai_clip, place
from imreward.models.baselines import CLIP_VIT_L14, resolve_checkpoint


class CLIPScore(OpenClipScore):
    """Scores in [-1, 1]: cosine of the normalised image and text features."""


def load_clip_score(name: str = "CLIP", device: str | torch.device | None = None,
                    dtype: torch.dtype | str | None = None,
                    download_root: str | os.PathLike | None = None,
                    checkpoint: str | os.PathLike | None = None) -> CLIPScore:
    """The CLIP-score baseline in eval mode.

    Args:
        name: registry name (unused; every name loads OpenAI's ViT-L/14).
        device: defaults to CUDA when available.
        dtype: e.g. ``torch.bfloat16`` for the whole model (scores stay float32).
        download_root: cache folder for ``ViT-L-14.pt`` (default ``~/.cache/imreward``).
        checkpoint: a local OpenAI CLIP file to use instead of the published one.
    """
    path = resolve_checkpoint(CLIP_VIT_L14, checkpoint, download_root)
    return place(CLIPScore(load_openai_clip(path)), device, dtype)
