"""The reward head: a stack of linear layers on the [CLS] feature, without nonlinearities
(the published ImageReward head has none), dropout after the hidden layers that have a rate."""

from __future__ import annotations

import torch
from torch import nn

from imreward.config import HeadConfig


class RewardHead(nn.Module):
    def __init__(self, in_features: int, config: HeadConfig) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        width = in_features
        for hidden, rate in zip(config.hidden_sizes, config.dropouts):
            modules.append(nn.Linear(width, hidden))
            if rate > 0:
                modules.append(nn.Dropout(rate))
            width = hidden
        modules.append(nn.Linear(width, 1))
        self.layers = nn.Sequential(*modules)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, in_features] -> raw rewards [B]."""
        return self.layers(features).squeeze(-1)
