"""Scoring throughput and load time of the full-size ImageReward (random seeded weights).

Measures, in one run on one machine:
- images/s of the model on pre-decoded batches, for each batch size and dtype;
- images/s end to end from image files (decode + preprocess + model) with ``score_batch``;
- the original implementation's one-image loop on the same files and weights, when
  ``--original-python`` points at an environment holding it (``scripts/oracle_env.sh``);
- load time of the published ``.pt`` layout and of a ``save_pretrained`` folder.

Example (CPU): python benchmarks/scoring_throughput.py --batch-sizes 1 4 16 --dtypes float32
Example (GPU): python benchmarks/scoring_throughput.py --device cuda --batch-sizes 1 8 32 64 128 256 \
                 --dtypes float32 bfloat16 --images 512
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import imreward
from imreward.config import ImageRewardConfig
from imreward.hub import POSITION_IDS_KEY
from imreward.testing import model_shapes, seeded_state_dict
from imreward.tokenizer import packaged_vocab_file

PROMPT = "a painting of an ocean with clouds and birds, day time, low depth field effect"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def write_images(folder: Path, count: int, size: int = 512) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        base = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((size, size), Image.BICUBIC)
        path = folder / f"{i:05d}.{'jpg' if i % 2 else 'png'}"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def time_forward(model, pixels: torch.Tensor, text: dict, batch_size: int, seconds: float) -> float:
    """images/s of ``model`` on pre-decoded batches of ``batch_size`` (cycled from ``pixels``)."""
    device = model.device
    batch = pixels[:batch_size].repeat((batch_size + len(pixels) - 1) // len(pixels), 1, 1, 1)[:batch_size]
    batch = batch.to(device, model.compute_dtype)
    tokens = {k: v.expand(batch_size, -1).to(device) for k, v in text.items()}
    with torch.inference_mode():
        model(batch, **tokens)  # warm-up
        synchronize(device)
        done, start = 0, time.perf_counter()
        while done == 0 or time.perf_counter() - start < seconds:
            model(batch, **tokens)
            synchronize(device)
            done += batch_size
    return done / (time.perf_counter() - start)


def time_original(args: argparse.Namespace, folder: Path, config: ImageRewardConfig, paths: list[Path],
                  device: torch.device) -> float:
    """images/s of the original implementation's loop, run in its own environment."""
    (folder / "med_config.json").write_text(json.dumps(config.text.to_med_config()))
    command = [args.original_python, str(Path(__file__).with_name("original_loop.py")), str(folder / "ImageReward.pt"),
               str(folder / "med_config.json"), str(packaged_vocab_file()), str(device),
               *map(str, paths[: args.original_images])]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--dtypes", nargs="+", default=["float32"], help="the first one is the reference for "
                        "the precision comparison (put float32 first)")
    parser.add_argument("--images", type=int, default=64, help="image files for the end-to-end run")
    parser.add_argument("--seconds", type=float, default=5.0, help="minimum timing per configuration")
    parser.add_argument("--original-python", help="python of an environment with the original image-reward")
    parser.add_argument("--original-images", type=int, default=8)
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    device = torch.device(args.device)
    results: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                     "threads": torch.get_num_threads(), "torch": torch.__version__}

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = ImageRewardConfig()
        shapes = dict(model_shapes(config), **{POSITION_IDS_KEY: (1, config.text.max_position_embeddings)})
        torch.save(seeded_state_dict(shapes, salt=1), tmp / "ImageReward.pt")
        start = time.perf_counter()
        model = imreward.load(tmp / "ImageReward.pt", device=device)
        synchronize(device)
        results["load_published_pt_s"] = time.perf_counter() - start
        model.save_pretrained(tmp / "saved")
        start = time.perf_counter()
        model = imreward.load(tmp / "saved", device=device)
        synchronize(device)
        results["load_saved_folder_s"] = time.perf_counter() - start
        print(f"load: published .pt {results['load_published_pt_s']:.2f} s, "
              f"saved folder {results['load_saved_folder_s']:.2f} s", flush=True)

        paths = write_images(tmp, max(args.images, args.original_images, 16))
        # The original is timed before and after imreward, so a drift of the machine's speed shows.
        original_rates = [time_original(args, tmp, config, paths, device)] if args.original_python else []
        pixels = torch.stack([model.preprocess(p) for p in paths[:16]])
        text = model.encode_prompts([PROMPT])
        results["pre_decoded"] = []
        results["precision_vs_float32"] = {}
        reference = None
        for dtype in args.dtypes:
            model = imreward.load(tmp / "saved", device=device, dtype=dtype)
            scores = torch.tensor(model.score_batch(PROMPT, paths[:16], batch_size=16))
            if reference is None:
                reference = scores
            else:
                results["precision_vs_float32"][dtype] = {"max_abs": float((scores - reference).abs().max()),
                                                          "mean_abs": float((scores - reference).abs().mean()),
                                                          "score_std": float(reference.std())}
                print(f"{dtype} vs {args.dtypes[0]} on 16 images: {results['precision_vs_float32'][dtype]}", flush=True)
            for batch_size in args.batch_sizes:
                rate = time_forward(model, pixels, text, batch_size, args.seconds)
                results["pre_decoded"].append({"dtype": dtype, "batch_size": batch_size, "images_per_s": rate})
                print(f"pre-decoded {dtype:>8} batch {batch_size:>4}: {rate:8.2f} images/s", flush=True)

        model = imreward.load(tmp / "saved", device=device)
        files, batch_size = paths[: args.images], max(args.batch_sizes)
        model.score_batch(PROMPT, files[:batch_size], batch_size=batch_size)  # warm-up at the timed shape
        synchronize(device)
        start = time.perf_counter()
        model.score_batch(PROMPT, files, batch_size=batch_size)
        synchronize(device)
        results["end_to_end_float32_images_per_s"] = len(files) / (time.perf_counter() - start)
        print(f"end to end from files, float32, batch {max(args.batch_sizes)}: "
              f"{results['end_to_end_float32_images_per_s']:.2f} images/s", flush=True)

        if original_rates:
            original_rates.append(time_original(args, tmp, config, paths, device))
            original = sum(original_rates) / len(original_rates)
            results["original_loop_images_per_s"] = original_rates
            best = max(r["images_per_s"] for r in results["pre_decoded"])
            results["speedup_pre_decoded_best"] = best / original
            results["speedup_end_to_end"] = results["end_to_end_float32_images_per_s"] / original
            print(f"original one-image loop (before, after): {original_rates[0]:.2f}, {original_rates[1]:.2f} "
                  f"images/s; speed-up {results['speedup_pre_decoded_best']:.2f}x (pre-decoded best), "
                  f"{results['speedup_end_to_end']:.2f}x (end to end, float32)", flush=True)
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
