"""A managed reward process: ``imreward serve`` started in another Python environment, bound to a reward.

    reward = managed_reward({"PickScore-v1": 0.5, "HPSv2.1": 0.5}, python="/envs/rewards/bin/python",
                            device="cuda:1", dtype="bfloat16")
    scores, info = reward(images, prompts, metadata)
    reward.close()                                          # or: with managed_reward(...) as reward

The server runs under the given interpreter, so the reward models' dependencies never meet the
trainer's (that environment needs imreward installed). It listens on a free loopback port with a
random bearer token, is stopped by ``close``, at interpreter exit, and when the trainer dies: its
stdin is a pipe from the trainer, and end-of-file there stops it (``imreward.rl.reward_process``),
however the trainer ended, SIGKILL included.
"""

from __future__ import annotations

import atexit
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from imreward.serve.settings import TOKEN_ENV

HEALTH_POLL_S = 0.25
ENVIRONMENT_VARIABLES_OF_THE_TRAINER = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ManagedRewardServer:
    """``imreward serve`` in a child process that this process owns.

    Args:
        models: server model name -> scorer spec (what ``imreward serve --model NAME=SPEC`` takes).
        python: the interpreter of the reward environment (default: this one).
        device, dtype: the server's ``--device`` and ``--dtype``.
        serve_args: more ``imreward serve`` options (``--max-batch-size 64``, ...).
        env: variables set for the server on top of this process's environment; PYTHONPATH,
            PYTHONHOME and VIRTUAL_ENV are not passed on to another interpreter.
        startup_timeout: seconds to wait for ``/health`` (loading large models takes a while).
        graceful_timeout: the server's seconds to finish requests in flight when stopped.
    """

    def __init__(self, models: Mapping[str, str], python: str | os.PathLike | None = None,
                 device: str | None = None, dtype: str | None = None, serve_args: Sequence[str] = (),
                 env: Mapping[str, str] | None = None, startup_timeout: float = 600.0,
                 graceful_timeout: float = 5.0) -> None:
        if not models:
            raise ValueError("give at least one model")
        self.python = os.fspath(python or sys.executable)
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_urlsafe(24)
        self.graceful_timeout = graceful_timeout
        command = [self.python, "-m", "imreward.rl.reward_process", "--host", "127.0.0.1", "--port", str(self.port),
                   "--graceful-timeout", str(graceful_timeout), "--log-level", "warning"]
        for name, spec in models.items():
            command += ["--model", f"{name}={spec}"]
        command += [*(["--device", device] if device else []), *(["--dtype", dtype] if dtype else []), *serve_args]
        child_env = dict(os.environ)
        if Path(self.python).absolute() != Path(sys.executable).absolute():
            for name in ENVIRONMENT_VARIABLES_OF_THE_TRAINER:
                child_env.pop(name, None)
        child_env.update(env or {})
        child_env[TOKEN_ENV] = self.token  # not on the command line, where other users could read it
        self.log = tempfile.NamedTemporaryFile(prefix="imreward-reward-server-", suffix=".log", delete=False)
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT,
                                        env=child_env, start_new_session=True)
        atexit.register(self.stop)
        try:
            self._wait_until_healthy(startup_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_until_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the reward server exited with status {self.process.returncode} before it was "
                                   f"ready; its log ({self.log.name}):\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(HEALTH_POLL_S)
        raise TimeoutError(f"the reward server was not ready after {timeout:.0f} s; its log ({self.log.name}):\n"
                           f"{self.log_tail()}")

    def log_tail(self, characters: int = 4000) -> str:
        return Path(self.log.name).read_text(errors="replace")[-characters:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int | None:
        """Stop the server (SIGTERM, then SIGKILL after the graceful timeout); its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(self.graceful_timeout + 10.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        self.log.close()
        atexit.unregister(self.stop)
        return self.process.returncode

    def __enter__(self) -> ManagedRewardServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def managed_reward(weights: Mapping[str, float] | Sequence[str], models: Mapping[str, str] | None = None,
                   python: str | os.PathLike | None = None, normalization: str | Mapping[str, str] = "none",
                   device: str | None = None, dtype: str | None = None, serve_args: Sequence[str] = (),
                   env: Mapping[str, str] | None = None, startup_timeout: float = 600.0, **remote_options):
    """Start a ``ManagedRewardServer`` with one model per reward and return the ``RLReward`` bound to
    it (remote placement; the server is ``reward.placement.server``); closing the reward stops the server.

    Args:
        weights, normalization: as ``imreward.rl.RLReward`` takes them.
        models: reward name -> scorer spec for the server (default: the name itself).
        python, device, dtype, serve_args, env, startup_timeout: as ``ManagedRewardServer`` takes them.
        remote_options: more ``RemotePlacement`` options (``transport``, ``timeout``, ...).
    """
    from imreward.rl.remote import RemotePlacement
    from imreward.rl.reward import RLReward, parse_weights

    names = list(parse_weights(weights))
    server = ManagedRewardServer({name: (models or {}).get(name, name) for name in names}, python=python,
                                 device=device, dtype=dtype, serve_args=serve_args, env=env,
                                 startup_timeout=startup_timeout)
    try:
        placement = RemotePlacement(names, server.url, token=server.token, server=server, **remote_options)
        return RLReward(weights, placement, normalization)
    except BaseException:
        server.stop()
        raise
