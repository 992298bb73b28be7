"""CLIP score baselines: cosine similarity of CLIP image and prompt embeddings, with OpenAI's
ViT-L/14 ("CLIP", the ImageReward paper's baseline) or LAION's ViT-H/14 trained on LAION-2B
("CLIP-ViT-H-14", the backbone PickScore and HPSv2 were fine-tuned from; the HPSv2 paper's baseline).

As in the original package (image-reward 1.5, which uses OpenAI's ``clip`` package), images go
through CLIP's own preprocessing (bicubic resize of the shorter side in the image's own mode,
centre crop, then RGB and CLIP mean/std) and prompts are truncated to CLIP's 77 tokens.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from imreward.hub import hub_file, read_state_dict
from imreward.models._clip_backbone import OpenClipScore, build_open_clip, load_openai_clip, place
from imreward.models.baselines import CLIP_VIT_L14, resolve_checkpoint


LAION_CLIP_H = ("laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "open_clip_pytorch_model.bin")


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


def load_laion_clip_score(name: str = "CLIP-ViT-H-14", device: str | torch.device | None = None,
                          dtype: torch.dtype | str | None = None,
                          download_root: str | os.PathLike | None = None,
                          checkpoint: str | os.PathLike | None = None,
                          architecture: str | dict[str, Any] = "ViT-H-14") -> CLIPScore:
    """CLIP ViT-H/14 (laion2B-s32B-b79K) score, as open_clip's own model and evaluation transform give it.

    Args:
        device: defaults to CUDA when available.
        dtype: e.g. ``torch.bfloat16`` for the whole model (scores stay float32).
        download_root: cache folder for hub files (default: the Hugging Face cache).
        checkpoint: a local open_clip state dict (``.bin``/``.pt``/``.safetensors``) instead of the download.
        architecture: open_clip model config name or dict (tests pass tiny ones).
    """
    repo, filename = LAION_CLIP_H
    path = Path(checkpoint) if checkpoint is not None else hub_file(repo, filename, download_root=download_root)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return place(CLIPScore(build_open_clip(architecture, read_state_dict(path), str(path))), device, dtype)
