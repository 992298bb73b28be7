"""Deterministic distributed batching, and which parameters the freeze ratio leaves trainable."""

import pytest

from imreward.testing import tiny_model
from imreward.train.freezing import freeze
from imreward.train.sampler import PromptBatchSampler, epoch_permutation, evaluation_batches


def test_order_depends_on_seed_and_epoch_only():
    assert epoch_permutation(10, seed=1, epoch=0) == epoch_permutation(10, seed=1, epoch=0)
    assert epoch_permutation(10, seed=1, epoch=0) != epoch_permutation(10, seed=1, epoch=1)
    assert sorted(epoch_permutation(10, seed=1, epoch=3)) == list(range(10))


def test_processes_split_each_micro_batch_of_the_single_process_order():
    single = list(PromptBatchSampler(11, batch_size=4, grad_accum=2, seed=5))
    order = epoch_permutation(11, 5, 0)
    assert single == [order[0:2], order[2:4], order[4:6], order[6:8]]  # 2 steps; 3 leftover prompts dropped
    ranks = [list(PromptBatchSampler(11, batch_size=4, grad_accum=2, world_size=2, rank=r, seed=5)) for r in (0, 1)]
    assert [a + b for a, b in zip(*ranks)] == single


def test_resuming_mid_epoch_continues_the_same_order():
    sampler = PromptBatchSampler(20, batch_size=4, seed=2)
    sampler.set_epoch(1)
    full = list(sampler)
    sampler.set_epoch(1, start_step=3)
    assert list(sampler) == full[3:] and len(sampler) == 2


def test_small_sets_and_invalid_batch_sizes():
    assert list(PromptBatchSampler(3, batch_size=8, seed=0)) == [epoch_permutation(3, 0, 0)]
    with pytest.raises(ValueError, match="not a multiple"):
        PromptBatchSampler(20, batch_size=6, grad_accum=4)
    assert evaluation_batches(5, 2, world_size=2, rank=1) == [[1, 3]]
    assert evaluation_batches(5, 2, world_size=2, rank=0) == [[0, 2], [4]]


def _trainable(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_freeze_ratio_freezes_embeddings_first_layers_and_projections():
    model = tiny_model()  # 2 text layers, 2 image blocks
    summary = freeze(model, 0.5)
    trainable = _trainable(model)
    assert (summary.frozen_text_layers, summary.frozen_image_layers) == (1, 1)
    assert not any(name.startswith(("blip.text_encoder.embeddings", "blip.text_encoder.encoder.layer.0.",
                                    "blip.visual_encoder.blocks.0.", "blip.visual_encoder.patch_embed",
                                    "blip.vision_proj", "blip.text_proj")) for name in trainable)
    assert {"blip.visual_encoder.cls_token", "blip.visual_encoder.pos_embed"}.isdisjoint(trainable)
    assert "blip.text_encoder.encoder.layer.1.crossattention.self.query.weight" in trainable
    assert "blip.visual_encoder.blocks.1.attn.qkv.weight" in trainable and "mlp.layers.0.weight" in trainable
    assert summary.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert "training" in summary.describe()


def test_ratio_zero_trains_all_but_projections_and_bad_ratio_raises():
    model = tiny_model()
    freeze(model, 0.9)
    summary = freeze(model, 0.0)  # refreezing starts from scratch
    frozen = {name for name, _ in model.named_parameters()} - _trainable(model)
    assert frozen == {"blip.vision_proj.weight", "blip.vision_proj.bias", "blip.text_proj.weight",
                      "blip.text_proj.bias"}
    assert summary.total - summary.trainable == sum(p.numel() for n, p in model.named_parameters() if n in frozen)
    with pytest.raises(ValueError, match="freeze ratio"):
        freeze(model, 1.5)
