"""Per-prompt normalisation of rewards, for combining several rewards in RL.

Rewards live on different scales (ImageReward is roughly N(0, 1) over its training set, CLIP
scores sit around 20-30), so a weighted sum of raw scores is dominated by the widest one. Within
the images of one prompt, ``prompt_zscore`` maps each reward to (score - group mean) / group std,
after which weights mean what they say; it is the group-relative advantage of GRPO-style training.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

PROMPT_ZSCORE = "prompt-zscore"
NORMALIZATIONS = ("none", PROMPT_ZSCORE)
ZERO_STD = 1e-6  # a group whose scores spread less than this (std) is treated as all equal


def prompt_groups(prompts: Sequence[str]) -> torch.Tensor:
    """Group index [B] (int64) of each item: items with the same prompt share one, in first-seen order."""
    index: dict[str, int] = {}
    return torch.tensor([index.setdefault(prompt, len(index)) for prompt in prompts], dtype=torch.long)


def prompt_zscore(scores: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
    """Z-score of each score within the images of its prompt; differentiable.

    Args:
        scores: [B] rewards (any float dtype, any device).
        prompts: B prompts; equal strings form a group.
    Returns:
        [B] in the dtype of ``scores``: (score - mean) / std with the group's mean and population
        standard deviation (divided by the group size). A group of one image, or one whose scores
        are all equal (std below ``ZERO_STD``), gets 0 and passes no gradient. The statistics are
        computed in float64 (float32 on Apple MPS), so equal scores give exactly 0.

    Gradients: the group's mean and std are treated as constants, so d z_i / d score_i = 1 / std
    and each image is pushed up on its own, on a scale comparable across rewards. (Through the
    statistics, a group's z-scores always sum to 0 and their mean would have no gradient at all.)
    """
    if scores.ndim != 1 or len(prompts) != scores.shape[0]:
        raise ValueError(f"need scores of shape [B] and B prompts, got {tuple(scores.shape)} and {len(prompts)}")
    stats_dtype = torch.float32 if scores.device.type == "mps" else torch.float64
    values = scores.to(stats_dtype)
    constant = values.detach()
    groups = prompt_groups(prompts).to(scores.device)
    count = torch.zeros(int(groups.max()) + 1 if len(prompts) else 0, dtype=stats_dtype, device=scores.device)
    count = count.index_add(0, groups, torch.ones_like(constant))
    mean = (torch.zeros_like(count).index_add(0, groups, constant) / count)[groups]
    variance = torch.zeros_like(count).index_add(0, groups, (constant - mean).square()) / count
    std = variance.sqrt()[groups]
    safe_std = torch.where(std > ZERO_STD, std, torch.ones_like(std))
    return torch.where(std > ZERO_STD, (values - mean) / safe_std, torch.zeros_like(values)).to(scores.dtype)


def check_normalization(normalization: str) -> str:
    """``normalization`` if it is one of ``NORMALIZATIONS``; else ValueError naming them."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown reward normalization {normalization!r}; choose one of {', '.join(NORMALIZATIONS)}")
    return normalization


def normalize_scores(scores: torch.Tensor, prompts: Sequence[str], normalization: str) -> torch.Tensor:
    """``scores`` normalised as ``normalization`` (one of ``NORMALIZATIONS``) says."""
    if check_normalization(normalization) == PROMPT_ZSCORE:
        return prompt_zscore(scores, prompts)
    return scores
