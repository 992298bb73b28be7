"""``imreward train --recipe imagereward-paper`` sets exactly the paper's values; explicit options win."""

import argparse
from dataclasses import fields

import pytest

import imreward.train
from imreward.train import TrainConfig
from imreward.train.cli import register


@pytest.fixture
def captured(monkeypatch):
    """Runs the train command with ``train`` replaced by a stand-in that keeps the config."""
    configs = []

    class Result:
        best_dir, best_step, best_val, test, global_step = "best", 0, None, None, 0

    monkeypatch.setattr(imreward.train, "train", lambda config: configs.append(config) or Result())

    def run(argv):
        parser = argparse.ArgumentParser()
        register(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(["train", "--output", "run", *argv])
        assert args.handler(args) == 0
        return configs[-1]
    return run


def test_the_paper_recipe_sets_its_values_and_nothing_else(captured):
    plain = captured(["--train", "a.json", "--val", "b.json", "--init", "model_large.pth"])
    paper = captured(["--recipe", "imagereward-paper", "--init", "model_large.pth"])
    changed = {field.name: getattr(paper, field.name) for field in fields(TrainConfig)
               if getattr(paper, field.name) != getattr(plain, field.name)}
    assert changed == {"train_data": "THUDM/ImageRewardDB", "val_data": "THUDM/ImageRewardDB", "batch_size": 64,
                       "freeze_ratio": 0.7}
    assert paper.lr == 1e-5 and paper.effective_freeze_ratio == 0.7
    assert (plain.batch_size, plain.freeze_ratio) == (8, None)


def test_explicit_options_override_the_recipe(captured):
    config = captured(["--recipe", "imagereward-paper", "--init", "model_large.pth", "--batch-size", "16",
                       "--lr", "3e-6", "--freeze-ratio", "0.5", "--train", "THUDM/ImageRewardDB:1k"])
    assert (config.batch_size, config.lr, config.freeze_ratio) == (16, 3e-6, 0.5)
    assert (config.train_data, config.val_data) == ("THUDM/ImageRewardDB:1k", "THUDM/ImageRewardDB")


def test_the_paper_recipe_needs_the_blip_checkpoint_and_plain_runs_need_data(captured):
    with pytest.raises(SystemExit, match="pass --init"):
        captured(["--recipe", "imagereward-paper"])
    with pytest.raises(SystemExit, match="--val is required"):
        captured(["--train", "a.json"])
