"""Starting points: a BLIP model_large.pth-layout checkpoint, an ImageReward checkpoint, or scratch."""

import pytest
import torch

import imreward
from imreward.hub import CheckpointError
from imreward.testing import tiny_config, tiny_model
from imreward.train.model_init import build_model


def _blip_checkpoint(model, path, extra=True):
    """BLIP_Pretrain's layout: backbone keys without the ``blip.`` prefix, plus pretraining-only keys."""
    state = {key[len("blip."):]: value for key, value in model.state_dict().items() if key.startswith("blip.")}
    if extra:
        state.update({
            "visual_encoder_m.cls_token": torch.zeros(1), "text_encoder_m.embeddings.word_embeddings.weight":
            torch.zeros(2, 2), "image_queue": torch.zeros(4, 3), "text_queue": torch.zeros(4, 3),
            "queue_ptr": torch.zeros(1, dtype=torch.long), "temp": torch.tensor(0.07),
            "itm_head.weight": torch.zeros(2, 32), "text_decoder.cls.predictions.bias": torch.zeros(5),
            "text_encoder.embeddings.position_ids": torch.arange(64).unsqueeze(0)})
    torch.save({"model": state}, path)


def test_blip_checkpoint_initialises_the_backbone_and_a_fresh_head(tmp_path):
    source = tiny_model(seed=4)
    _blip_checkpoint(source, tmp_path / "model_large.pth")
    tiny_config().save(tmp_path / "config.json")
    torch.manual_seed(0)
    model = build_model(tmp_path / "model_large.pth", tmp_path / "config.json")
    loaded, original = model.state_dict(), source.state_dict()
    for key, value in original.items():
        if key.startswith("blip."):
            assert torch.equal(loaded[key], value), key
    head = model.mlp.layers[0]
    assert not torch.equal(head.weight, source.mlp.layers[0].weight)
    assert head.weight.std().item() == pytest.approx(1 / (head.in_features + 1), rel=0.3)
    assert torch.count_nonzero(head.bias) == 0


def test_blip_position_embeddings_are_resampled_to_another_image_size(tmp_path):
    _blip_checkpoint(tiny_model(seed=4), tmp_path / "model_large.pth", extra=False)
    tiny_config(image_size=48).save(tmp_path / "config.json")
    model = build_model(tmp_path / "model_large.pth", tmp_path / "config.json")
    assert model.blip.visual_encoder.pos_embed.shape == (1, 1 + 6 * 6, 32)


def test_unknown_blip_keys_are_refused(tmp_path):
    source = tiny_model()
    _blip_checkpoint(source, tmp_path / "model_large.pth")
    state = torch.load(tmp_path / "model_large.pth", weights_only=True)
    state["model"]["mystery.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    tiny_config().save(tmp_path / "config.json")
    with pytest.raises(CheckpointError, match="mystery.weight"):
        build_model(tmp_path / "bad.pth", tmp_path / "config.json")


def test_imagereward_checkpoint_and_scratch(tmp_path):
    source = tiny_model(seed=2)
    source.save_pretrained(tmp_path / "ir")
    model = build_model(tmp_path / "ir", None)
    assert model.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), source.state_dict().values()))
    tiny_config().save(tmp_path / "config.json")
    with pytest.raises(ValueError, match="brings its own architecture"):
        build_model(tmp_path / "ir", tmp_path / "config.json")
    torch.manual_seed(1)
    first = build_model(None, tmp_path / "config.json")
    torch.manual_seed(1)
    second = build_model(None, tmp_path / "config.json")
    assert isinstance(first, imreward.ImageReward) and first.config == tiny_config()
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
