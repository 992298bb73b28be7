"""Write a synthetic preference dataset (colours, shapes, counts) in the ImageRewardDB parquet+zip layout.

    python scripts/make_synthetic_preferences.py OUT_DIR
    imreward train --train OUT_DIR --val OUT_DIR --test OUT_DIR --output runs/synthetic \\
        --model-config OUT_DIR/model_config.json --lr 2e-4 --batch-size 16 --epochs 20

(the README's recipe; ``benchmarks/readme_recipe.py`` measures it).

Also writes ``OUT_DIR/model_config.json``, a small architecture that learns the task from scratch.
"""

from __future__ import annotations

import argparse
import time

from pathlib import Path

from imreward.data.synthetic import small_model_config, write_synthetic_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--train-prompts", type=int, default=2000)
    parser.add_argument("--validation-prompts", type=int, default=200)
    parser.add_argument("--test-prompts", type=int, default=200)
    parser.add_argument("--images-per-prompt", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--images-per-zip", type=int, default=2000)
    parser.add_argument("--corrupt-images", type=int, default=0, help="broken images at the start of train")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    counts = write_synthetic_dataset(args.out_dir, args.train_prompts, args.validation_prompts, args.test_prompts,
                                     args.images_per_prompt, args.image_size, args.seed, args.images_per_zip,
                                     args.corrupt_images)
    small_model_config(args.image_size).save(Path(args.out_dir) / "model_config.json")
    print(f"wrote {counts} images to {args.out_dir} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
