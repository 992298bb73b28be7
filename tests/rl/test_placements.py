"""One reward, three placements: in this process, behind a managed ``imreward serve`` in another
environment, and on a pool of Ray actors give the same scores; the managed server dies with its parent."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from imreward.rl import LocalPlacement, RLReward, load_rl_reward
from rl.rl_helpers import PROMPTS, WEIGHTS, input_forms, uint8_batch

TOLERANCE = 1e-5  # batches split differently between placements change float sums in the last bits


class StartedParent:
    """The stand-in trainer (managed_parent.py) in a subprocess; ``report`` waits for its JSON line."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process, self._report = process, None

    def report(self) -> dict:
        if self._report is None:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"the stand-in trainer failed: {self.process.stderr.read()}")
            self._report = json.loads(line)
        return self._report


@pytest.fixture(scope="module")
def managed_parent(reward_env_python, reward_model_dirs):
    """Started at once, not waited for, so its server starts while other fixtures (Ray) do."""
    tests = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("managed_parent.py")), reward_env_python,
                                reward_model_dirs["tiny"], reward_model_dirs["other"]],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    yield StartedParent(process)
    if process.poll() is None:
        process.kill()
    process.wait()


@pytest.fixture(scope="module")
def ray_reward(ray_cluster, managed_parent, reward_model_dirs):
    """Two CPU actors, each holding both models."""
    reward = load_rl_reward(WEIGHTS, placement="ray", normalization="prompt-zscore", models=reward_model_dirs,
                            num_actors=2, num_cpus=1)
    yield reward
    reward.close()


def remote_reward(report: dict, transport: str = "raw") -> RLReward:
    return load_rl_reward(WEIGHTS, placement="remote", normalization="prompt-zscore", url=report["url"],
                          token=report["token"], transport=transport)


def assert_same(scores: dict, expected: dict, tolerance: float = TOLERANCE) -> None:
    assert set(scores) == set(expected)
    for key, values in expected.items():
        assert np.asarray(scores[key]) == pytest.approx(np.asarray(values), abs=tolerance), key


def test_local_remote_and_ray_give_the_same_scores_and_advantages(ray_reward, managed_parent, reward_scorers):
    local = RLReward(WEIGHTS, LocalPlacement(list(WEIGHTS), reward_scorers, device="cpu"), "prompt-zscore")
    report = managed_parent.report()
    remote = remote_reward(report)
    expected, _ = local(uint8_batch(), PROMPTS)
    assert_same(report["scores"], expected)  # the managed reward's own call, in the stand-in trainer
    expected_advantages = local.advantages(PROMPTS, uint8_batch())
    for form, images in input_forms(uint8_batch()).items():
        for reward in (local, remote, ray_reward):
            scores, info = reward(images, PROMPTS, [{}] * len(PROMPTS))
            assert_same(scores, expected)
            assert info["other/std"] == pytest.approx(float(expected["other"].std()), abs=TOLERANCE), form
            assert reward.advantages(PROMPTS, images) == pytest.approx(expected_advantages, abs=1e-4), form
    with remote_reward(report, transport="png") as png:
        assert_same(png(uint8_batch(), PROMPTS)[0], remote(uint8_batch(), PROMPTS)[0], tolerance=0.0)
    remote.close()


def test_ray_trainer_recipe_scores_each_micro_group_as_it_arrives(ray_reward, ray_cluster, reward_scorers):
    """The README's Ray recipe: rollout tasks return NHWC uint8 groups; the driver awaits the refs and
    submits each group's rewards at once, then awaits them all."""
    import ray

    @ray.remote(num_cpus=0.5)
    def rollout(seed: int) -> tuple[np.ndarray, list[str]]:  # what uint8_batch(3, seed) makes (no test imports)
        return np.random.default_rng(seed).integers(0, 256, (3, 40, 48, 3), dtype=np.uint8), [f"prompt {seed}"] * 3

    async def trainer_step() -> list:
        pending = []
        for ref in [rollout.remote(seed) for seed in range(3)]:
            images, prompts = await ref
            pending.append(ray_reward.submit(images, prompts))
        return await asyncio.gather(*pending)

    local = RLReward(WEIGHTS, LocalPlacement(list(WEIGHTS), reward_scorers, device="cpu"), "prompt-zscore")
    for seed, (scores, info) in enumerate(asyncio.run(trainer_step())):
        assert_same(scores, local(uint8_batch(3, seed=seed), f"prompt {seed}")[0])
        assert set(info) == {"tiny/mean", "tiny/std", "other/mean", "other/std"}
    refs = ray_reward.placement.submit(list(WEIGHTS), list(uint8_batch()), PROMPTS)
    raw = {name: np.concatenate([part[name] for part in ray.get(refs)]) for name in WEIGHTS}
    assert len(refs) == 2 and raw["tiny"] == pytest.approx(local(uint8_batch(), PROMPTS)[0]["tiny"], abs=TOLERANCE)


def process_gone(pid: int) -> bool:
    """No such process, or a zombie nobody reaped yet."""
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_managed_server_runs_in_its_environment_and_dies_with_its_parent(managed_parent, reward_env_python):
    report = managed_parent.report()
    command = Path(f"/proc/{report['pid']}/cmdline").read_bytes().split(b"\0")
    assert command[0].decode() == reward_env_python and b"imreward.rl.reward_process" in command
    health = httpx.get(f"{report['url']}/v1/models", headers={"authorization": f"Bearer {report['token']}"})
    assert [model["name"] for model in health.json()["models"]] == ["tiny", "other"]
    assert httpx.get(f"{report['url']}/v1/models").status_code == 401  # the random token guards it
    managed_parent.process.send_signal(signal.SIGKILL)
    managed_parent.process.wait()
    deadline = time.monotonic() + 30
    while not process_gone(report["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process_gone(report["pid"])
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{report['url']}/health", timeout=2.0)
