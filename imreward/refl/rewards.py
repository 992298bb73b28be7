"""Rewards for ReFL: any differentiable scorer, frozen, alone or as a weighted sum.

A reward is anything with ``score_tensor(pixels [B, 3, H, W] in [0, 1], prompts) -> Tensor[B]``
(``imreward.Scorer``); gradients flow to the pixels, never into the scorer's parameters.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from imreward.normalize import check_normalization, normalize_scores
from imreward.scoring import RewardScorer

BRIGHTNESS = "brightness"


def freeze(scorer: nn.Module) -> nn.Module:
    """Eval mode and ``requires_grad=False`` on every parameter; returns the scorer."""
    scorer.eval()
    scorer.requires_grad_(False)
    return scorer


class WeightedReward(nn.Module):
    """``sum_i weight_i * normalize(scorer_i.score_tensor(pixels, prompts))``, each scorer frozen.

    Args:
        scorers: differentiable scorers (``imreward.Scorer``).
        weights: one per scorer.
        normalization: ``"none"`` (raw scores) or ``"prompt-zscore"``: each scorer's scores are
            z-scored within the images of one prompt before weighting (``imreward.normalize``), so
            a batch needs several images per prompt; a prompt with one image contributes 0.
    """

    def __init__(self, scorers: Sequence[nn.Module], weights: Sequence[float], normalization: str = "none") -> None:
        super().__init__()
        if not scorers or len(scorers) != len(weights):
            raise ValueError(f"need one weight per scorer, got {len(scorers)} scorers and {len(weights)} weights")
        self.scorers = nn.ModuleList(freeze(scorer) for scorer in scorers)
        self.weights = [float(weight) for weight in weights]
        self.normalization = check_normalization(normalization)

    def score_tensor(self, pixels: torch.Tensor, prompts: str | Sequence[str]) -> torch.Tensor:
        """Weighted reward [B] (float32) for pixels [B, 3, H, W] in [0, 1]."""
        prompt_list = [prompts] * pixels.shape[0] if isinstance(prompts, str) else list(prompts)
        total = None
        for scorer, weight in zip(self.scorers, self.weights):
            scores = scorer.score_tensor(pixels.to(_device_of(scorer, pixels)), prompt_list).float()
            scores = weight * normalize_scores(scores, prompt_list, self.normalization)
            total = scores if total is None else total + scores.to(total.device)
        return total


def with_normalization(reward: nn.Module, normalization: str) -> nn.Module:
    """``reward`` (a scorer or a ``WeightedReward``) with its scores normalised as ``normalization``
    says; ``"none"`` turns a ``WeightedReward``'s normalisation off (the raw weighted sum)."""
    if isinstance(reward, WeightedReward):
        return WeightedReward(list(reward.scorers), reward.weights, normalization)
    return reward if check_normalization(normalization) == "none" else WeightedReward([reward], [1.0], normalization)


def _device_of(module: nn.Module, default: torch.Tensor) -> torch.device:
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        return tensor.device
    return default.device


class RegionBrightness(RewardScorer):
    """Mean brightness (RGB average in [0, 1]) of a rectangle of the image; the prompt is ignored.

    A reward with a known optimum (a white region scores 1.0), for checking that ReFL climbs.

    Args:
        box: (top, left, height, width) as fractions of the image side.
        image_size: side the image is resized and centre-cropped to before measuring.
    """

    image_mean = (0.0, 0.0, 0.0)
    image_std = (1.0, 1.0, 1.0)

    def __init__(self, box: tuple[float, float, float, float] = (0.25, 0.25, 0.5, 0.5), image_size: int = 32) -> None:
        super().__init__()
        top, left, height, width = box
        if not (0 <= top < 1 and 0 <= left < 1 and 0 < height <= 1 - top and 0 < width <= 1 - left):
            raise ValueError(f"box {box} must lie inside the unit square with positive size")
        self.box = box
        self.image_size = image_size
        self.register_buffer("anchor", torch.zeros(()), persistent=False)  # carries device and dtype

    @property
    def device(self) -> torch.device:
        return self.anchor.device

    @property
    def compute_dtype(self) -> torch.dtype:
        return self.anchor.dtype

    def encode_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        return {"prompt_index": torch.arange(len(prompts))}

    def forward(self, pixel_values: torch.Tensor, **text: torch.Tensor) -> torch.Tensor:
        """Mean of the box in pixels [B, 3, S, S] -> [B] float32."""
        size = pixel_values.shape[-1]
        top, left, height, width = (round(fraction * size) for fraction in self.box)
        region = pixel_values[:, :, top: top + max(height, 1), left: left + max(width, 1)]
        return region.float().mean(dim=(1, 2, 3))


def parse_reward_spec(spec: str) -> tuple[str, float]:
    """``"NAME"`` -> (NAME, 1.0); ``"NAME:WEIGHT"`` -> (NAME, WEIGHT) when WEIGHT is a number."""
    name, _, weight = spec.rpartition(":")
    if name:
        try:
            return name, float(weight)
        except ValueError:
            pass
    return spec, 1.0


def load_reward(specs: Sequence[str], device: str | torch.device | None = None,
                download_root: str | None = None) -> nn.Module:
    """Build the (frozen) reward from specs like ``["ImageReward-v1.0", "brightness:0.5"]``.

    Each name is ``brightness`` (``RegionBrightness``), a registered scorer
    (``imreward.available_scores()``) or a model path ``imreward.load`` reads.
    """
    import imreward

    scorers, weights = [], []
    for spec in specs:
        name, weight = parse_reward_spec(spec)
        if name == BRIGHTNESS:
            scorer = RegionBrightness().to(device or "cpu")
        elif name in imreward.available_scores():
            scorer = imreward.load_score(name, device=device, download_root=download_root)
        else:
            scorer = imreward.load(name, device=device, download_root=download_root)
        if not hasattr(scorer, "score_tensor"):
            raise TypeError(f"scorer {name!r} has no differentiable score_tensor")
        scorers.append(scorer)
        weights.append(weight)
    if len(scorers) == 1 and weights[0] == 1.0:
        return freeze(scorers[0])
    return WeightedReward(scorers, weights)
