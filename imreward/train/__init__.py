"""Train reward models from human rankings: ``train(TrainConfig(...)) -> TrainResult``.

Example::

    from imreward.train import TrainConfig, train
    result = train(TrainConfig(train_data="ImageRewardDB", val_data="ImageRewardDB", output_dir="runs/ir",
                               init="model_large.pth"))
    model = imreward.load(result.best_dir)

The trainer is imported on first use, so ``import imreward.train`` (and ``imreward --help``) stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imreward.train.config import TrainConfig

if TYPE_CHECKING:
    from imreward.train.trainer import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]


def __getattr__(name: str):
    if name in ("train", "TrainResult"):
        from imreward.train import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'imreward.train' has no attribute {name!r}")
