"""RLReward in this process: weighted sums, the three normalisations, call shapes, coalesced futures."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

import imreward
from imreward.rl import LocalPlacement, RLReward, load_rl_reward
from imreward.rl.local import weight_bytes
from imreward.rl.normalization import RunningStats
from rl.rl_helpers import PROMPTS, WEIGHTS, expected_raw, input_forms, uint8_batch


@pytest.fixture
def placement(reward_scorers) -> LocalPlacement:
    return LocalPlacement(list(WEIGHTS), reward_scorers, device="cpu")


@pytest.fixture(scope="module")
def raw(reward_scorers) -> dict[str, np.ndarray]:
    return expected_raw(reward_scorers, uint8_batch(), PROMPTS)


def group_zscore(values: np.ndarray, prompts: list[str]) -> np.ndarray:
    """Reference: (x - group mean) / group population std, per prompt."""
    values, out = np.asarray(values, np.float64), np.zeros(len(prompts))
    for prompt in set(prompts):
        rows = [i for i, p in enumerate(prompts) if p == prompt]
        out[rows] = (values[rows] - values[rows].mean()) / values[rows].std()
    return out


def test_flow_grpo_shape_weighted_sum_raw_scores_and_info(placement, raw):
    reward = RLReward(WEIGHTS, placement)
    scores, info = reward(input_forms(uint8_batch())["nchw_float"], PROMPTS, [{}] * 5, only_strict=True)
    assert set(scores) == {"avg", "tiny", "other"}
    for name in WEIGHTS:
        assert scores[name] == pytest.approx(raw[name], abs=1e-6)
        assert info[f"{name}/mean"] == pytest.approx(raw[name].mean(), abs=1e-6)
        assert info[f"{name}/std"] == pytest.approx(raw[name].std(), abs=1e-6)
    assert scores["avg"] == pytest.approx(0.5 * raw["tiny"] + 2.0 * raw["other"], abs=1e-5)
    assert reward.score(PROMPTS, uint8_batch()) == pytest.approx(scores["avg"].tolist(), abs=1e-6)
    reward.close()


def test_prompt_zscore_and_grpo_advantages(placement, raw):
    reward = RLReward(WEIGHTS, placement, normalization={"other": "prompt-zscore"})
    weighted = 0.5 * raw["tiny"] + 2.0 * group_zscore(raw["other"], PROMPTS)
    assert reward(uint8_batch(), PROMPTS)[0]["avg"] == pytest.approx(weighted, abs=1e-5)
    advantages = reward.advantages(PROMPTS, uint8_batch())
    assert advantages == pytest.approx(group_zscore(weighted, PROMPTS).tolist(), abs=1e-4)
    reward.close()


def test_running_normalisation_uses_every_score_seen_so_far(placement, reward_scorers):
    reward = RLReward(WEIGHTS, placement, normalization="running")
    first, second = uint8_batch(seed=1), uint8_batch(seed=2)
    reward(first, PROMPTS)
    scores = reward(second, PROMPTS)[0]
    seen = {name: np.concatenate([expected_raw(reward_scorers, batch, PROMPTS)[name] for batch in (first, second)])
            for name in WEIGHTS}
    expected = sum(weight * (seen[name][5:].astype(np.float64) - seen[name].mean()) / seen[name].std()
                   for name, weight in WEIGHTS.items())
    assert scores["avg"] == pytest.approx(expected, abs=1e-4)
    reward.close()


def test_running_stats_merge_batches_exactly():
    values = np.random.default_rng(0).normal(3.0, 2.0, 101)
    stats = RunningStats()
    for part in np.array_split(values, 7):
        stats.update(part)
    assert (stats.count, stats.mean, stats.std) == (101, pytest.approx(values.mean()), pytest.approx(values.std()))


class GatedPlacement:
    """A placement whose first call waits for ``release``; records the size of every call."""

    def __init__(self, inner: LocalPlacement) -> None:
        self.inner, self.entered, self.release, self.sizes = inner, threading.Event(), threading.Event(), []

    def score(self, names, images, prompts):
        self.entered.set()
        assert self.release.wait(30)
        self.sizes.append(len(images))
        return self.inner.score(names, images, prompts)

    def close(self) -> None:
        pass


def test_futures_from_several_threads_share_one_batch(placement, reward_scorers):
    gated = GatedPlacement(placement)
    reward = RLReward(WEIGHTS, gated, max_wait_ms=0)
    batches = [uint8_batch(2, seed=seed) for seed in range(4)]
    futures = {0: reward.submit(batches[0], "a photo")}
    assert gated.entered.wait(30)  # the worker holds the first call; the next three queue up behind it
    threads = [threading.Thread(target=lambda i=i: futures.__setitem__(i, reward.submit(batches[i], "a photo")))
               for i in range(1, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gated.release.set()
    results = {i: future.result(timeout=60)[0] for i, future in futures.items()}
    assert gated.sizes == [2, 6] and (reward.calls, reward.batches) == (4, 2)
    for i, scores in results.items():
        alone = expected_raw(reward_scorers, batches[i], ["a photo"] * 2)
        assert scores["tiny"] == pytest.approx(alone["tiny"], abs=1e-5)
    reward.close()


def test_a_failing_placement_fails_every_waiting_future(placement):
    class Broken:
        def score(self, names, images, prompts):
            raise RuntimeError("the GPU fell off")

        def close(self) -> None:
            pass

    reward = RLReward(WEIGHTS, Broken())
    futures = [reward.submit(uint8_batch(1), "a") for _ in range(3)]
    for future in futures:
        with pytest.raises(RuntimeError, match="fell off"):
            future.result(timeout=30)
    reward.close()
    with pytest.raises(RuntimeError, match="closed"):
        reward.submit(uint8_batch(1), "a")


def test_bad_arguments_are_refused(placement):
    with pytest.raises(ValueError, match="rewards without a weight: nope"):
        RLReward(WEIGHTS, placement, normalization={"nope": "running"})
    with pytest.raises(ValueError, match="unknown reward normalization 'zscore'"):
        RLReward(WEIGHTS, placement, normalization="zscore")
    with pytest.raises(ValueError, match="each reward once"):
        RLReward(["tiny:1", "tiny:2"], placement)
    with pytest.raises(ValueError, match="placement must be one of"):
        load_rl_reward(WEIGHTS, placement="gpu")
    with pytest.raises(ValueError, match="needs url="):
        load_rl_reward(WEIGHTS, placement="remote")
    reward = RLReward(["tiny:0.5", "other:2"], placement)
    assert reward.weights == WEIGHTS
    with pytest.raises(ValueError, match="got 2 prompts for 5 images"):
        reward(uint8_batch(), ["a", "b"])
    empty, info = reward(np.zeros((0, 8, 8, 3), np.uint8), [])
    assert empty["avg"].shape == (0,) and info == {}
    reward.close()


def test_the_weighted_reward_never_keeps_an_autograd_graph(placement):
    pixels = torch.rand(2, 3, 40, 48, requires_grad=True)
    reward = RLReward(WEIGHTS, placement)
    scores, _ = reward(pixels, "a photo")
    assert isinstance(scores["avg"], np.ndarray) and pixels.grad is None
    started = time.monotonic()
    reward.close()
    assert time.monotonic() - started < 10


def test_the_local_placement_loads_in_the_dtype_asked(reward_model_dirs, raw):
    with load_rl_reward(WEIGHTS, models=reward_model_dirs, device="cpu", dtype="bfloat16") as reward:
        assert {scorer.compute_dtype for scorer in reward.placement.scorers.values()} == {torch.bfloat16}
        scores, _ = reward(uint8_batch(), PROMPTS)
    assert scores["tiny"] == pytest.approx(raw["tiny"], abs=0.05) and not np.array_equal(scores["tiny"], raw["tiny"])


def test_a_memory_budget_keeps_the_models_resident_offloads_them_or_refuses(reward_model_dirs):
    tiny = weight_bytes(imreward.load(reward_model_dirs["tiny"], device="cpu")) / 2**30  # both models are this size
    for budget, offload in ((2.5 * tiny, False), (1.5 * tiny, True)):
        placement = LocalPlacement(list(WEIGHTS), reward_model_dirs, device="cpu", memory_budget_gb=budget)
        assert placement.offload is offload
        assert placement.score(["tiny"], list(uint8_batch(2)), ["a", "b"])["tiny"].shape == (2,)
    with pytest.raises(ValueError, match=r"reward 'tiny' holds .* GiB of weights, more than the memory budget"):
        LocalPlacement(list(WEIGHTS), reward_model_dirs, device="cpu", memory_budget_gb=0.5 * tiny)
