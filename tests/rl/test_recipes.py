"""The README's "Rewards for RL" recipes, run with the inputs those loops pass (the Ray recipe is in
test_placements.py, next to its actor pool)."""

from __future__ import annotations

from concurrent import futures

import numpy as np
import pytest
import torch

from imreward.rl import load_rl_reward
from rl.rl_helpers import WEIGHTS, expected_raw


@pytest.fixture
def reward(reward_scorers):
    with load_rl_reward(WEIGHTS, models=reward_scorers, device="cpu", normalization="running") as built:
        yield built


def test_flow_grpo_recipe_replaces_multi_score(reward, reward_scorers):
    """Flow-GRPO's loop: ``executor.submit(reward_fn, images, prompts, prompt_metadata, only_strict=True)``
    with decoded latents (NCHW float, slightly outside [0, 1]), then ``torch.as_tensor`` of every key
    and per-prompt advantages of ``rewards["avg"]``."""
    reward_fn = reward  # was: reward_fn = multi_score(accelerator.device, config.reward_fn)
    executor = futures.ThreadPoolExecutor(max_workers=8)
    prompts = ["a dog", "a dog", "a tree", "a tree"]
    prompt_metadata = [{"tag": "animal"}, {"tag": "animal"}, {"tag": "plant"}, {"tag": "plant"}]
    batches = [torch.rand(4, 3, 40, 48, generator=torch.Generator().manual_seed(seed)) * 1.1 - 0.05
               for seed in range(2)]
    pending = [executor.submit(reward_fn, images, prompts, prompt_metadata, only_strict=True) for images in batches]
    for images, future in zip(batches, pending):
        rewards, reward_metadata = future.result()
        rewards = {key: torch.as_tensor(value).float() for key, value in rewards.items()}
        assert set(rewards) == {"avg", *WEIGHTS} and all(value.shape == (4,) for value in rewards.values())
        quantised = (images * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        raw = expected_raw(reward_scorers, quantised, prompts)
        assert rewards["tiny"].numpy() == pytest.approx(raw["tiny"], abs=1e-5)
        assert set(reward_metadata) == {"tiny/mean", "tiny/std", "other/mean", "other/std"}
    executor.shutdown()
    assert reward.calls == 2 and reward.normalizers["tiny"].running.count == 8  # both batches fed the statistics


class ColourPolicy(torch.nn.Module):
    """A toy generator: each image is one colour, sampled around a learnt mean (a Gaussian policy)."""

    def __init__(self) -> None:
        super().__init__()
        self.mean = torch.nn.Parameter(torch.zeros(3))

    def sample(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn(count, 3)
        logits = self.mean + 0.5 * noise
        log_probs = torch.distributions.Normal(self.mean, 0.5).log_prob(logits.detach()).sum(1)
        images = torch.sigmoid(logits)[:, :, None, None].expand(count, 3, 32, 32)
        return images, log_probs


def test_plain_pytorch_loop_recipe(reward):
    torch.manual_seed(0)
    policy = ColourPolicy()
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.1)
    prompts = [prompt for prompt in ("a red apple", "the blue sea") for _ in range(4)]  # 4 samples per prompt
    for _ in range(2):
        images, log_probs = policy.sample(len(prompts))
        advantages = torch.tensor(reward.advantages(prompts, images))  # no graph: rewards are inference-only
        loss = -(advantages * log_probs).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert np.allclose([advantages[:4].sum(), advantages[4:].sum()], 0, atol=1e-5)
        assert torch.isfinite(loss) and policy.mean.grad.abs().sum() > 0
