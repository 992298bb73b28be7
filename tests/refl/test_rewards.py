"""Reward wrappers: region brightness (hand-worked values), weighted sums, freezing, specs."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from imreward.errors import UnknownScorerError
from imreward.refl.rewards import (FrozenReward, RegionBrightness, WeightedReward, load_reward, parse_reward_spec,
                                   with_normalization)
from imreward.testing import tiny_model


def test_region_brightness_measures_only_its_box():
    pixels = torch.zeros(3, 3, 8, 8)
    pixels[1, :, 2:6, 2:6] = 1.0  # the centre box (top 1/4, left 1/4, half height, half width) is white
    pixels[2, :, :4, :] = 1.0  # top half white: half of the centre box
    scorer = RegionBrightness(box=(0.25, 0.25, 0.5, 0.5), image_size=8)
    assert scorer.score_tensor(pixels, "any").tolist() == pytest.approx([0.0, 1.0, 0.5])
    assert scorer.score_tensor(pixels[:1] + 0.3, "any").item() == pytest.approx(0.3)


def test_region_brightness_rejects_boxes_outside_the_image():
    with pytest.raises(ValueError, match="unit square"):
        RegionBrightness(box=(0.5, 0.0, 0.6, 0.5))


def test_weighted_reward_sums_weighted_scores_and_passes_gradients_to_pixels_only():
    brightness, model = RegionBrightness(image_size=32), tiny_model()
    reward = WeightedReward([brightness, model], [0.5, 2.0])
    pixels = torch.rand(2, 3, 32, 32, requires_grad=True)
    prompts = ["a cat", "a dog"]
    scores = reward.score_tensor(pixels, prompts)
    expected = 0.5 * brightness.score_tensor(pixels, prompts) + 2.0 * model.score_tensor(pixels, prompts)
    torch.testing.assert_close(scores, expected)
    scores.sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0
    # the caller's scorer is left as it was: still trainable, no gradient accumulated, mode unchanged
    assert all(parameter.grad is None and parameter.requires_grad for parameter in model.parameters())
    assert not model.training
    reward.train()
    assert not model.training


def test_weighted_reward_needs_one_weight_per_scorer():
    with pytest.raises(ValueError, match="one weight per scorer"):
        WeightedReward([RegionBrightness()], [1.0, 2.0])


@pytest.mark.parametrize("spec, expected", [
    ("ImageReward-v1.0", ("ImageReward-v1.0", 1.0)),
    ("brightness:0.25", ("brightness", 0.25)),
    ("C:/models/reward", ("C:/models/reward", 1.0)),
    ("/tmp/run:3/model:-2", ("/tmp/run:3/model", -2.0)),
])
def test_reward_specs_split_name_and_weight(spec, expected):
    assert parse_reward_spec(spec) == expected


def test_load_reward_builds_a_weighted_sum_from_names_and_paths(tmp_path):
    tiny_model().save_pretrained(tmp_path / "reward")
    single = load_reward(["brightness"])
    assert isinstance(single, FrozenReward) and isinstance(single.scorer, RegionBrightness)
    combined = load_reward(["brightness:3", str(tmp_path / "reward")], device="cpu")
    assert isinstance(combined, WeightedReward) and combined.weights == [3.0, 1.0]
    pixels = torch.rand(1, 3, 32, 32)
    expected = 3 * single.score_tensor(pixels, "x") + tiny_model().score_tensor(pixels, "x")
    torch.testing.assert_close(combined.score_tensor(pixels, "x"), expected, rtol=1e-5, atol=1e-5)


def test_prompt_zscore_normalises_each_reward_per_prompt_before_weighting():
    brightness, model = RegionBrightness(image_size=32), tiny_model()
    reward = WeightedReward([brightness, model], [0.5, 2.0], normalization="prompt-zscore")
    pixels = torch.rand(5, 3, 32, 32, requires_grad=True)
    prompts = ["a cat", "a cat", "a dog", "a dog", "a cow"]

    def hand_zscore(values: torch.Tensor) -> torch.Tensor:
        result = torch.zeros_like(values)
        for group in ([0, 1], [2, 3]):  # "a cow" has one image: 0
            chosen = values[group]
            result[group] = (chosen - chosen.mean()) / chosen.std(unbiased=False)
        return result

    expected = (0.5 * hand_zscore(brightness.score_tensor(pixels, prompts))
                + 2.0 * hand_zscore(model.score_tensor(pixels, prompts)))
    scores = reward.score_tensor(pixels, prompts)
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-4)
    assert scores[4].item() == 0.0
    scores.sum().backward()
    assert torch.isfinite(pixels.grad).all() and all(pixels.grad[i].abs().sum() > 0 for i in range(4))
    assert pixels.grad[4].abs().sum() == 0  # a prompt with one image passes no gradient


def test_with_normalization_wraps_a_single_scorer_and_turns_off_again():
    brightness = RegionBrightness(image_size=32)
    normalised = with_normalization(brightness, "prompt-zscore")
    pixels = torch.rand(2, 3, 32, 32)
    assert normalised.score_tensor(pixels, "one prompt").abs().tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    raw = with_normalization(normalised, "none")
    torch.testing.assert_close(raw.score_tensor(pixels, "one prompt"), brightness.score_tensor(pixels, "one prompt"))
    assert with_normalization(brightness, "none") is brightness
    with pytest.raises(ValueError, match="unknown reward normalization"):
        WeightedReward([brightness], [1.0], normalization="rank")


USER_MODULE = textwrap.dedent('''
    from imreward.testing import tiny_model

    shared = tiny_model(seed=5)  # a module-level model the user also trains elsewhere

    def my_reward(device=None, download_root=None):
        return shared.to(device or "cpu")
''')


@pytest.fixture
def user_rewards(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_rewards

    yield my_rewards
    monkeypatch.delitem(sys.modules, "my_rewards")


def test_load_reward_accepts_module_function_factories_with_weights(user_rewards):
    shared = user_rewards.shared
    pixels = torch.rand(2, 3, 32, 32, requires_grad=True)
    expected = 0.5 * shared.score_tensor(pixels, "a cat").detach()
    reward = load_reward(["my_rewards:my_reward:0.5"], device="cpu")
    assert isinstance(reward, WeightedReward) and reward.weights == [0.5]
    scores = reward.score_tensor(pixels, "a cat")
    torch.testing.assert_close(scores.detach(), expected)
    scores.sum().backward()
    assert pixels.grad.abs().sum() > 0
    assert all(parameter.requires_grad and parameter.grad is None for parameter in shared.parameters())
    alone = load_reward(["my_rewards:my_reward"])
    assert isinstance(alone, FrozenReward) and alone.scorer is shared


def test_load_reward_names_the_scorers_when_a_spec_is_unknown():
    with pytest.raises(UnknownScorerError, match="not a registered scorer \\(ImageReward-v1.0, CLIP"):
        load_reward(["no-such-reward:2"])
