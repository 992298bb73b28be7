"""What a ReFL run exports and loads: LoRA adapters at their trained scale (diffusers and peft), frozen
modules exactly as loaded under bf16 mixed precision, pipelines loaded in the run's dtypes."""

from __future__ import annotations

import json

import pytest
import torch
from refl.refl_helpers import FLOW_RESOLUTION, RESOLUTION, flow_pipeline, flow_trainer, tiny_trainer

from imreward.cli import main
from imreward.refl import build_random_pipeline, load_pipeline
from imreward.refl.validation import generate_images

FROZEN = ("vae", "text_encoder", "text_encoder_2")


def fresh_pipeline(family_name: str):
    """The untuned pipeline every trainer of this file starts from."""
    if family_name == "sd":
        return build_random_pipeline(image_size=RESOLUTION, seed=0)
    return flow_pipeline(family_name)


def samples(trainer, pipeline, model) -> torch.Tensor:
    resolution = trainer.config.resolution
    return generate_images(trainer.family, pipeline, model, trainer.sampler, ["a cat", "a red house"], resolution,
                           seed=3, guidance_scale=trainer.guidance_scale)


def snapshot(module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def assert_bit_identical(module, expected: dict[str, torch.Tensor]) -> None:
    """``module``'s weights equal ``expected`` bit for bit (LoRA adapters aside: peft's base layers
    are compared under their original names)."""
    weights = {name.replace(".base_layer", ""): value for name, value in module.state_dict().items()
               if "lora_" not in name}
    assert weights.keys() == expected.keys()
    for name, value in expected.items():
        assert weights[name].dtype == value.dtype and torch.equal(weights[name], value), name


@pytest.mark.parametrize("family_name", ["sd", "sd3", "flux"])
def test_lora_exports_load_at_the_trained_scale_in_diffusers_and_peft(tmp_path, family_name):
    from peft import PeftModel

    settings = dict(lora_rank=4, lora_alpha=16, max_steps=1, learning_rate=3e-2)
    if family_name == "sd":
        trainer = tiny_trainer(tmp_path, **settings)
    else:
        trainer = flow_trainer(tmp_path, family_name, **settings)
    trainer.train()
    folder = trainer.export()
    tuned = samples(trainer, trainer.pipeline, trainer.sampling_model)
    untuned = fresh_pipeline(family_name)
    attribute = trainer.family.model_attribute
    assert (tuned - samples(trainer, untuned, getattr(untuned, attribute))).abs().max() > 1e-3

    by_diffusers = fresh_pipeline(family_name)
    by_diffusers.load_lora_weights(str(folder))
    torch.testing.assert_close(samples(trainer, by_diffusers, getattr(by_diffusers, attribute)), tuned,
                               rtol=1e-5, atol=1e-5)
    by_peft = fresh_pipeline(family_name)
    denoiser = PeftModel.from_pretrained(getattr(by_peft, attribute), str(folder / "peft")).get_base_model()
    torch.testing.assert_close(samples(trainer, by_peft, denoiser), tuned, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_bf16_training_leaves_the_frozen_modules_and_their_export_as_loaded(tmp_path, lora_rank,
                                                                            fresh_accelerator_state):
    from diffusers import FluxPipeline

    pipeline = flow_pipeline("flux")
    loaded = {name: snapshot(getattr(pipeline, name)) for name in FROZEN}
    if lora_rank:
        loaded["transformer"] = snapshot(pipeline.transformer)  # the frozen base under the adapters
    trainer = flow_trainer(tmp_path, "flux", pipeline=pipeline, mixed_precision="bf16", lora_rank=lora_rank,
                           max_steps=1)
    trainer.train()
    folder = trainer.export()
    for name, weights in loaded.items():
        assert_bit_identical(getattr(pipeline, name), weights)
    if not lora_rank:
        exported = FluxPipeline.from_pretrained(str(folder))
        for name in FROZEN:
            assert_bit_identical(getattr(exported, name), loaded[name])


def test_load_pipeline_reads_the_weights_in_the_runs_dtypes(tmp_path):
    original = flow_pipeline("flux")
    original.save_pretrained(tmp_path / "flux")
    pipeline = load_pipeline(tmp_path / "flux", dtype=torch.bfloat16, denoiser_dtype=torch.float32)
    for name in FROZEN:
        expected = {key: value.to(torch.bfloat16) for key, value in snapshot(getattr(original, name)).items()
                    if value.is_floating_point()}
        weights = getattr(pipeline, name).state_dict()
        assert all(torch.equal(weights[key], value) for key, value in expected.items()), name
    assert pipeline.transformer.dtype == torch.float32
    assert load_pipeline(tmp_path / "flux", dtype=torch.bfloat16).transformer.dtype == torch.bfloat16


def test_refl_command_loads_in_bf16_and_reports_peak_memory(tmp_path, capsys, fresh_accelerator_state):
    flow_pipeline("flux").save_pretrained(tmp_path / "flux")
    (tmp_path / "prompts.txt").write_text("a cat\na dog\nheld out prompt\n")
    assert main(["refl", "--pipeline", str(tmp_path / "flux"), "--prompts", str(tmp_path / "prompts.txt"),
                 "--output-dir", str(tmp_path / "run"), "--reward", "brightness", "--resolution",
                 str(FLOW_RESOLUTION), "--num-inference-steps", "2", "--lora-rank", "4", "--mixed-precision", "bf16",
                 "--max-steps", "1", "--validation-count", "0", "--checkpoint-every", "0"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    loading, run = summary["memory"]["after_loading"], summary["memory"]["run"]
    assert 0 < loading["peak_host_gib"] <= run["peak_host_gib"] and run["peak_device_gib"] is None  # CPU run
    assert "best" not in summary
