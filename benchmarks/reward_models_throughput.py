"""Throughput of the CLIP-family scorers (CLIP, BLIP, Aesthetic, PickScore, HPSv2) against their
originals' own one-image loops, in the same run, on seeded checkpoints in the published layouts:
``--size tiny`` (the reduced-size models of ``tests/golden/<model>``, 15 images x 5 prompts) or
``--size full`` (the published architectures, 4 images x 2 prompts).

Ours: ``score_batch`` over those pairs at ``--batch-size`` (images decoded and preprocessed in the
timing), in float32 and bfloat16. The originals: ``scripts/make_golden_clip.py`` run in their
environments; it times its one-image scoring loop and writes its goldens to a temporary folder.

Usage: python benchmarks/reward_models_throughput.py --image-reward-python ../oracle-venv/bin/python \
    --hpsv2-python ../oracle-hpsv2-venv/bin/python --vocab VOCAB.txt [--size full --models hpsv2]
"""

from __future__ import annotations

import argparse
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


def original_throughput(python: str, which: str, out: Path, vocab: str | None, size: str) -> dict[str, float]:
    command = [python, str(REPO / "scripts" / "make_golden_clip.py"), which, "--out", str(out), "--size", size]
    command += ["--vocab", vocab] if vocab else []
    output = subprocess.run(command, capture_output=True, text=True, check=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}).stdout
    # The golden script prints "TIMING x images/s" after each model's loop, then "name: ..." when it writes.
    rates, names = re.findall(r"TIMING ([\d.]+)", output), re.findall(r"^(\w+): \d+ scores", output, re.M)
    return {name: float(rate) for name, rate in zip(names, rates)}


def our_throughput(scorer, golden: dict, batch_size: int) -> float:
    rows = [row for row in golden["scores"] if "score" in row and image_path(row["image"]) is not None]
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
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny",
                        help="full: the published architectures on the originals' full-size subset (4 images x 2 prompts)")
    parser.add_argument("--models", nargs="+", default=list(GOLDEN_NAMES), choices=GOLDEN_NAMES)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    originals: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "goldens"
        needs_image_reward = {"clip", "aesthetic", "blip", "pickscore"} & set(args.models)
        if args.image_reward_python and needs_image_reward:
            originals.update(original_throughput(args.image_reward_python, "imagereward", out, args.vocab, args.size))
        if args.hpsv2_python and "hpsv2" in args.models:
            originals.update(original_throughput(args.hpsv2_python, "hpsv2", out, None, args.size))
        # tiny: the committed goldens; full: those the originals just wrote (same seeds and files)
        root = GOLDEN if args.size == "tiny" else out
        goldens = {name: golden(name, root) for name in args.models if (root / name).is_dir()}
        if "aesthetic" in goldens:
            goldens.setdefault("clip", golden("clip", root))
        print(f"# {platform.processor() or platform.machine()}, {args.threads} thread(s), torch {torch.__version__}, "
              f"{args.size} seeded models, batch {args.batch_size}; images/s")
        print("| model | original loop | imreward fp32 | imreward bf16 |\n| --- | --- | --- | --- |")
        for name in args.models:
            rates = []
            for dtype in (torch.float32, torch.bfloat16):
                folder = Path(tmp) / f"{name}-{dtype}"
                scorer = build_scorer(name, goldens, folder, dtype)
                rates.append(our_throughput(scorer, goldens[name], args.batch_size))
                del scorer
            original = f"{originals[name]:.2f}" if name in originals else "-"
            print(f"| {name} | {original} | {rates[0]:.2f} | {rates[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
