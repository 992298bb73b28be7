"""ReFL / DRaFT-K training-step throughput and peak memory with random-weight components.

Families (random weights from configs, no downloads):
- ``--family sd`` (default): SD-1.5-sized UNet/VAE/text encoder at 512 px, the paper's sampler
  (40 DDIM steps, gradient step in [30, 39]);
- ``--family sd3``: the SD3-medium transformer (published config: 24 joint blocks, width 1536)
  and SD3 VAE at 1024 px, 28 flow-matching steps (gradient window: the last quarter), CFG 7;
  its three text encoders keep their output widths but have one layer each (they are frozen and
  off the gradient path; full-size encoders add memory, not step time beyond prompt encoding).
The reward is a full-size ImageReward with random weights. Prints one JSON line per
configuration; ``--matrix`` runs {full, LoRA} x {no, gradient checkpointing} x {ReFL, DRaFT-K
K=1, K=4}, each in a fresh process so peak memory is measured cleanly.

    python benchmarks/refl_step.py --matrix                    # SD 1.5 at 512 px, on a CUDA machine
    python benchmarks/refl_step.py --family sd3 --matrix       # SD3-medium at 1024 px
    python benchmarks/refl_step.py --smoke                     # CPU: tiny components, both families
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

import torch

from imreward.refl import ReFLConfig, ReFLTrainer, build_random_pipeline, build_random_sd3_pipeline, cast_pipeline

FULL_SIZE = {"sd": "sd15", "sd3": "sd3-medium"}
DEFAULTS = {"sd": dict(resolution=512, num_inference_steps=40), "sd3": dict(resolution=1024, num_inference_steps=28)}
METHODS = (["--method", "refl"], ["--method", "draft-k", "--backprop-steps", "1"],
           ["--method", "draft-k", "--backprop-steps", "4"])


def build_pipeline(family: str, preset: str, resolution: int):
    if family == "sd3":
        return build_random_sd3_pipeline(preset, image_size=resolution)
    return build_random_pipeline(preset, image_size=resolution)


def random_reward(preset: str) -> torch.nn.Module:
    """ImageReward with random weights: full size with full-size generators, the tiny test model with ``tiny``."""
    from imreward.config import ImageRewardConfig
    from imreward.models.image_reward import ImageReward
    from imreward.testing import tiny_model
    from imreward.tokenizer import PromptTokenizer, packaged_vocab_file

    if preset == "tiny":
        return tiny_model()
    return ImageReward(ImageRewardConfig(), PromptTokenizer.from_vocab(packaged_vocab_file())).eval()


def run(args: argparse.Namespace) -> dict:
    cuda = torch.cuda.is_available()
    mixed_precision = args.mixed_precision or ("bf16" if cuda else "no")
    prompts = [f"a photograph of object number {index}, highly detailed" for index in range(64)]
    with tempfile.TemporaryDirectory() as output_dir:
        config = ReFLConfig(
            output_dir=output_dir, resolution=args.resolution, batch_size=args.batch_size,
            max_steps=args.warmup + args.steps, num_inference_steps=args.num_inference_steps,
            refl_step_range=tuple(args.refl_step_range) if args.refl_step_range else None,
            method=args.method, backprop_steps=args.backprop_steps, lora_rank=args.lora_rank if args.lora else 0,
            gradient_checkpointing=args.grad_checkpointing, mixed_precision=mixed_precision)
        pipeline = cast_pipeline(build_pipeline(args.family, args.preset, args.resolution), config.frozen_dtype,
                                 config.denoiser_dtype)  # the dtypes load_pipeline would read a folder in
        trainer = ReFLTrainer(pipeline, random_reward(args.preset), config, prompts)
        for _ in range(args.warmup):
            trainer.train_step()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step()
        if cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
    trainable = sum(parameter.numel() for parameter in trainer.trainable)
    return {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "family": args.family, "preset": args.preset, "resolution": args.resolution, "batch_size": args.batch_size,
        "method": args.method, "backprop_steps": config.max_backprop_steps if args.method != "refl" else None,
        "lora": args.lora, "grad_checkpointing": args.grad_checkpointing, "mixed_precision": mixed_precision,
        "guidance_scale": trainer.guidance_scale,
        "num_inference_steps": args.num_inference_steps, "refl_step_range": list(config.step_window),
        "trainable_parameters": trainable, "steps": args.steps,
        "steps_per_s": round(args.steps / elapsed, 4), "seconds_per_step": round(elapsed / args.steps, 3),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "peak_process_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(FULL_SIZE), default="sd")
    parser.add_argument("--preset", choices=["full", "tiny"], default="full",
                        help="full: SD-1.5 or SD3-medium sizes; tiny: the unit-test sizes")
    parser.add_argument("--resolution", type=int, default=None, help="default: 512 (sd), 1024 (sd3)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--num-inference-steps", type=int, default=None, help="default: 40 (sd), 28 (sd3)")
    parser.add_argument("--refl-step-range", type=int, nargs=2, default=None, help="default: the last quarter")
    parser.add_argument("--method", choices=["refl", "draft-k", "alignprop"], default="refl")
    parser.add_argument("--backprop-steps", type=int, default=None)
    parser.add_argument("--lora", action="store_true")
    parser.add_argument("--lora-rank", type=int, default=64)
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default=None,
                        help="default: bf16 on CUDA, no on CPU")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--matrix", action="store_true",
                        help="{full, LoRA} x {no, gradient checkpointing} x {refl, draft-k K=1, K=4}")
    parser.add_argument("--smoke", action="store_true",
                        help="CPU check of the script: the matrix on tiny components of both families, 1 step")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The options of ``argv`` with the family's defaults filled in (what ``run`` takes)."""
    args = build_parser().parse_args(argv)
    args.preset = FULL_SIZE[args.family] if args.preset == "full" else "tiny"
    args.resolution = args.resolution or DEFAULTS[args.family]["resolution"]
    args.num_inference_steps = args.num_inference_steps or DEFAULTS[args.family]["num_inference_steps"]
    return args


def matrix_flags() -> list[list[str]]:
    return [method + flags for method in METHODS
            for flags in ([], ["--grad-checkpointing"], ["--lora"], ["--lora", "--grad-checkpointing"])]


def main() -> None:
    args = parse_args(sys.argv[1:])
    if args.smoke:  # in one process: peak memory figures are meaningless here, only the code path is checked
        torch.set_num_threads(args.threads or 1)
        for family, resolution in (("sd", "32"), ("sd3", "16")):
            for flags in matrix_flags():
                smoke = ["--family", family, "--preset", "tiny", "--resolution", resolution, "--num-inference-steps",
                         "4", "--steps", "1", "--warmup", "0", "--lora-rank", "4", *flags]
                print(json.dumps(run(parse_args(smoke))), flush=True)
        return
    if args.matrix:
        base = [arg for arg in sys.argv[1:] if arg not in ("--matrix", "--lora", "--grad-checkpointing")]
        for flags in matrix_flags():
            subprocess.run([sys.executable, __file__, *base, *flags], check=True)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
