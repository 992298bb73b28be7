"""Telling a collapsed training run from a slow start, from its validation metrics.

A reward model that scores both images of every pair alike has pair loss ln 2. At too high a
learning rate a model can learn, then lose it: its rewards shrink to nearly one value and the
validation loss returns to ln 2 while training goes on.
"""

from __future__ import annotations

import math

CHANCE_LOSS = math.log(2)  # the pair loss of a model that scores both images of every pair alike
# Rewards whose standard deviation over a validation set is below this (times max(1, |mean|)) are constant
# up to float32 rounding: the model no longer tells images apart.
CONSTANT_STD = 1e-5
# A validation loss this close to ln 2, after an earlier one had been LEARNED_MARGIN below it, means the
# model has unlearned: on the synthetic recipe at lr 1e-3 the loss went 0.684 -> 0.69313 with a reward
# spread of 0.035 -> 0.007 (a learning run's spread is about 1).
CHANCE_TOLERANCE, LEARNED_MARGIN = 1e-3, 5e-3


def collapse_reason(metrics: dict, lowest_loss: float) -> str | None:
    """Why a validation (``loss``, ``reward_std``, ``reward_mean``) shows a collapsed model, or None.

    ``lowest_loss`` is the lowest validation loss before this one. A slow start (loss still at ln 2
    because the rewards have not spread yet) is not a collapse.
    """
    if metrics["reward_std"] <= CONSTANT_STD * max(1.0, abs(metrics["reward_mean"])):
        return f"the model gives every validation image the same reward (std {metrics['reward_std']:.2g})"
    if abs(metrics["loss"] - CHANCE_LOSS) < CHANCE_TOLERANCE and lowest_loss < CHANCE_LOSS - LEARNED_MARGIN:
        return (f"the validation loss is back at ln 2 = {CHANCE_LOSS:.4f} after reaching {lowest_loss:.4f}, the "
                f"rewards barely differ (std {metrics['reward_std']:.2g})")
    return None
