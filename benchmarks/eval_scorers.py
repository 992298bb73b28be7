"""Speed of the evaluation pieces: metrics with bootstrap intervals on the real test.json layout,
and scoring throughput of the full-size baseline architectures (random weights, no download).

    python benchmarks/eval_scorers.py --scorers CLIP,BLIP,Aesthetic --batch-size 32 --batches 5   # GPU
    python benchmarks/eval_scorers.py --scorers CLIP --batch-size 4 --batches 2                   # CPU, small
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

TEST_JSON = Path("/work/shared/reference-data/test.json")


def time_metrics(n_resamples: int) -> dict[str, float]:
    from imreward.eval.metrics import evaluate

    records = json.loads(TEST_JSON.read_text())
    rankings = [record["ranking"] for record in records]
    rng = np.random.default_rng(0)
    scores = [list(rng.random(len(ranking))) for ranking in rankings]
    start = time.perf_counter()
    evaluate(rankings, scores, n_resamples=n_resamples)
    return {"prompts": len(rankings), "n_resamples": n_resamples, "seconds": time.perf_counter() - start}


def full_size_scorer(name: str):
    """The published architecture with random weights."""
    import open_clip

    from imreward.config import ImageRewardConfig
    from imreward.models.aesthetic_score import AESTHETIC_HEAD, AestheticScore
    from imreward.models.blip_score import BLIPScore
    from imreward.models.clip_score import CLIPScore
    from imreward.models.head import RewardHead
    from imreward.tokenizer import PromptTokenizer, packaged_vocab_file

    if name == "BLIP":
        return BLIPScore(ImageRewardConfig(), PromptTokenizer.from_vocab(packaged_vocab_file()))
    clip_model = open_clip.create_model("ViT-L-14", force_quick_gelu=True).eval()
    if name == "CLIP":
        return CLIPScore(clip_model)
    return AestheticScore(clip_model, RewardHead(768, AESTHETIC_HEAD))


def time_scorer(name: str, device: torch.device, batch_size: int, batches: int) -> dict[str, float]:
    scorer = full_size_scorer(name).to(device).eval()
    pixels = torch.rand(batch_size, 3, scorer.image_size, scorer.image_size, device=device)
    text = {k: v.to(device) for k, v in scorer.encode_prompts(["a photo of a cat on a red sofa"] * batch_size).items()}
    with torch.inference_mode():
        scorer(pixels, **text)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(batches):
            scorer(pixels, **text)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"scorer": name, "device": str(device), "batch_size": batch_size,
            "images_per_second": batch_size * batches / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorers", default="CLIP,BLIP,Aesthetic")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(json.dumps({"metrics": time_metrics(args.bootstrap)}))
    for name in filter(None, args.scorers.split(",")):
        print(json.dumps(time_scorer(name, torch.device(args.device), args.batch_size, args.batches)))


if __name__ == "__main__":
    main()
