"""Bounded load test of ``imreward serve`` on loopback: N concurrent clients, a fixed request count.

Starts the server in a subprocess, sends ``--requests`` requests of ``--images-per-request``
PNG images from ``--concurrency`` asyncio clients, checks every request got exactly one answer,
and reports requests/s, images/s, p50/p99 latency and the ratio of served images/s to offline
batched ``score_batch`` images/s of the same model on the same machine (target >= 0.8).

    python benchmarks/serve_load.py --preset tiny --requests 200 --concurrency 8
    python benchmarks/serve_load.py --preset medium --device cuda --dtype float16
    python benchmarks/serve_load.py --model /path/to/saved_model --device cuda
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from serve.serve_helpers import ServerProcess  # noqa: E402  (the loopback server launcher of the tests)

import imreward  # noqa: E402
from imreward.client import AsyncRewardClient  # noqa: E402
from imreward.config import ImageRewardConfig, TextConfig, VisionConfig  # noqa: E402
from imreward.hub import build_model  # noqa: E402
from imreward.testing import model_shapes, seeded_state_dict, tiny_config  # noqa: E402
from imreward.tokenizer import PromptTokenizer, packaged_vocab_file  # noqa: E402

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


def offline_images_per_s(model_dir: Path, images: list[bytes], args: argparse.Namespace) -> float:
    """Images/s of the offline batched API (``score_batch``) on the same images."""
    model = imreward.load(str(model_dir), device=args.device, dtype=args.dtype)
    model.score_batch("a photo of a cat", images[: args.max_batch_size], batch_size=args.max_batch_size)  # warm-up
    started = time.perf_counter()
    model.score_batch("a photo of a cat", images, batch_size=args.max_batch_size)
    return len(images) / (time.perf_counter() - started)


async def run_clients(url: str, requests: list[list[bytes]], concurrency: int, timeout: float) -> list[tuple]:
    """(latency seconds, number of scores) per request, filled exactly once each."""
    answers: list[tuple | None] = [None] * len(requests)
    next_request = iter(range(len(requests)))

    async def client_loop(client: AsyncRewardClient) -> None:
        for index in next_request:
            started = time.perf_counter()
            scores = await client.score("a photo of a cat", requests[index])
            if answers[index] is not None:
                raise RuntimeError(f"request {index} answered twice")
            answers[index] = (time.perf_counter() - started, len(scores))

    async with AsyncRewardClient(url, timeout=timeout, retries=0) as client:
        await asyncio.wait_for(asyncio.gather(*(client_loop(client) for _ in range(concurrency))), timeout)
    missing = [i for i, answer in enumerate(answers) if answer is None]
    if missing:
        raise RuntimeError(f"{len(missing)} requests got no answer")
    return answers


def main() -> None:
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
    parser.add_argument("--decode-workers", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=600.0, help="overall limit of the client phase")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        model_dir = Path(args.model) if args.model else save_preset(args.preset, Path(scratch) / "model")
        distinct = make_images(min(64, args.requests * args.images_per_request), args.image_size)
        requests = [[distinct[(r * args.images_per_request + i) % len(distinct)]
                     for i in range(args.images_per_request)] for r in range(args.requests)]
        flat = [image for request in requests for image in request]

        offline_rates = [offline_images_per_s(model_dir, flat, args)]

        options = ["--model", str(model_dir), "--device", args.device, "--max-batch-size", str(args.max_batch_size),
                   "--max-wait-ms", str(args.max_wait_ms)]
        options += ["--dtype", args.dtype] if args.dtype else []
        options += ["--decode-workers", str(args.decode_workers)] if args.decode_workers else []
        server = ServerProcess(options)
        try:
            asyncio.run(run_clients(server.url, requests[:2], 2, args.timeout))  # warm-up
            started = time.perf_counter()
            answers = asyncio.run(run_clients(server.url, requests, args.concurrency, args.timeout))
            elapsed = time.perf_counter() - started
        finally:
            server.stop()
        offline_rates.append(offline_images_per_s(model_dir, flat, args))
    offline_rate = max(offline_rates)  # the better of before and after: the conservative ratio
    latencies = np.array([latency for latency, _ in answers])
    served_images = sum(count for _, count in answers)
    report = {"preset": None if args.model else args.preset, "device": args.device, "dtype": args.dtype,
              "requests": len(answers), "concurrency": args.concurrency, "images_per_request": args.images_per_request,
              "requests_per_s": round(len(answers) / elapsed, 1), "images_per_s": round(served_images / elapsed, 1),
              "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 1),
              "p99_ms": round(float(np.percentile(latencies, 99)) * 1000, 1),
              "offline_images_per_s": [round(rate, 1) for rate in offline_rates],
              "served_to_offline": round(served_images / elapsed / offline_rate, 2)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
