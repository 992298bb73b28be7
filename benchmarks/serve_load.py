"""Bounded load test of ``imreward serve`` on loopback: N concurrent clients, a fixed request count.

Starts the server in a subprocess, sends ``--requests`` requests of ``--images-per-request``
PNG images from ``--concurrency`` asyncio clients, checks every request got exactly one answer,
and reports requests/s, images/s, p50/p99 latency and the ratio of served images/s to the offline
throughput of the same model on the same machine with the same torch thread count (target >= 0.8).

The offline figure is like for like: ``score_batch`` on the same PNG bytes, so it decodes and
preprocesses the images as the server does (with as many decoding threads as the server), in
batches of ``--max-batch-size``. Offline and served phases alternate (offline, served, offline,
...) and each served phase is compared with the better offline phase around it, so load from
other processes on a shared machine does not flatter the ratio. ``model_busy`` (summed forward time / wall time) shows
whether the server kept the model busy; ``*_cpu_ms_per_image`` compare the work done per image.

    python benchmarks/serve_load.py --preset tiny --requests 200 --concurrency 8
    python benchmarks/serve_load.py --preset medium --requests 32 --concurrency 8
    python benchmarks/serve_load.py --preset medium --device cuda --dtype float16 --threads 8
    python benchmarks/serve_load.py --model /path/to/saved_model --device cuda
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from serve.serve_helpers import ServerProcess, metric_sums  # noqa: E402  (the tests' loopback server launcher)

import imreward  # noqa: E402
from imreward.client import AsyncRewardClient  # noqa: E402
from imreward.config import ImageRewardConfig, TextConfig, VisionConfig  # noqa: E402
from imreward.hub import build_model  # noqa: E402
from imreward.scoring import RewardScorer  # noqa: E402
from imreward.serve.settings import ServeSettings  # noqa: E402
from imreward.testing import model_shapes, seeded_state_dict, tiny_config  # noqa: E402
from imreward.tokenizer import PromptTokenizer, packaged_vocab_file  # noqa: E402

PROMPT = "a photo of a cat"
PRESETS = {
    "tiny": lambda: tiny_config(),
    "medium": lambda: ImageRewardConfig(
        vision=VisionConfig(image_size=224, patch_size=16, width=384, depth=6, num_heads=6),
        text=TextConfig(hidden_size=384, num_layers=4, num_heads=6, intermediate_size=1536, encoder_width=384),
        embed_dim=256),
}


def save_preset(name: str, folder: Path) -> Path:
    config = PRESETS[name]()
    model = build_model(config, seeded_state_dict(model_shapes(config)), PromptTokenizer.from_vocab(packaged_vocab_file()))
    model.save_pretrained(folder)
    return folder


def make_images(count: int, size: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, format="PNG")
        images.append(buffer.getvalue())
    return images


def offline_phase(model: RewardScorer, images: list[bytes], args: argparse.Namespace) -> tuple[float, float]:
    """(images/s, CPU ms per image) of ``score_batch`` on the encoded images: decode, preprocess and
    forward, as the server does it, with the server's batch size and decoding threads."""
    started, cpu_started = time.perf_counter(), time.process_time()
    model.score_batch(PROMPT, images, batch_size=args.max_batch_size, num_workers=args.decode_workers)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return len(images) / elapsed, cpu * 1000 / len(images)


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_clients(url: str, requests: list[list[bytes]], concurrency: int, timeout: float) -> list[tuple]:
    """(latency seconds, number of scores) per request, filled exactly once each."""
    answers: list[tuple | None] = [None] * len(requests)
    next_request = iter(range(len(requests)))

    async def client_loop(client: AsyncRewardClient) -> None:
        for index in next_request:
            started = time.perf_counter()
            scores = await client.score(PROMPT, requests[index])
            if answers[index] is not None:
                raise RuntimeError(f"request {index} answered twice")
            answers[index] = (time.perf_counter() - started, len(scores))

    async with AsyncRewardClient(url, timeout=timeout, retries=0) as client:
        await asyncio.wait_for(asyncio.gather(*(client_loop(client) for _ in range(concurrency))), timeout)
    missing = [i for i, answer in enumerate(answers) if answer is None]
    if missing:
        raise RuntimeError(f"{len(missing)} requests got no answer")
    return answers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=list(PRESETS), default="tiny")
    parser.add_argument("--model", help="a saved model folder instead of a preset")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--images-per-request", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--decode-workers", type=int, default=ServeSettings().decode_workers,
                        help="decoding threads of the server and of the offline run (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads of the server and of the offline run (default: torch's, %(default)s)")
    parser.add_argument("--timeout", type=float, default=600.0, help="overall limit of the client phase")
    parser.add_argument("--rounds", type=int, default=3,
                        help="served phases, each between two offline phases (default: %(default)s)")
    return parser


def measure(args: argparse.Namespace) -> dict:
    """Offline and served phases, alternating; the report of ``build_report``."""
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as scratch:
        model_dir = Path(args.model) if args.model else save_preset(args.preset, Path(scratch) / "model")
        distinct = make_images(min(64, args.requests * args.images_per_request), args.image_size)
        requests = [[distinct[(r * args.images_per_request + i) % len(distinct)]
                     for i in range(args.images_per_request)] for r in range(args.requests)]
        flat = [image for request in requests for image in request]
        model = imreward.load(str(model_dir), device=args.device, dtype=args.dtype)
        offline_phase(model, flat[: args.max_batch_size], args)  # warm-up
        options = ["--model", str(model_dir), "--device", args.device, "--max-batch-size", str(args.max_batch_size),
                   "--max-wait-ms", str(args.max_wait_ms), "--decode-workers", str(args.decode_workers)]
        options += ["--dtype", args.dtype] if args.dtype else []
        server = ServerProcess(options, threads=args.threads)
        try:
            asyncio.run(run_clients(server.url, requests[:2], 2, args.timeout))  # warm-up
            offline, served = [offline_phase(model, flat, args)], []
            for _ in range(args.rounds):
                served.append(served_phase(server, requests, args))
                offline.append(offline_phase(model, flat, args))
            batch = mean_batch_size(server.url)
        finally:
            server.stop()
    return build_report(args, offline, served, batch)


def main() -> None:
    print(json.dumps(measure(build_parser().parse_args()), indent=2))


def build_report(args: argparse.Namespace, offline: list[tuple[float, float]], served: list[dict],
                 mean_batch: float | None) -> dict:
    """Settings and figures; each served phase is compared with the better of the offline phases around it."""
    rounds = [{**phase, "served_to_offline": round(phase["images_per_s"] / max(before[0], after[0]), 2)}
              for phase, before, after in zip(served, offline, offline[1:])]
    return {"preset": None if args.model else args.preset, "device": args.device, "dtype": args.dtype,
            "threads": args.threads, "decode_workers": args.decode_workers, "image_size": args.image_size,
            "requests": args.requests, "concurrency": args.concurrency, "images_per_request": args.images_per_request,
            "max_batch_size": args.max_batch_size, "mean_served_batch": mean_batch,
            "offline": "score_batch on the same PNG bytes: decode + preprocess + forward, as the server does",
            "offline_images_per_s": [round(rate, 2) for rate, _ in offline],
            "offline_cpu_ms_per_image": [round(cpu, 1) for _, cpu in offline],
            "served": rounds,
            "median_served_to_offline": round(float(np.median([r["served_to_offline"] for r in rounds])), 2)}


def served_phase(server: ServerProcess, requests: list[list[bytes]], args: argparse.Namespace) -> dict:
    """Throughput, latency, the share of the time the model was busy (summed forward seconds / wall
    seconds) and the CPU time per image of the server and of the clients (sharing the machine) of
    one pass over ``requests``."""
    forward_started, client_cpu_started = forward_seconds(server.url), time.process_time()
    cpu_started, started = process_cpu_seconds(server.process.pid), time.perf_counter()
    answers = asyncio.run(run_clients(server.url, requests, args.concurrency, args.timeout))
    elapsed, cpu_finished = time.perf_counter() - started, process_cpu_seconds(server.process.pid)
    client_cpu = time.process_time() - client_cpu_started
    latencies = np.array([latency for latency, _ in answers])
    images = sum(count for _, count in answers)
    return {"requests_per_s": round(len(answers) / elapsed, 2), "images_per_s": round(images / elapsed, 2),
            "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 1),
            "p99_ms": round(float(np.percentile(latencies, 99)) * 1000, 1),
            "model_busy": round((forward_seconds(server.url) - forward_started) / elapsed, 2),
            "server_cpu_ms_per_image": None if cpu_started is None else round(
                (cpu_finished - cpu_started) * 1000 / images, 1),
            "client_cpu_ms_per_image": round(client_cpu * 1000 / images, 1)}


def server_metrics(url: str, names: tuple[str, ...]) -> dict[str, float]:
    return metric_sums(httpx.get(f"{url}/metrics", timeout=30.0).text, names)


def forward_seconds(url: str) -> float:
    return server_metrics(url, ("imreward_forward_seconds_sum",))["imreward_forward_seconds_sum"]


def mean_batch_size(url: str) -> float | None:
    """Images per model forward over the server's life."""
    sums = server_metrics(url, ("imreward_batch_size_sum", "imreward_batch_size_count"))
    count = sums["imreward_batch_size_count"]
    return round(sums["imreward_batch_size_sum"] / count, 1) if count else None


if __name__ == "__main__":
    main()
