"""Rewards for online RL loops (Flow-GRPO, DanceGRPO, Ray-based trainers, plain PyTorch loops).

One ``RLReward`` object: weighted rewards, each normalised (none, per-prompt z-score, running
mean/std), called as trainers call rewards, with its models in this process, behind
``imreward serve`` or in a pool of Ray actors (``load_rl_reward(..., placement=...)``), or in a
managed server process in another Python environment (``managed_reward``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imreward._lazy import lazy_exports

_EXPORTS = {
    "imreward.rl.reward": ["RLReward", "RewardFuture", "load_rl_reward"],
    "imreward.rl.managed": ["ManagedRewardServer", "managed_reward"],
    "imreward.rl.images": ["to_uint8_images"],
    "imreward.rl.local": ["LocalPlacement"],
    "imreward.rl.remote": ["RemotePlacement"],
    "imreward.rl.ray_pool": ["RayPlacement"],
}
__all__, __getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from imreward.rl.images import to_uint8_images
    from imreward.rl.local import LocalPlacement
    from imreward.rl.managed import ManagedRewardServer, managed_reward
    from imreward.rl.ray_pool import RayPlacement
    from imreward.rl.remote import RemotePlacement
    from imreward.rl.reward import RLReward, RewardFuture, load_rl_reward
