"""``imreward refl`` end to end on a saved tiny pipeline, with resume."""

from __future__ import annotations

import json

import pytest
from refl.refl_helpers import RESOLUTION

from imreward.cli import build_parser, main
from imreward.refl import build_random_pipeline


def test_refl_is_registered_in_the_cli():
    arguments = build_parser().parse_args(["refl", "--prompts", "p.txt", "--output-dir", "out", "--lora-rank", "8"])
    assert arguments.command == "refl" and arguments.lora_rank == 8
    assert arguments.refl_step_range is None and arguments.reward_weight == 1e-3 and arguments.method == "refl"
    from imreward.refl import ReFLConfig

    assert ReFLConfig(output_dir="out").step_window == (30, 39)  # the paper's window at the default T=40


def test_refl_command_trains_resumes_and_exports(tmp_path, capsys):
    build_random_pipeline(image_size=RESOLUTION, seed=0).save_pretrained(tmp_path / "pipeline")
    (tmp_path / "prompts.txt").write_text("a cat\na dog\na red house\nheld out prompt\n")
    common = ["refl", "--pipeline", str(tmp_path / "pipeline"), "--prompts", str(tmp_path / "prompts.txt"),
              "--output-dir", str(tmp_path / "run"), "--reward", "brightness", "--resolution", str(RESOLUTION),
              "--num-inference-steps", "3", "--refl-step-range", "1", "2", "--validation-count", "1",
              "--validation-every", "1", "--checkpoint-every", "1", "--learning-rate", "1e-3"]
    assert main(common + ["--max-steps", "1"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 1
    assert main(common + ["--max-steps", "2", "--resume", "latest"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 2 and summary["last_step"]["step"] == 2
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "validation.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2]  # the resumed run does not validate step 1 again
    assert (tmp_path / "run" / "final" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert sorted(path.name for path in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_000001",
                                                                                          "step_000002"]


def test_refl_command_needs_exactly_one_pipeline_source(tmp_path):
    (tmp_path / "prompts.txt").write_text("a\nb\n")
    with pytest.raises(SystemExit, match="exactly one"):
        main(["refl", "--prompts", str(tmp_path / "prompts.txt"), "--output-dir", str(tmp_path), "--reward",
              "brightness", "--validation-count", "1"])


def test_prompt_normalisation_needs_several_images_per_prompt(tmp_path):
    (tmp_path / "prompts.txt").write_text("a\nb\n")
    common = ["refl", "--prompts", str(tmp_path / "prompts.txt"), "--output-dir", str(tmp_path), "--reward",
              "brightness", "--validation-count", "1", "--random-pipeline", "tiny"]
    with pytest.raises(SystemExit, match="--images-per-prompt 2 or more"):
        main([*common, "--reward-normalization", "prompt-zscore"])
    with pytest.raises(SystemExit, match="unknown reward normalization 'rank'"):
        main([*common, "--reward-normalization", "rank", "--images-per-prompt", "2"])


def test_refl_command_takes_a_module_function_reward(tmp_path, monkeypatch, capsys):
    (tmp_path / "cli_rewards.py").write_text(
        "from imreward.testing import tiny_model\n\n"
        "def my_reward(device=None):\n"
        "    return tiny_model(seed=2).to(device or 'cpu')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "prompts.txt").write_text("a cat\na dog\n")
    assert main(["refl", "--random-pipeline", "tiny", "--prompts", str(tmp_path / "prompts.txt"), "--output-dir",
                 str(tmp_path / "run"), "--reward", "cli_rewards:my_reward:0.5", "--reward", "brightness",
                 "--resolution", str(RESOLUTION), "--num-inference-steps", "3", "--refl-step-range", "1", "2",
                 "--validation-count", "0", "--max-steps", "1", "--threads", "1"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 1 and "reward" in summary["last_step"]
    monkeypatch.delitem(__import__("sys").modules, "cli_rewards")


def test_refl_command_lists_the_scorers_for_an_unknown_reward(tmp_path, capsys):
    (tmp_path / "prompts.txt").write_text("a cat\na dog\n")
    assert main(["refl", "--random-pipeline", "tiny", "--prompts", str(tmp_path / "prompts.txt"), "--output-dir",
                 str(tmp_path / "run"), "--reward", "mymod_that_is_missing:my_reward", "--resolution",
                 str(RESOLUTION), "--validation-count", "0"]) == 2
    error = capsys.readouterr().err
    assert "could not be imported" in error and "PYTHONPATH" in error and "ImageReward-v1.0, CLIP" in error
