"""Rewards for RL loops: rewards/s and added latency per call of each placement, raw pixels vs JPEG.

Each call scores ``--images`` generated uint8 images of ``--size`` px (what a sampler hands a
reward) with one model, through ``imreward.rl``:

- ``direct``: ``scorer.score_batch`` on the same arrays in this process, the baseline;
- ``local``: ``load_rl_reward(..., placement="local")`` (the queue, the worker thread, the weighting);
- ``remote/raw``, ``remote/png``, ``remote/jpeg``: a managed ``imreward serve`` (same interpreter,
  same thread count) reached over loopback, images sent as raw pixels, PNG or JPEG (quality 95);
- ``ray``: a pool of ``--actors`` Ray actors (``--num-gpus`` each).

After one warm-up call each, ``--calls`` calls are timed, each right after a direct call on the same
images: ``rewards_per_s`` is images / median call time, ``added_ms`` the median of (call time -
the direct call's time), what the placement costs on top of the model; pairing the calls cancels
most of the load of other processes. ``bytes_per_image`` is what one image weighs on the wire.
The images are smooth, like a generator's (random pixels would flatter raw pixels against PNG
and JPEG). Prints and returns a JSON report.

    python benchmarks/rl_rewards.py --preset tiny --images 16 --size 512 --calls 8 --threads 1
    python benchmarks/rl_rewards.py --preset medium --device cuda --dtype bfloat16 --num-gpus 0.5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_load import PRESETS, save_preset  # noqa: E402

import imreward  # noqa: E402
from imreward.rl import ManagedRewardServer, load_rl_reward  # noqa: E402
from imreward.rl.remote import encode_for_transport  # noqa: E402

PROMPT = "a photo of a cat"
PLACEMENTS = ("local", "remote", "ray")
TRANSPORTS = ("raw", "png", "jpeg")


def generated_images(count: int, size: int) -> np.ndarray:
    """Smooth images like a generator's (upsampled 16 px noise): random pixels would make PNG and
    JPEG far slower and larger than on real samples."""
    rng = np.random.default_rng(0)
    return np.stack([np.asarray(Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).resize(
        (size, size), Image.BICUBIC)) for _ in range(count)])


def paired_ms(direct, call, calls: int) -> tuple[float, float]:
    """(median ms of ``call``, median ms of ``call`` minus the ``direct`` call timed just before it),
    after one warm-up of each: pairs taken back to back cancel most of the load of other processes."""
    direct(), call()
    times, added = [], []
    for _ in range(calls):
        started = time.perf_counter()
        direct()
        middle = time.perf_counter()
        call()
        ended = time.perf_counter()
        times.append(ended - middle)
        added.append((ended - middle) - (middle - started))
    return statistics.median(times) * 1000, statistics.median(added) * 1000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=list(PRESETS), default="tiny")
    parser.add_argument("--model", help="a saved model folder instead of a preset")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--images", type=int, default=16, help="images per call (default: %(default)s)")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (default: %(default)s)")
    parser.add_argument("--calls", type=int, default=8, help="timed calls per placement (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads here, in the server and in each actor (default: %(default)s)")
    parser.add_argument("--placements", nargs="+", choices=PLACEMENTS, default=list(PLACEMENTS))
    parser.add_argument("--transports", nargs="+", choices=TRANSPORTS, default=list(TRANSPORTS))
    parser.add_argument("--actors", type=int, default=1)
    parser.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per Ray actor (fractional allowed)")
    return parser


def measure(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.model or str(save_preset(args.preset, Path(scratch) / "model"))
        images = generated_images(args.images, args.size)
        scorer = imreward.load(folder, device=args.device, dtype=args.dtype)
        direct_times = []

        def direct() -> None:
            started = time.perf_counter()
            scorer.score_batch(PROMPT, list(images), batch_size=args.images)
            direct_times.append(time.perf_counter() - started)

        rows = {}

        def record(name: str, reward, **extra) -> None:
            median_ms, added_ms = paired_ms(direct, lambda: reward(images, PROMPT), args.calls)
            rows[name] = {"median_ms": round(median_ms, 2), "rewards_per_s": round(args.images * 1000 / median_ms, 1),
                          "added_ms": round(added_ms, 2), **extra}

        options = {"device": args.device, "dtype": args.dtype}
        if "local" in args.placements:
            with load_rl_reward({"model": 1.0}, models={"model": folder}, batch_size=args.images, **options) as reward:
                record("local", reward)
        if "remote" in args.placements:
            serve_args = ["--threads", str(args.threads), "--max-batch-size", str(args.images)]
            with ManagedRewardServer({"model": folder}, serve_args=serve_args, **options) as server:
                for transport in args.transports:
                    with load_rl_reward({"model": 1.0}, placement="remote", url=server.url, token=server.token,
                                        transport=transport) as reward:
                        payload = encode_for_transport(images[0], transport)
                        record(f"remote/{transport}", reward,
                               bytes_per_image=len(payload["data"] if isinstance(payload, dict) else payload))
        if "ray" in args.placements:
            import ray

            ray.init(num_cpus=max(2, args.actors), include_dashboard=False, log_to_driver=False,
                     configure_logging=False, runtime_env={"env_vars": {"OMP_NUM_THREADS": str(args.threads)}})
            try:
                with load_rl_reward({"model": 1.0}, placement="ray", models={"model": folder}, num_actors=args.actors,
                                    num_gpus=args.num_gpus, batch_size=args.images, **options) as reward:
                    record("ray", reward)
            finally:
                ray.shutdown()
    direct_ms = statistics.median(direct_times) * 1000
    return {"benchmark": "benchmarks/rl_rewards.py", "machine": f"{platform.machine()} {platform.processor()}".strip(),
            "device": args.device, "dtype": args.dtype or "float32", "preset": None if args.model else args.preset,
            "images_per_call": args.images, "size": args.size, "threads": args.threads, "calls": args.calls,
            "direct": {"median_ms": round(direct_ms, 2), "rewards_per_s": round(args.images * 1000 / direct_ms, 1)},
            "placements": rows}


def main() -> None:
    print(json.dumps(measure(build_parser().parse_args()), indent=2))


if __name__ == "__main__":
    main()
