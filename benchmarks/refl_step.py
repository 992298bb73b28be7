"""ReFL training-step throughput and peak memory with random-weight components.

Default: SD-1.5-sized UNet/VAE/text encoder and a full-size ImageReward (random weights) at
512 px, the paper's sampler (40 steps, gradient step in [30, 39]). Prints one JSON line per
configuration; ``--matrix`` runs {full, LoRA} x {no, gradient checkpointing}, each in a fresh
process so peak memory is measured cleanly.

    python benchmarks/refl_step.py --matrix                      # on a CUDA machine
    python benchmarks/refl_step.py --preset tiny --resolution 32 --steps 2 --matrix   # CPU smoke run
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

from imreward.refl import ReFLConfig, ReFLTrainer, build_random_pipeline


def random_reward(preset: str) -> torch.nn.Module:
    """ImageReward with random weights: full size for ``sd15``, the tiny test model otherwise."""
    from imreward.config import ImageRewardConfig
    from imreward.models.image_reward import ImageReward
    from imreward.testing import tiny_model
    from imreward.tokenizer import PromptTokenizer, packaged_vocab_file

    if preset != "sd15":
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
            refl_step_range=tuple(args.refl_step_range), lora_rank=args.lora_rank if args.lora else 0,
            gradient_checkpointing=args.grad_checkpointing, mixed_precision=mixed_precision)
        trainer = ReFLTrainer(build_random_pipeline(args.preset, image_size=args.resolution),
                              random_reward(args.preset), config, prompts)
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
        "preset": args.preset, "resolution": args.resolution, "batch_size": args.batch_size,
        "lora": args.lora, "grad_checkpointing": args.grad_checkpointing, "mixed_precision": mixed_precision,
        "num_inference_steps": args.num_inference_steps, "refl_step_range": list(args.refl_step_range),
        "trainable_parameters": trainable, "steps": args.steps,
        "steps_per_s": round(args.steps / elapsed, 4), "seconds_per_step": round(elapsed / args.steps, 3),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "peak_process_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["sd15", "tiny"], default="sd15")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--num-inference-steps", type=int, default=40)
    parser.add_argument("--refl-step-range", type=int, nargs=2, default=(30, 39))
    parser.add_argument("--lora", action="store_true")
    parser.add_argument("--lora-rank", type=int, default=64)
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default=None,
                        help="default: bf16 on CUDA, no on CPU")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--matrix", action="store_true", help="all four LoRA x checkpointing combinations")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    if args.matrix:
        base = [arg for arg in sys.argv[1:] if arg not in ("--matrix", "--lora", "--grad-checkpointing")]
        for flags in ([], ["--grad-checkpointing"], ["--lora"], ["--lora", "--grad-checkpointing"]):
            subprocess.run([sys.executable, __file__, *base, *flags], check=True)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
