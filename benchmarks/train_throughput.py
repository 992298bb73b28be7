"""Training throughput (pairs/s): prompt-grouped steps against the original per-pair step.

The grouped step (``imreward train``) encodes each image of a prompt once and scores all its pairs
from those rewards. The original ImageReward step encodes both images of every pair separately,
so an image in m pairs is encoded m times; it is emulated here with the same model and optimizer.
Each step is forward + backward + Adam on random pixels, for each freeze ratio.

    python benchmarks/train_throughput.py                       # GPU: published size, bf16 autocast
    python benchmarks/train_throughput.py --model small          # CPU-sized model (fp32 on CPU)

Prints one JSON line per (freeze ratio, step kind) and a summary table.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext

import torch

from imreward.config import ImageRewardConfig
from imreward.data import ranked_pairs
from imreward.data.synthetic import small_model_config
from imreward.train.freezing import freeze
from imreward.train.loss import pairwise_loss
from imreward.train.model_init import from_scratch


def grouped_step(model, pixels, text, better, worse):
    rewards = model(pixels, **text)
    return pairwise_loss(rewards, better, worse).total / better.numel()


def per_pair_step(model, pixels, text, better, worse):
    """The original: every pair encodes its preferred and its other image, each in its own forward."""
    reward_better = model(pixels[better], **{k: v[better] for k, v in text.items()})
    reward_worse = model(pixels[worse], **{k: v[worse] for k, v in text.items()})
    count = better.numel()
    return pairwise_loss(torch.cat([reward_better, reward_worse]), torch.arange(count, device=pixels.device),
                         torch.arange(count, 2 * count, device=pixels.device)).total / count


def measure(model, step, batch, steps: int, warmup: int, autocast) -> float:
    """Seconds per optimizer step."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    device = batch[0].device
    for index in range(warmup + steps):
        if index == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with autocast():
            loss = step(model, *batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["published", "small"], default=None,
                        help="published = ViT-L + BERT-base (default on GPU); small = the synthetic-task model")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--prompts", type=int, default=None, help="prompts per step (default 4 GPU, 8 CPU)")
    parser.add_argument("--images-per-prompt", type=int, default=6, help="k ranked images: k(k-1)/2 pairs")
    parser.add_argument("--freeze-ratios", type=float, nargs="+", default=[0.0, 0.7])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precision", choices=["bf16", "fp32"], default=None, help="default: bf16 on GPU")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    return parser


def run(args: argparse.Namespace) -> list[dict]:
    """One row per (freeze ratio, step kind): seconds per step, pairs/s, peak memory on CUDA."""
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    config = (ImageRewardConfig() if (args.model or ("published" if on_gpu else "small")) == "published"
              else small_model_config())
    prompts = args.prompts or (4 if on_gpu else 8)
    precision = args.precision or ("bf16" if on_gpu else "fp32")

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

    torch.manual_seed(0)
    model = from_scratch(config).to(device).train()
    if args.gradient_checkpointing:
        model.blip.set_grad_checkpointing(True)
    k = args.images_per_prompt
    size = config.vision.image_size
    pixels = torch.randn(prompts * k, 3, size, size, device=device)
    text = {key: value.to(device) for key, value in model.encode_prompts(
        [f"prompt number {i // k} with a few words" for i in range(prompts * k)]).items()}
    pairs = [(p * k + b, p * k + w) for p in range(prompts) for b, w in ranked_pairs(list(range(k)))]
    better = torch.tensor([b for b, _ in pairs], device=device)
    worse = torch.tensor([w for _, w in pairs], device=device)
    rows = []
    if on_gpu:  # each row's peak is its own, not what the process allocated before (the GPU suite runs others first)
        torch.cuda.reset_peak_memory_stats(device)
    for ratio in args.freeze_ratios:
        summary = freeze(model, ratio)
        for name, step in (("grouped", grouped_step), ("per_pair", per_pair_step)):
            seconds = measure(model, step, (pixels, text, better, worse), args.steps, args.warmup, autocast)
            row = {"device": torch.cuda.get_device_name(device) if on_gpu else "cpu", "model": f"{size}px "
                   f"ViT d{config.vision.depth} w{config.vision.width}", "precision": precision,
                   "freeze_ratio": ratio, "trainable_params": summary.trainable, "step": name,
                   "prompts": prompts, "pairs_per_step": len(pairs), "seconds_per_step": float(f"{seconds:.4g}"),
                   "pairs_per_second": float(f"{len(pairs) / seconds:.4g}")}
            if on_gpu:
                row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                torch.cuda.reset_peak_memory_stats(device)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def main() -> None:
    args = build_parser().parse_args()
    rows = run(args)
    print(f"\n{'freeze':>6} {'grouped pairs/s':>16} {'per-pair pairs/s':>17} {'speed-up':>9}")
    for ratio in args.freeze_ratios:
        grouped, per_pair = (next(r["pairs_per_second"] for r in rows if r["freeze_ratio"] == ratio
                                  and r["step"] == kind) for kind in ("grouped", "per_pair"))
        print(f"{ratio:>6} {grouped:>16} {per_pair:>17} {grouped / per_pair:>8.2f}x")


if __name__ == "__main__":
    main()
