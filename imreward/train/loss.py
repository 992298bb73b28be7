"""The pairwise ranking loss of ImageReward, on rewards computed once per image."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class PairLoss:
    total: torch.Tensor  # sum of -log sigmoid(r_better - r_worse) over pairs (differentiable, scalar)
    correct: int  # pairs with r_better > r_worse
    count: int


def pairwise_loss(rewards: torch.Tensor, better: torch.Tensor, worse: torch.Tensor) -> PairLoss:
    """Bradley-Terry loss summed over pairs.

    Args:
        rewards: [N] one reward per image.
        better, worse: [P] indices into ``rewards`` of each pair's preferred and other image.
    """
    margins = rewards[better].float() - rewards[worse].float()
    return PairLoss(-F.logsigmoid(margins).sum(), int((margins > 0).sum()), int(better.numel()))


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor: linear from 0 to 1 over the warmup, then cosine down to 0 at ``total_steps``.

    A module-level function (not transformers' equivalent, whose import takes seconds) so LambdaLR's
    state dict stays picklable.
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
