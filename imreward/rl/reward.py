"""One reward object for online RL: weighted, normalised rewards in the call shapes trainers use.

    reward = load_rl_reward({"PickScore-v1": 0.5, "HPSv2.1": 0.3, "ImageReward-v1.0": 0.2},
                            normalization="running", placement="local", device="cuda")
    scores, info = reward(images, prompts, metadata)        # Flow-GRPO's reward_fn shape
    future = reward.submit(images, prompts, metadata)       # rollout goes on; .result() or await
    rewards = reward.score(prompts, images)                 # list[float]
    advantages = reward.advantages(prompts, images)         # GRPO: z-score within each prompt

Every call goes through one queue: a worker thread takes the calls waiting (from any thread)
and scores them in one placement call, so several small calls share batches.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import torch

from imreward.normalize import prompt_zscore
from imreward.refl.rewards import parse_reward_spec
from imreward.rl.images import RewardImages, to_uint8_images
from imreward.rl.normalization import RewardNormalizer

WEIGHTED_KEY = "avg"  # the weighted sum's key, the one Flow-GRPO's trainer reads
PLACEMENTS = ("local", "remote", "ray")


class RewardFuture(Future):
    """A ``concurrent.futures.Future`` of ``(scores, info)`` that can also be awaited."""

    def __await__(self):
        return asyncio.wrap_future(self).__await__()


@dataclass
class _Call:
    images: list[np.ndarray]
    prompts: list[str]
    future: RewardFuture


_STOP = object()


class RLReward:
    """A weighted sum of normalised rewards, scored by a placement (local, remote or Ray).

    Args:
        weights: reward name -> weight, e.g. ``{"PickScore-v1": 0.5, "HPSv2.1": 0.5}``, or a list of
            ``"NAME[:WEIGHT]"`` specs as ``imreward refl --reward`` takes them.
        placement: a ``LocalPlacement``, ``RemotePlacement`` or ``RayPlacement`` (see ``load_rl_reward``).
        normalization: ``"none"``, ``"prompt-zscore"`` or ``"running"`` for every reward, or a
            mapping from reward name to one of them (missing names: ``"none"``).
        max_batch_images: images the worker gathers from waiting calls into one placement call.
        max_wait_ms: how long the worker waits for more calls after the first.
    """

    def __init__(self, weights: Mapping[str, float] | Sequence[str], placement,
                 normalization: str | Mapping[str, str] = "none", max_batch_images: int = 256,
                 max_wait_ms: float = 2.0) -> None:
        self.weights = parse_weights(weights)
        self.names = list(self.weights)
        kinds = normalization if isinstance(normalization, Mapping) else dict.fromkeys(self.names, normalization)
        unknown = sorted(set(kinds) - set(self.names))
        if unknown:
            raise ValueError(f"normalization names rewards without a weight: {', '.join(unknown)}")
        self.normalizers = {name: RewardNormalizer(kinds.get(name, "none")) for name in self.names}
        self.placement = placement
        self.max_batch_images, self.max_wait = max_batch_images, max_wait_ms / 1000.0
        self.calls = self.batches = 0  # calls answered and placement calls made (batches shared by calls)
        self._queue: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    # ---- call shapes ------------------------------------------------------------------------

    def __call__(self, images: RewardImages, prompts: Sequence[str], metadata: object = None,
                 **options: object) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Flow-GRPO's ``reward_fn(images, prompts, metadata)`` shape.

        Args:
            images: [N, 3, H, W] float in [0, 1], [N, H, W, 3] uint8 (tensor or array), or a list of
                PIL images.
            prompts: N prompts (one string stands for all).
            metadata, options: accepted and ignored (Flow-GRPO passes ``only_strict=``).
        Returns:
            ``scores``: ``"avg"`` -> the weighted sum [N] of the normalised rewards, and each reward
            name -> its raw scores [N] (float32 arrays); ``info``: ``"NAME/mean"`` and ``"NAME/std"``
            of each reward's raw scores in this call (for logging one reward drifting from another).
        """
        return self.submit(images, prompts, metadata).result()

    def score(self, prompts: str | Sequence[str], images: RewardImages) -> list[float]:
        """The weighted rewards of (prompt, image) pairs as floats."""
        return self(images, prompts)[0][WEIGHTED_KEY].tolist()

    def advantages(self, prompts: Sequence[str], images: RewardImages) -> list[float]:
        """GRPO advantages: the weighted reward's z-score within the images of each prompt
        (``imreward.normalize.prompt_zscore``; 0 for a prompt with one image or equal rewards)."""
        weighted = self(images, prompts)[0][WEIGHTED_KEY]
        prompt_list = [prompts] * len(weighted) if isinstance(prompts, str) else list(prompts)
        return prompt_zscore(torch.from_numpy(weighted.astype(np.float64)), prompt_list).tolist()

    def submit(self, images: RewardImages, prompts: str | Sequence[str], metadata: object = None,
               **options: object) -> RewardFuture:
        """Queue a call and return at once; the future's result is what ``__call__`` returns.

        The images are copied to uint8 host arrays here, so the caller may reuse its buffers.
        """
        arrays = to_uint8_images(images)
        prompt_list = [prompts] * len(arrays) if isinstance(prompts, str) else list(prompts)
        if len(prompt_list) != len(arrays):
            raise ValueError(f"got {len(prompt_list)} prompts for {len(arrays)} images")
        future = RewardFuture()
        if not arrays:
            future.set_result(({WEIGHTED_KEY: np.zeros(0, np.float32),
                                **{name: np.zeros(0, np.float32) for name in self.names}}, {}))
            return future
        self._start_worker()
        self._queue.put(_Call(arrays, prompt_list, future))
        return future

    # ---- the worker -------------------------------------------------------------------------

    def _start_worker(self) -> None:
        with self._lock:
            if self.placement is None:
                raise RuntimeError("this reward is closed")
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="rl-reward", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            calls, stop = self._gather(first)
            self._run([call for call in calls if call.future.set_running_or_notify_cancel()])
            if stop:
                return

    def _gather(self, first: _Call) -> tuple[list[_Call], bool]:
        """The first call and those waiting behind it, up to ``max_batch_images``; True when the
        stop sentinel was met."""
        calls, count = [first], len(first.images)
        deadline = time.monotonic() + self.max_wait
        while count < self.max_batch_images:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is _STOP:
                return calls, True
            calls.append(item)
            count += len(item.images)
        return calls, False

    def _run(self, calls: list[_Call]) -> None:
        if not calls:
            return
        try:
            raw = self.placement.score(self.names, [image for call in calls for image in call.images],
                                       [prompt for call in calls for prompt in call.prompts])
        except BaseException as error:  # every waiting caller learns why; the worker goes on
            for call in calls:
                call.future.set_exception(error)
            return
        self.batches += 1
        start = 0
        for call in calls:
            stop = start + len(call.images)
            try:
                call.future.set_result(self._combine({name: raw[name][start:stop] for name in self.names},
                                                     call.prompts))
            except Exception as error:
                call.future.set_exception(error)
            self.calls += 1
            start = stop

    def _combine(self, raw: dict[str, np.ndarray], prompts: list[str]) -> tuple[dict[str, np.ndarray], dict]:
        """The weighted sum of the normalised rewards, the raw rewards and their statistics."""
        total = np.zeros(len(prompts), dtype=np.float64)
        info = {}
        for name in self.names:
            values = np.asarray(raw[name], dtype=np.float32)
            if not np.isfinite(values).all():
                raise ValueError(f"reward {name!r} returned non-finite scores")
            total += self.weights[name] * self.normalizers[name](values, prompts)
            info[f"{name}/mean"], info[f"{name}/std"] = float(values.mean()), float(values.std())
        scores = {WEIGHTED_KEY: total.astype(np.float32), **{name: np.asarray(raw[name], np.float32)
                                                            for name in self.names}}
        return scores, info

    # ---- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Answer the calls already queued, stop the worker and release the placement (a managed
        server is stopped)."""
        with self._lock:
            worker, placement, self.placement = self._worker, self.placement, None
        if worker is not None:
            self._queue.put(_STOP)
            worker.join()
        if placement is not None:
            placement.close()

    def __enter__(self) -> RLReward:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def parse_weights(weights: Mapping[str, float] | Sequence[str]) -> dict[str, float]:
    """Reward name -> weight from a mapping or ``"NAME[:WEIGHT]"`` specs; refuses none and duplicates."""
    if isinstance(weights, Mapping):
        pairs = [(str(name), float(weight)) for name, weight in weights.items()]
    elif isinstance(weights, str):
        pairs = [parse_reward_spec(weights)]
    else:
        pairs = [parse_reward_spec(spec) for spec in weights]
    parsed = dict(pairs)
    if not parsed or len(parsed) != len(pairs):
        raise ValueError(f"give each reward once with its weight, got {weights!r}")
    return parsed


def load_rl_reward(weights: Mapping[str, float] | Sequence[str], placement: str = "local",
                   normalization: str | Mapping[str, str] = "none", models: Mapping[str, object] | None = None,
                   max_batch_images: int = 256, max_wait_ms: float = 2.0, **options: object) -> RLReward:
    """An ``RLReward`` with its models where ``placement`` says; the one switch between placements.

    Args:
        weights, normalization, max_batch_images, max_wait_ms: as ``RLReward`` takes them.
        placement: ``"local"`` (this process; options ``device``, ``dtype``, ``offload``,
            ``batch_size``), ``"remote"`` (an ``imreward serve``; options ``url`` (required),
            ``token``, ``transport``, ...) or ``"ray"`` (a pool of actors; options ``num_actors``,
            ``num_gpus``, ``num_cpus``, ``device``, ``dtype``, ``offload``, ``batch_size``).
        models: reward name -> what to load for it (``imreward.load_scorer`` specs, or scorers for
            the local placement); for the remote placement, reward name -> the server's model name.
            Names not given are used as they are.
    """
    names = list(parse_weights(weights))
    if placement == "local":
        from imreward.rl.local import LocalPlacement

        built = LocalPlacement(names, models, **options)
    elif placement == "remote":
        from imreward.rl.remote import RemotePlacement

        if "url" not in options:
            raise ValueError("the remote placement needs url= (where imreward serve listens)")
        built = RemotePlacement(names, models=models, **options)
    elif placement == "ray":
        from imreward.rl.ray_pool import RayPlacement

        built = RayPlacement(names, models, **options)
    else:
        raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
    return RLReward(weights, built, normalization, max_batch_images, max_wait_ms)
