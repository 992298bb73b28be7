"""Rewards for ReFL: any differentiable scorer, frozen, alone or as a weighted sum.

A reward is anything with ``score_tensor(pixels [B, 3, H, W] in [0, 1], prompts) -> Tensor[B]``
(``imreward.Scorer``); gradients flow to the pixels, never into the scorer's parameters. The
scorer itself is left as its owner made it (``requires_grad``, train/eval mode): ``FrozenReward``
runs it on detached views of its parameters instead of switching their gradients off.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import torch
from torch import nn

from imreward.normalize import check_normalization, normalize_scores
from imreward.scoring import RewardScorer

BRIGHTNESS = "brightness"
logger = logging.getLogger("imreward.refl")


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and ``requires_grad=False`` on every parameter, in place; returns the module.

    For the pipeline's own frozen components; a reward is wrapped in ``FrozenReward`` instead.
    """
    module.eval()
    module.requires_grad_(False)
    return module


class FrozenReward(nn.Module):
    """``scorer.score_tensor`` with gradients to the pixels only, leaving ``scorer`` untouched.

    Each call runs the scorer with detached views of its parameters (``torch.func.functional_call``,
    no copy), so no gradient reaches them whatever their ``requires_grad``. ``train()``/``eval()`` on
    the wrapper do not change the scorer's mode; a scorer in training mode (dropout on) is warned about.
    """

    def __init__(self, scorer: nn.Module) -> None:
        super().__init__()
        if not hasattr(scorer, "score_tensor"):
            raise TypeError(f"{type(scorer).__name__} has no differentiable score_tensor(pixels, prompts)")
        self.scorer = scorer
        if scorer.training:
            logger.warning("the reward scorer %s is in training mode (dropout active); call .eval() on it "
                           "for deterministic rewards", type(scorer).__name__)

    def train(self, mode: bool = True) -> FrozenReward:
        self.training = mode  # the scorer's own mode stays as its owner set it
        return self

    def forward(self, pixels: torch.Tensor, prompts: str | Sequence[str]) -> torch.Tensor:
        return self.scorer.score_tensor(pixels, prompts)

    def score_tensor(self, pixels: torch.Tensor, prompts: str | Sequence[str]) -> torch.Tensor:
        """The scorer's rewards [B] for pixels [B, 3, H, W] in [0, 1]."""
        detached = {name: parameter.detach() for name, parameter in self.named_parameters()}
        return torch.func.functional_call(self, detached, (pixels, prompts))


def frozen_monitor(scorer, device: torch.device):
    """A monitor on ``device``: a differentiable scorer as ``frozen_reward``, any other scorer as it is."""
    if hasattr(scorer, "score_tensor"):
        return frozen_reward(scorer).to(device)
    if not hasattr(scorer, "score_batch"):
        raise TypeError(f"{type(scorer).__name__} is no scorer: it has neither score_tensor nor score_batch")
    return scorer.to(device) if isinstance(scorer, nn.Module) else scorer


@torch.no_grad()
def monitor_scores(scorer, pixels: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
    """Scores [B] (float32, CPU) of pixels [B, 3, H, W] in [0, 1], without gradients: the scorer's
    ``score_tensor`` when it has one, else its ``score_batch`` on the images as 8-bit PIL images."""
    if hasattr(scorer, "score_tensor"):
        return scorer.score_tensor(pixels, list(prompts)).float().cpu()
    from torchvision.transforms.functional import to_pil_image

    images = [to_pil_image(image.float().clamp(0, 1).cpu()) for image in pixels]
    scores = scorer.score_batch(list(prompts), images)
    if any(score is None for score in scores):
        raise ValueError(f"the monitor {type(scorer).__name__} returned no score for some validation images")
    return torch.tensor(scores, dtype=torch.float32)


def frozen_reward(scorer: nn.Module) -> nn.Module:
    """``scorer`` itself when it already keeps gradients from its parameters, else a ``FrozenReward``."""
    return scorer if isinstance(scorer, (FrozenReward, WeightedReward)) else FrozenReward(scorer)


class WeightedReward(nn.Module):
    """``sum_i weight_i * normalize(scorer_i.score_tensor(pixels, prompts))``, each scorer a ``FrozenReward``.

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
        self.scorers = nn.ModuleList(frozen_reward(scorer) for scorer in scorers)
        self.weights = [float(weight) for weight in weights]
        self.normalization = check_normalization(normalization)

    def train(self, mode: bool = True) -> WeightedReward:
        self.training = mode  # the scorers' own modes stay as their owners set them
        return self

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
                download_root: str | None = None, dtype: str | torch.dtype | None = None) -> nn.Module:
    """Build the frozen reward from specs like ``["ImageReward-v1.0", "brightness:0.5", "mymod:my_reward:2"]``.

    Each spec is ``NAME`` or ``NAME:WEIGHT``; NAME is ``brightness`` (``RegionBrightness``) or
    anything ``imreward.load_scorer`` reads: a registered scorer, a checkpoint path, a
    ``module:function`` factory (``factory(device=..., download_root=...)`` returning a scorer with
    ``score_tensor``) or a hub repo. Returns a ``FrozenReward``, or a ``WeightedReward`` for several
    specs or a weight other than 1; the scorers themselves are not modified.
    """
    from imreward.hub import load_scorer

    scorers, weights = [], []
    for spec in specs:
        name, weight = parse_reward_spec(spec)
        if name == BRIGHTNESS:
            scorer = RegionBrightness().to(device or "cpu")
        else:
            scorer = load_scorer(name, device=device, dtype=dtype, download_root=download_root)
        if not hasattr(scorer, "score_tensor"):
            raise TypeError(f"scorer {name!r} has no differentiable score_tensor")
        scorers.append(scorer)
        weights.append(weight)
    if len(scorers) == 1 and weights[0] == 1.0:
        return FrozenReward(scorers[0])
    return WeightedReward(scorers, weights)
