"""End-to-end tiny training runs on CPU: outputs, logs, gradient accumulation, the command line."""

import json

import pytest
import torch

import imreward
from imreward.cli import main as cli_main
from imreward.hub import read_state_dict
from imreward.train import TrainConfig, train
from imreward.train.checkpoint import CHECKPOINT_FILE, load_training_state
from imreward.train.metrics_log import read_metrics

from .conftest import tiny_run


def test_tiny_run_writes_loadable_best_model_logs_and_test_metrics(synthetic_data, tiny_config_file, tmp_path):
    config = tiny_run(synthetic_data, tmp_path / "run", tiny_config_file, test_data=synthetic_data, epochs=2,
                      eval_every=2, num_workers=1, tensorboard=True)
    result = train(config)
    assert result.global_step == 8  # 16 prompts / 4 per step x 2 epochs
    assert result.skipped_images == 2  # prompt 1's undecodable image, once per epoch
    records = read_metrics(tmp_path / "run")
    val = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in val] == [2, 4, 6, 8]
    best = max(val, key=lambda r: (r["accuracy"], -r["loss"]))  # --select-best accuracy, the default
    assert result.best_step == best["step"] and result.best_val["loss"] == pytest.approx(best["loss"])
    assert [r["step"] for r in records if r["split"] == "train"] == list(range(1, 9))
    # each epoch sees all 16 prompts: 48 pairs, less 2 for each of prompts 0 and 2 (an empty image skipped at
    # indexing) and 2 for prompt 1 (an undecodable image skipped when loaded)
    assert sum(r["pairs"] for r in records if r["split"] == "train" and r["epoch"] == 0) == 48 - 6
    assert result.test["pairs"] == 6 * 3
    model = imreward.load(result.best_dir, device="cpu")
    assert isinstance(model.score("a red circle", torch.rand(3, 32, 32)), float)
    best_weights = read_state_dict(result.best_dir / "model.safetensors")
    final_weights = read_state_dict(result.final_dir / "model.safetensors")
    assert (result.best_step == 8) == all(torch.equal(best_weights[k], final_weights[k]) for k in best_weights)
    assert any((tmp_path / "run" / "tensorboard").iterdir())
    assert json.loads((tmp_path / "run" / "result.json").read_text())["best_step"] == result.best_step
    with pytest.raises(FileExistsError, match="--resume"):
        train(config)


def first_step_gradients(output_dir):
    """Adam's first moment after one step is 0.1 x the gradient: read the gradients back from the checkpoint."""
    state = load_training_state(output_dir / CHECKPOINT_FILE)["optimizer"]["state"]
    return [state[index]["exp_avg"] / 0.1 for index in sorted(state)]


def test_gradient_accumulation_gives_the_gradient_of_the_whole_batch(synthetic_data, deterministic_config_file,
                                                                    tmp_path):
    # seed 1 puts prompts 2, 1, 5, 7 in the first step; prompts 1 and 2 lost an image, so the micro-batches hold
    # 1, 1, 3 and 3 pairs: a mean per micro-batch would weight pairs differently from the mean over the step
    common = dict(max_steps=1, max_grad_norm=None, seed=1)
    train(tiny_run(synthetic_data, tmp_path / "whole", deterministic_config_file, **common))
    train(tiny_run(synthetic_data, tmp_path / "split", deterministic_config_file, grad_accum=4, **common))
    whole, split = first_step_gradients(tmp_path / "whole"), first_step_gradients(tmp_path / "split")
    scale = max(float(g.abs().max()) for g in whole)
    assert len(whole) == len(split) > 10 and scale > 0
    for a, b in zip(whole, split):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3 * scale)  # float summation order


def test_command_line_trains_from_original_json_layout(synthetic_data, tiny_config_file, tmp_path, capsys):
    records, _ = imreward.data.read_imagerewarddb(synthetic_data, "validation")
    images = tmp_path / "images"
    images.mkdir()
    reader = imreward.data.ImageReader()
    entries = []
    for record in records:
        names = []
        for position, source in enumerate(record.images):
            name = f"{record.prompt_id}-{position}.png"
            (images / name).write_bytes(reader.read(source))
            names.append(name)
        entries.append({"id": record.prompt_id, "prompt": record.prompt, "generations": names,
                        "ranking": list(record.ranks)})
    (tmp_path / "data.json").write_text(json.dumps(entries))
    code = cli_main(["train", "--train", str(tmp_path / "data.json"), "--val", str(tmp_path / "data.json"),
                     "--image-root", str(images), "--output", str(tmp_path / "run"), "--model-config",
                     str(tiny_config_file), "--batch-size", "2", "--max-steps", "2", "--num-workers", "0",
                     "--device", "cpu", "--quiet", "--no-tensorboard"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 2 and summary["best_val"]["pairs"] == 6 * 3
    assert imreward.load(summary["best"], device="cpu").config.vision.image_size == 32


def test_invalid_settings_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="multiple of grad_accum"):
        TrainConfig("a", "b", tmp_path, batch_size=6, grad_accum=4)
    with pytest.raises(ValueError, match="freeze_ratio"):
        TrainConfig("a", "b", tmp_path, freeze_ratio=2.0)
    assert TrainConfig("a", "b", tmp_path, init="x.pth").effective_freeze_ratio == 0.7
    assert TrainConfig("a", "b", tmp_path).effective_freeze_ratio == 0.0
