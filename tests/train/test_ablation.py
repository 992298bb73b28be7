"""``imreward train-ablation``: the freezing / LoRA grid on one dataset, one table and plot."""

import json

import pytest
from cli_helpers import run_subcommand
from train.conftest import tiny_run

from imreward.testing import tiny_model
from imreward.train import train
from imreward.train.cli import register


def run_cli(argv: list[str]) -> int:
    return run_subcommand(register, argv)


def test_the_grid_trains_each_setting_with_the_same_seed_and_tabulates_it(synthetic_data, tmp_path, capsys):
    base = tmp_path / "base"
    tiny_model(seed=6, image_size=32).save_pretrained(base)
    out = tmp_path / "ablation"
    assert run_cli(["train-ablation", "--train", str(synthetic_data), "--val", str(synthetic_data), "--test",
                    str(synthetic_data), "--init", str(base), "--output", str(out), "--freeze-ratios", "0,1",
                    "--lora-ranks", "2", "--max-steps", "2", "--batch-size", "4", "--lr", "1e-3", "--seed", "3",
                    "--num-workers", "0", "--device", "cpu", "--machine", "test CPU", "-q"]) == 0
    result = json.loads((out / "ablation.json").read_text())
    rows = {row["setting"]: row for row in result["settings"]}
    assert list(rows) == ["freeze-0", "freeze-1", "lora-r2"]
    assert all(row["steps"] == 2 and 0 <= row["test_accuracy"] <= 1 for row in rows.values())
    total = rows["freeze-0"]["total_parameters"]
    assert rows["freeze-0"]["trainable_parameters"] > rows["lora-r2"]["trainable_parameters"]
    assert rows["freeze-1"]["trainable_parameters"] < rows["freeze-0"]["trainable_parameters"] <= total
    assert (out / "lora-r2" / "best" / "adapter" / "adapter_config.json").is_file()
    markdown = (out / "ablation.md").read_text()
    assert "| freeze-0 |" in markdown and "| lora-r2 |" in markdown and "test CPU" in markdown
    assert (out / "ablation.png").stat().st_size > 10_000 and "| lora-r2 |" in capsys.readouterr().out
    # A setting of the grid is exactly the run `imreward train` makes with the same options.
    alone = train(tiny_run(synthetic_data, tmp_path / "alone", None, init=str(base), freeze_ratio=0.0, max_steps=2,
                           test_data=synthetic_data, eval_batch_size=None))
    assert alone.best_val["accuracy"] == rows["freeze-0"]["val_accuracy"]
    assert alone.test["accuracy"] == rows["freeze-0"]["test_accuracy"]


def test_lora_and_freeze_ratio_exclude_each_other_on_the_command_line(synthetic_data, tmp_path):
    with pytest.raises(SystemExit, match="--lora-rank replaces --freeze-ratio"):
        run_cli(["train", "--train", str(synthetic_data), "--val", str(synthetic_data), "--output", str(tmp_path),
                 "--lora-rank", "4", "--freeze-ratio", "0.3"])
    with pytest.raises(SystemExit, match="the grid is empty"):
        run_cli(["train-ablation", "--train", str(synthetic_data), "--val", str(synthetic_data), "--output",
                 str(tmp_path / "empty"), "--freeze-ratios", "", "--lora-ranks", ""])
