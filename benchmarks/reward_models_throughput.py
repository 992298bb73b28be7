"""Throughput of the CLIP-family scorers (CLIP, BLIP, Aesthetic, PickScore, HPSv2) against their
originals' own one-image loops, in the same run, on the models of ``tests/golden/<model>`` (the
reduced-size seeded checkpoints; ``--size full`` needs the originals' full-size goldens).

Ours: ``score_batch`` over the 15 golden images x 5 prompts at ``--batch-size``, in float32 and
bfloat16. The originals: ``scripts/make_golden_clip.py`` run in their environments (it times its
scoring loop and writes its goldens to a temporary folder).

Usage: python benchmarks/reward_models_throughput.py --image-reward-python ../oracle-venv/bin/python \
    --hpsv2-python ../oracle-hpsv2-venv/bin/python --vocab VOCAB.txt
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from models.clip_fixtures import build_scorer  # noqa: E402
from models.test_clip_family import GOLDEN, GOLDEN_NAMES, golden, image_path  # noqa: E402


def original_throughput(python: str, which: str, out: Path, vocab: str | None) -> dict[str, float]:
    command = [python, str(REPO / "scripts" / "make_golden_clip.py"), which, "--out", str(out)]
    command += ["--vocab", vocab] if vocab else []
    output = subprocess.run(command, capture_output=True, text=True, check=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}).stdout
    # The golden script prints "TIMING x images/s" after each model's loop, then "name: ..." when it writes.
    rates, names = re.findall(r"TIMING ([\d.]+)", output), re.findall(r"^(\w+): \d+ scores", output, re.M)
    return {name: float(rate) for name, rate in zip(names, rates)}


def our_throughput(scorer, batch_size: int) -> float:
    rows = [row for row in json.loads((GOLDEN / "clip" / "scores.json").read_text())["scores"]
            if image_path(row["image"]) is not None]
    scorer.score_batch(rows[0]["prompt"], [image_path(rows[0]["image"])])  # warm-up
    start = time.perf_counter()
    scorer.score_batch([row["prompt"] for row in rows], [image_path(row["image"]) for row in rows], batch_size=batch_size)
    return len(rows) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-reward-python", help="python of scripts/oracle_env.sh's environment")
    parser.add_argument("--hpsv2-python", help="python of scripts/oracle_env_hpsv2.sh's environment")
    parser.add_argument("--vocab", help="bert-base-uncased vocab.txt (for the image-reward oracle)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    originals: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.image_reward_python:
            originals.update(original_throughput(args.image_reward_python, "imagereward", Path(tmp), args.vocab))
        if args.hpsv2_python:
            originals.update(original_throughput(args.hpsv2_python, "hpsv2", Path(tmp), None))
        print(f"# {platform.processor() or platform.machine()}, {args.threads} thread(s), torch {torch.__version__}, "
              f"tiny seeded models, batch {args.batch_size}; images/s")
        print("| model | original loop | imreward fp32 | imreward bf16 |\n| --- | --- | --- | --- |")
        goldens = {name: golden(name) for name in GOLDEN_NAMES}
        for name in GOLDEN_NAMES:
            rates = []
            for dtype in (torch.float32, torch.bfloat16):
                folder = Path(tmp) / f"{name}-{dtype}"
                folder.mkdir()
                rates.append(our_throughput(build_scorer(name, goldens, folder, dtype), args.batch_size))
            original = f"{originals[name]:.1f}" if name in originals else "-"
            print(f"| {name} | {original} | {rates[0]:.1f} | {rates[1]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
