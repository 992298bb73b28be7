"""LoRA training: adapters on the backbone's projections, saved merged (read by imreward.load) and as
a peft adapter folder; both score like the trained model."""

import pytest
import torch
from train.conftest import tiny_run

import imreward
from imreward.testing import tiny_model
from imreward.train import train
from imreward.train.lora import DEFAULT_LORA_TARGETS, add_lora, load_adapter, merged_copy

PROMPTS = ["a red circle", "two blue squares"]


def _scores(model, images) -> torch.Tensor:
    return torch.tensor([model.score(prompt, images) for prompt in PROMPTS])


def _images(count: int = 3):
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(3, 32, 32, generator=generator) for _ in range(count)]


def test_lora_targets_the_attention_and_mlp_projections_and_merges_exactly():
    model = tiny_model(seed=4, image_size=32)
    summary = add_lora(model, rank=2)
    adapted = {name.removeprefix("blip.").rsplit(".lora_A", 1)[0] for name, _ in model.named_parameters()
               if ".lora_A." in name}
    assert adapted and all(name.endswith(DEFAULT_LORA_TARGETS) for name in adapted)
    assert not any("patch_embed" in name or "_proj" in name for name in adapted)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {name for name, _ in model.named_parameters() if "lora_" in name or name.startswith("mlp.")}
    assert summary.trainable < summary.total / 4 and "LoRA" in summary.describe()
    with torch.no_grad():  # a nonzero update, as after training (lora_B starts at zero)
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.1)
    images = _images()
    merged = merged_copy(model)
    assert not any("lora_" in name for name, _ in merged.named_parameters())
    assert torch.allclose(_scores(merged, images), _scores(model.eval(), images), atol=1e-5)
    assert not torch.allclose(_scores(tiny_model(seed=4, image_size=32), images), _scores(merged, images), atol=1e-3)
    with pytest.raises(ValueError, match="lora-targets"):
        add_lora(tiny_model(seed=4, image_size=32), rank=2, targets=("no_such_layer",))


def test_a_lora_run_saves_weights_imreward_load_reads_and_an_adapter(synthetic_data, tiny_config_file, tmp_path):
    base = tmp_path / "base"
    tiny_model(seed=5, image_size=32).save_pretrained(base)
    config = tiny_run(synthetic_data, tmp_path / "run", None, init=str(base), lora_rank=4, lr=1e-2,
                      max_steps=3, test_data=synthetic_data)
    result = train(config)
    assert result.trainable_parameters < result.total_parameters / 4 and result.test is not None
    merged = imreward.load(result.best_dir, device="cpu")
    adapter = load_adapter(result.best_dir / "adapter", device="cpu")
    images = _images()
    assert torch.allclose(_scores(adapter, images), _scores(merged, images), atol=1e-5)
    # Training moved the backbone: the merged weights are not the base model's.
    assert not torch.allclose(_scores(imreward.load(base, device="cpu"), images), _scores(merged, images), atol=1e-4)
    with pytest.raises(ValueError, match="LoRA replaces freeze_ratio"):
        tiny_run(synthetic_data, tmp_path / "other", tiny_config_file, lora_rank=4, freeze_ratio=0.3)
