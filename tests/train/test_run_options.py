"""Options that shape a run: --max-steps stops without changing the schedule, --select-best, collapse warnings,
--threads, and one summary line per run."""

import json
import logging
import math

import pytest
import torch

from imreward.cli import build_parser, print_summary
from imreward.testing import tiny_model
from imreward.train import train
from imreward.train.collapse import collapse_reason
from imreward.train.metrics_log import read_metrics
from imreward.train.trainer import SELECTION_FILE

from .conftest import tiny_run


@pytest.fixture(scope="module")
def full_run(synthetic_data, deterministic_config_file, tmp_path_factory):
    """Two epochs (8 steps), validated after every step, best by accuracy (the default)."""
    config = tiny_run(synthetic_data, tmp_path_factory.mktemp("full"), deterministic_config_file, epochs=2,
                      eval_every=1, lr=3e-3, threads=1)
    return train(config), read_metrics(config.output_dir)


def test_max_steps_stops_early_with_the_learning_rates_of_the_full_schedule(full_run, synthetic_data,
                                                                            deterministic_config_file, tmp_path):
    result, records = full_run
    stopped = train(tiny_run(synthetic_data, tmp_path / "stopped", deterministic_config_file, epochs=2, eval_every=1,
                             lr=3e-3, max_steps=3))
    assert result.global_step == 8 and stopped.global_step == 3
    full_lr = [r["lr"] for r in records if r["split"] == "train"]
    stopped_lr = [r["lr"] for r in read_metrics(tmp_path / "stopped") if r["split"] == "train"]
    assert stopped_lr == full_lr[:3]
    assert len(set(full_lr)) == 8 and full_lr[2] > full_lr[-1]  # a decaying schedule, not a constant


def test_best_checkpoint_by_accuracy_records_loss_and_accuracy(full_run):
    result, records = full_run
    val = [r for r in records if r["split"] == "val"]
    best = max(val, key=lambda r: (r["accuracy"], -r["loss"]))
    assert result.best_step == best["step"] and all(r["select_best"] == "accuracy" for r in val)
    selection = json.loads((result.best_dir / SELECTION_FILE).read_text())
    assert selection["step"] == best["step"] and selection["select_best"] == "accuracy"
    assert selection["val"]["loss"] == pytest.approx(best["loss"])
    assert selection["val"]["accuracy"] == pytest.approx(best["accuracy"])
    assert not any(r["collapsed"] for r in val) and min(r["reward_std"] for r in val) > 0


def test_best_checkpoint_by_loss(full_run, synthetic_data, deterministic_config_file, tmp_path):
    _, full_records = full_run
    result = train(tiny_run(synthetic_data, tmp_path / "by-loss", deterministic_config_file, epochs=2, eval_every=1,
                            lr=3e-3, select_best="loss"))
    val = [r for r in read_metrics(tmp_path / "by-loss") if r["split"] == "val"]
    # the same training as the module's run (the selection rule does not change the steps taken)
    assert [r["loss"] for r in val] == pytest.approx([r["loss"] for r in full_records if r["split"] == "val"])
    best = min(val, key=lambda r: r["loss"])
    assert result.best_step == best["step"]
    selection = json.loads((result.best_dir / SELECTION_FILE).read_text())
    assert (selection["step"], selection["select_best"]) == (best["step"], "loss")
    assert set(selection["val"]) >= {"loss", "accuracy"}


def test_select_best_rejects_other_metrics(tmp_path):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--train", "a", "--val", "b", "--output", "c", "--select-best", "f1"])
    with pytest.raises(ValueError, match="select_best"):
        tiny_run("a", tmp_path, None, select_best="f1")


def test_a_constant_model_is_reported_as_collapsed(synthetic_data, tmp_path, caplog):
    model = tiny_model(seed=0)
    with torch.no_grad():
        model.mlp.layers[-1].weight.zero_()  # every image gets the head's bias: a collapsed reward model
    model.save_pretrained(tmp_path / "constant")
    with caplog.at_level(logging.WARNING, logger="imreward.train"):
        train(tiny_run(synthetic_data, tmp_path / "run", None, init=str(tmp_path / "constant"), lr=1e-12,
                       max_steps=1))
    val = [r for r in read_metrics(tmp_path / "run") if r["split"] == "val"]
    assert val[0]["collapsed"] and val[0]["reward_std"] < 1e-6
    assert val[0]["loss"] == pytest.approx(0.6931, abs=1e-4)
    assert any("collapsed" in record.getMessage() and "--lr" in record.getMessage() for record in caplog.records)


# Validations measured on the README's synthetic recipe (2,000 prompts, batch 16): (loss, reward std, lowest
# earlier loss). At lr 1e-3 the run learned a little, then fell back to chance; at lr 2e-4 it started slowly.
UNLEARNED_AT_LR_1E3 = [(0.69313, 0.0352, 0.6843), (0.69314, 0.00654, 0.6843)]
SLOW_START_AT_LR_2E4 = [(0.6931, 0.000581, math.inf), (0.6932, 0.00985, 0.6931), (0.6874, 0.0722, 0.6931),
                        (0.606, 0.893, 0.6874)]


@pytest.mark.parametrize("loss, std, lowest", UNLEARNED_AT_LR_1E3)
def test_a_run_back_at_chance_after_learning_is_collapsed(loss, std, lowest):
    reason = collapse_reason({"loss": loss, "reward_std": std, "reward_mean": 0.1}, lowest)
    assert reason and "back at ln 2" in reason


@pytest.mark.parametrize("loss, std, lowest", SLOW_START_AT_LR_2E4)
def test_a_slow_start_is_not_collapsed(loss, std, lowest):
    assert collapse_reason({"loss": loss, "reward_std": std, "reward_mean": 0.1}, lowest) is None


def test_threads_option_sets_torch_threads(synthetic_data, deterministic_config_file, tmp_path):
    threads = 2 if torch.get_num_threads() == 1 else 1
    train(tiny_run(synthetic_data, tmp_path / "run", deterministic_config_file, max_steps=1, threads=threads))
    assert torch.get_num_threads() == threads
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--train", "a", "--val", "b", "--output", "c", "--threads", "0"])


@pytest.mark.parametrize("rank, printed", [("0", True), ("1", False)])
def test_only_the_main_process_prints_the_summary(monkeypatch, capsys, rank, printed):
    monkeypatch.setenv("RANK", rank)
    print_summary({"steps": 3})
    assert capsys.readouterr().out == ('{"steps": 3}\n' if printed else "")
    print_summary({"steps": 4}, main_process=True)
    assert json.loads(capsys.readouterr().out) == {"steps": 4}
