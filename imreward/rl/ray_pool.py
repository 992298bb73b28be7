"""Ray placement: a pool of reward actors, each holding the models (``LocalPlacement``) on its share
of a GPU, as Ray-based RL trainers keep their reward workers.

A call is split into one contiguous slice per actor; ``submit`` gives the actors' ``ObjectRef``s
so a trainer can ``ray.get`` them or ``await`` them while its rollout goes on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


class RewardActor:
    """The body of one reward actor: the models of a ``LocalPlacement`` in the actor's process."""

    def __init__(self, names: Sequence[str], models: Mapping[str, object] | None, device: str | None,
                 dtype: str | None, offload: bool, batch_size: int) -> None:
        from imreward.rl.local import LocalPlacement

        self.placement = LocalPlacement(names, models, device=device, dtype=dtype, offload=offload,
                                        batch_size=batch_size)

    def score(self, names: Sequence[str], images: list[np.ndarray], prompts: list[str]) -> dict[str, np.ndarray]:
        return self.placement.score(names, images, prompts)

    def ready(self) -> bool:
        return True


class RayPlacement:
    """Scores images on ``num_actors`` Ray actors.

    Args:
        names, models, dtype, offload, batch_size: as ``LocalPlacement`` takes them, per actor.
        num_actors: actors in the pool.
        num_gpus: GPUs per actor; fractional values (0.25) put several actors on one GPU.
        num_cpus: CPUs per actor as Ray counts them.
        device: where each actor scores (default: ``"cuda"`` when ``num_gpus`` > 0, else ``"cpu"``).
    Ray must be initialised (``ray.init``) by the caller.
    """

    kind = "ray"

    def __init__(self, names: Sequence[str], models: Mapping[str, object] | None = None, num_actors: int = 1,
                 num_gpus: float = 0.0, num_cpus: float = 1.0, device: str | None = None,
                 dtype: str | None = None, offload: bool = False, batch_size: int = 32) -> None:
        import ray

        if num_actors < 1:
            raise ValueError("num_actors must be at least 1")
        if not ray.is_initialized():
            raise RuntimeError("the Ray placement needs a running Ray: call ray.init() first")
        device = device or ("cuda" if num_gpus > 0 else "cpu")
        actor_class = ray.remote(RewardActor).options(num_gpus=num_gpus, num_cpus=num_cpus)
        self.actors = [actor_class.remote(list(names), dict(models or {}), device, dtype, offload, batch_size)
                       for _ in range(num_actors)]
        ray.get([actor.ready.remote() for actor in self.actors])  # load errors surface here, not on first call

    def submit(self, names: Sequence[str], images: list[np.ndarray], prompts: list[str]) -> list:
        """One ``ObjectRef`` per actor given a slice of the images (up to ``num_actors`` refs, in order)."""
        slices = np.array_split(np.arange(len(images)), min(len(self.actors), max(1, len(images))))
        return [actor.score.remote(list(names), [images[i] for i in part], [prompts[i] for i in part])
                for actor, part in zip(self.actors, slices) if len(part)]

    def score(self, names: Sequence[str], images: list[np.ndarray], prompts: list[str]) -> dict[str, np.ndarray]:
        """Raw scores [B] (float32) of each reward in ``names``."""
        import ray

        return merge_slices(ray.get(self.submit(names, images, prompts)), names)

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
        self.actors = []


def merge_slices(parts: list[dict[str, np.ndarray]], names: Sequence[str]) -> dict[str, np.ndarray]:
    """The actors' results, in order, as one array per reward."""
    return {name: np.concatenate([part[name] for part in parts]).astype(np.float32) for name in names}
