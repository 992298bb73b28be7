"""A stand-in trainer for the managed-reward tests: starts a managed reward server in another
environment, scores one batch, prints what the test checks as one JSON line, then waits on stdin
until the test ends or kills it.

    python tests/rl/managed_parent.py ENV_PYTHON TINY_MODEL_DIR OTHER_MODEL_DIR
"""

from __future__ import annotations

import json
import sys

import torch

from imreward.rl import managed_reward
from rl.rl_helpers import PROMPTS, WEIGHTS, uint8_batch


def main(env_python: str, tiny: str, other: str) -> None:
    torch.set_num_threads(1)
    reward = managed_reward(WEIGHTS, models={"tiny": tiny, "other": other}, python=env_python,
                            normalization="prompt-zscore", serve_args=["--threads", "1", "--max-wait-ms", "2"],
                            startup_timeout=180)
    scores, info = reward(uint8_batch(), PROMPTS, [{}] * len(PROMPTS))
    server = reward.placement.server
    print(json.dumps({"url": server.url, "token": server.token, "pid": server.process.pid,
                      "scores": {key: value.tolist() for key, value in scores.items()}, "info": info}), flush=True)
    sys.stdin.read()
    reward.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
