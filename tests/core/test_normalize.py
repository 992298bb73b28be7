"""Per-prompt z-scores: values against a hand computation, groups of one, equal scores, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from imreward.normalize import normalize_scores, prompt_groups, prompt_zscore


def test_prompt_groups_follow_first_appearance():
    assert prompt_groups(["b", "a", "b", "c", "a"]).tolist() == [0, 1, 0, 2, 1]


def test_zscore_values_equal_a_hand_computation():
    # prompt "a": 1, 2, 6 -> mean 3, population std sqrt((4 + 1 + 9) / 3); prompt "b": 10, 14 -> mean 12, std 2
    scores = torch.tensor([1.0, 10.0, 2.0, 14.0, 6.0])
    prompts = ["a", "b", "a", "b", "a"]
    std_a = math.sqrt(14 / 3)
    expected = [-2 / std_a, -1.0, -1 / std_a, 1.0, 3 / std_a]
    assert prompt_zscore(scores, prompts).tolist() == pytest.approx(expected, abs=1e-6)


def test_groups_of_one_and_equal_scores_give_exact_zeros_and_finite_gradients():
    scores = torch.tensor([0.1, 0.1, 0.1, 7.3, 30.7, 30.7], requires_grad=True)
    prompts = ["same", "same", "same", "alone", "clip-like", "clip-like"]
    normalized = prompt_zscore(scores, prompts)
    assert normalized.tolist() == [0.0] * 6
    normalized.sum().backward()
    assert torch.isfinite(scores.grad).all() and scores.grad.abs().sum() == 0


def test_gradient_of_each_zscore_is_one_over_its_group_std():
    scores = torch.tensor([0.3, -1.2, 2.5, 0.7, 0.9, 4.0], dtype=torch.float64, requires_grad=True)
    prompts = ["x", "x", "x", "y", "y", "z"]
    weights = torch.tensor([1.0, -2.0, 0.5, 3.0, 1.0, 1.0], dtype=torch.float64)
    (prompt_zscore(scores, prompts) * weights).sum().backward()
    std_x = torch.tensor([0.3, -1.2, 2.5], dtype=torch.float64).std(unbiased=False).item()
    expected = [1.0 / std_x, -2.0 / std_x, 0.5 / std_x, 3.0 / 0.1, 1.0 / 0.1, 0.0]  # std of "y" is 0.1
    assert scores.grad.tolist() == pytest.approx(expected, rel=1e-9)


def test_dtype_is_kept_and_bad_input_is_refused():
    assert prompt_zscore(torch.tensor([1.0, 2.0], dtype=torch.bfloat16), ["p", "p"]).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="B prompts"):
        prompt_zscore(torch.tensor([1.0, 2.0]), ["p"])
    with pytest.raises(ValueError, match="prompt-zscore"):
        normalize_scores(torch.tensor([1.0]), ["p"], "minmax")
    assert normalize_scores(torch.tensor([5.0]), ["p"], "none").tolist() == [5.0]
