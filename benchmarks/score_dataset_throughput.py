"""End-to-end throughput of ``imreward score-dataset`` on generated JPEG/PNG files.

Writes ``--images`` random images (``--image-size`` px, 4 in 5 JPEG) and a manifest, then runs
the real command (DataLoader decoding workers, batched scoring, part files, merge) and reports
images/s. Target on one H100-class GPU with 16 cores: >= 1,000 images/s with the full model:

    python benchmarks/score_dataset_throughput.py --model ImageReward-v1.0 --device cuda --dtype float16 \\
        --images 20000 --image-size 512 --batch-size 256
    python benchmarks/score_dataset_throughput.py --preset tiny --images 2000      # CPU smoke figure

Several models in one pass (each image decoded once) against one run per model:

    python benchmarks/score_dataset_throughput.py --preset tiny --copies 3 --separate --images 1000
    python benchmarks/score_dataset_throughput.py --model ImageReward-v1.0 --model CLIP --separate --device cuda
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_load import PRESETS, save_preset  # noqa: E402

from imreward.cli import main as imreward_main  # noqa: E402


def write_dataset(folder: Path, count: int, size: int, png_every: int = 5, distinct: int | None = None) -> Path:
    """``count`` images and their manifest; every ``png_every``-th is a PNG, the others JPEG (0: all
    JPEG). With ``distinct``, only that many images are generated per format and their files repeat
    (decoding costs the same; writing 1024 px images takes long)."""
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    encoded: dict[tuple[bool, int], bytes] = {}
    with open(folder / "manifest.jsonl", "w") as manifest:
        for index in range(count):
            png = png_every > 0 and index % png_every == 0
            slot = (png, index % distinct if distinct else index)
            if slot not in encoded:
                # smooth content with noise, closer to generated images than pure noise for the codecs
                base = np.linspace(0, 255, size, dtype=np.float32)[None, :, None] * rng.random(3, dtype=np.float32)
                pixels = np.clip(base + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
                buffer = io.BytesIO()
                Image.fromarray(pixels).save(buffer, format="PNG" if png else "JPEG", quality=90)
                encoded[slot] = buffer.getvalue()
            name = f"images/{index:07d}.{'png' if png else 'jpg'}"
            (folder / name).write_bytes(encoded[slot] if distinct else encoded.pop(slot))
            manifest.write(json.dumps({"prompt": f"generated image number {index % 100}", "image": name}) + "\n")
    return folder / "manifest.jsonl"


def run_score_dataset(manifest: Path, models: list[str], output: Path, args: argparse.Namespace) -> tuple[int, float]:
    """(exit status, seconds) of one ``imreward score-dataset`` run with ``models``."""
    command = ["score-dataset", str(manifest), "--output", str(output), "--batch-size", str(args.batch_size), "-q"]
    for model in models:
        command += ["--model", model]
    for option, value in (("--device", args.device), ("--dtype", args.dtype), ("--num-workers", args.num_workers)):
        command += [option, str(value)] if value is not None else []
    started = time.perf_counter()
    status = imreward_main(command)
    return status, time.perf_counter() - started


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=list(PRESETS), default="tiny")
    parser.add_argument("--model", action="append", help="registry name or saved folder instead of a preset; repeat "
                                                         "for several models in one pass")
    parser.add_argument("--copies", type=int, default=1, help="without --model: this many models of the preset")
    parser.add_argument("--separate", action="store_true", help="also time one run per model, one after the other")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--png-every", type=int, default=5, help="every n-th image a PNG, the rest JPEG (0: all JPEG)")
    parser.add_argument("--distinct", type=int, default=None, help="generate only this many images and repeat them")
    return parser


def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if args.model:
            models = args.model
        else:
            folder = save_preset(args.preset, scratch / "model")
            models = [f"m{index}={folder}" for index in range(args.copies)] if args.copies > 1 else [str(folder)]
        manifest = write_dataset(scratch / "data", args.images, args.image_size, args.png_every, args.distinct)
        status, elapsed = run_score_dataset(manifest, models, scratch / "scores.parquet", args)
        result = {"models": args.model or f"{args.copies} x {args.preset}", "device": args.device, "dtype": args.dtype,
                  "images": args.images, "image_size": args.image_size, "status": status,
                  "seconds": round(elapsed, 1), "images_per_s": round(args.images / elapsed, 1)}
        if args.separate and len(models) > 1:
            alone = [run_score_dataset(manifest, [model], scratch / f"alone-{index}.parquet", args)
                     for index, model in enumerate(models)]
            separate = sum(seconds for _, seconds in alone)
            result.update(separate_status=max(code for code, _ in alone), separate_seconds=round(separate, 1),
                          separate_images_per_s=round(args.images / separate, 1))
    return result


def main() -> None:
    print(json.dumps(run(build_parser().parse_args()), indent=2))


if __name__ == "__main__":
    main()
