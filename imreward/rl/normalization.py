"""Per-reward normalisation for RL: none, per-prompt z-score, or a running mean/std across calls.

Rewards live on different scales (HPSv3 is unbounded, CLIP-family scores sit near 0.2-0.3,
ImageReward near N(0, 1)), so each reward is put on one scale before the weighted sum:

- ``"none"``: raw scores;
- ``"prompt-zscore"``: z-score within the images of one prompt in the same call
  (``imreward.normalize.prompt_zscore``, the GRPO group-relative form);
- ``"running"``: (score - mean) / std with the mean and std of every score this reward has
  returned so far, this call's included (Welford's algorithm, float64), so a reward's scale is
  learned online and is the same for every group of a call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from imreward.normalize import PROMPT_ZSCORE, ZERO_STD, prompt_zscore

RUNNING = "running"
RL_NORMALIZATIONS = ("none", PROMPT_ZSCORE, RUNNING)


def check_rl_normalization(kind: str) -> str:
    """``kind`` if it is one of ``RL_NORMALIZATIONS``; else ValueError naming them."""
    if kind not in RL_NORMALIZATIONS:
        raise ValueError(f"unknown reward normalization {kind!r}; choose one of {', '.join(RL_NORMALIZATIONS)}")
    return kind


class RunningStats:
    """Count, mean and variance of every value seen (Welford / Chan's parallel update, float64)."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0:
            return
        count = self.count + values.size
        batch_mean = float(values.mean())
        delta = batch_mean - self.mean
        self.m2 += float(((values - batch_mean) ** 2).sum()) + delta * delta * self.count * values.size / count
        self.mean += delta * values.size / count
        self.count = count

    @property
    def std(self) -> float:
        """Population standard deviation (0.0 before two values)."""
        return (self.m2 / self.count) ** 0.5 if self.count else 0.0


class RewardNormalizer:
    """Normalises one reward's scores as ``kind`` says; keeps the running statistics for ``"running"``."""

    def __init__(self, kind: str = "none") -> None:
        self.kind = check_rl_normalization(kind)
        self.running = RunningStats()

    def __call__(self, scores: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        """Normalised scores [B] (float64) of raw ``scores`` [B] and their B prompts."""
        scores = np.asarray(scores, dtype=np.float64)
        if self.kind == PROMPT_ZSCORE:
            return prompt_zscore(torch.from_numpy(scores), list(prompts)).numpy()
        if self.kind == RUNNING:
            self.running.update(scores)
            std = self.running.std
            return (scores - self.running.mean) / std if std > ZERO_STD else np.zeros_like(scores)
        return scores
