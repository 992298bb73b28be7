"""Pair construction, prompt-grouped collation and the loss, on hand-worked cases."""

import math

import pytest
import torch

from imreward.data import PromptCollator, PromptItem, ranked_pairs
from imreward.testing import tiny_model
from imreward.train.loss import pairwise_loss, warmup_cosine


def test_every_pair_with_different_ranks_and_no_ties():
    assert ranked_pairs([1, 2, 3]) == [(0, 1), (0, 2), (1, 2)]
    assert ranked_pairs([2, 1, 2]) == [(1, 0), (1, 2)]
    assert ranked_pairs([1, 1]) == []
    assert ranked_pairs([3, 1, 2, 1]) == [(1, 0), (2, 0), (3, 0), (1, 2), (3, 2)]


def _item(prompt, ranks, failed=()):
    return PromptItem(prompt, torch.arange(len(ranks), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 3, 2, 2),
                      tuple(ranks), list(failed))


def test_collate_encodes_each_image_once_and_indexes_pairs_into_the_batch():
    model = tiny_model()
    collate = PromptCollator(model.tokenizer, 8)
    batch = collate([_item("a red circle", [1, 2, 2]), _item("alone", [1], ["x.png: broken"]),
                     _item("two blue squares", [2, 1])])
    assert batch.pixel_values.shape == (5, 3, 2, 2)  # the prompt left without a pair is dropped
    assert batch.pixel_values[:, 0, 0, 0].tolist() == [0, 1, 2, 0, 1]
    assert batch.better.tolist() == [0, 0, 4] and batch.worse.tolist() == [1, 2, 3]
    assert batch.num_prompts == 2 and batch.failed_images == ["x.png: broken"]
    first = model.tokenizer(["a red circle"], 8)["input_ids"][0]
    second = model.tokenizer(["two blue squares"], 8)["input_ids"][0]
    for row, expected in zip(batch.input_ids, [first, first, first, second, second]):
        assert torch.equal(row, expected)


def test_pairwise_loss_matches_hand_computation():
    rewards = torch.tensor([2.0, 0.0, 1.0], requires_grad=True)
    result = pairwise_loss(rewards, torch.tensor([0, 2]), torch.tensor([1, 0]))
    expected = math.log1p(math.exp(-2.0)) + math.log1p(math.exp(1.0))  # -log sigmoid(2) - log sigmoid(-1)
    assert result.total.item() == pytest.approx(expected, rel=1e-6)
    assert (result.correct, result.count) == (1, 2)
    result.total.backward()
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert rewards.grad.tolist() == pytest.approx([-(1 - sig(2.0)) + (1 - sig(-1.0)), 1 - sig(2.0), -(1 - sig(-1.0))], rel=1e-5)


def test_warmup_then_cosine_to_zero():
    assert warmup_cosine(0, 4, 14) == pytest.approx(0.2)
    assert warmup_cosine(3, 4, 14) == pytest.approx(0.8)
    assert warmup_cosine(4, 4, 14) == pytest.approx(1.0)
    assert warmup_cosine(9, 4, 14) == pytest.approx(0.5)
    assert warmup_cosine(14, 4, 14) == pytest.approx(0.0, abs=1e-12)
