"""Scoring throughput of the full-size MPS (CLIP ViT-H/14 + 4-layer fusion block, seeded weights).

Measures in one run on one machine, per dtype: images/s of ``score_batch`` from image files
(decode + preprocess + model) at ``--batch-size``; images/s of one image per forward, the loop
structure of MPS's eval scripts; and, with ``--original-python`` and ``--mps-src`` (see
scripts/make_golden_mps.py), the original code's own ``infer_one_sample`` loop on the same weights
(float32; its CUDA float16 casts made the identity on the CPU), with the largest score difference
between the two at full size.

    flock /tmp/imreward-heavy.lock python benchmarks/mps_throughput.py --images 8 --batch-size 8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image
from safetensors.torch import save_file

from imreward._clip_vocab import write_clip_tokenizer
from imreward._seeded_weights import seeded_state_dict
from imreward.models.mps import MPS, build_mps
from imreward.models.mps_fusion import PUBLISHED_RENAMES

VIT_H_14 = {  # laion/CLIP-ViT-H-14-laion2B-s32B-b79K's architecture
    "text_config": {"vocab_size": 49408, "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                    "num_attention_heads": 16, "max_position_embeddings": 77, "hidden_act": "gelu",
                    "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1},
    "vision_config": {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
                      "num_attention_heads": 16, "image_size": 224, "patch_size": 14, "hidden_act": "gelu"},
    "projection_dim": 1024, "model_type": "clip",
}
PREPROCESSOR = {"crop_size": 224, "size": 224, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3}
FUSION = {"layers": 4, "heads": 16, "head_dim": 64, "ff_mult": 4}
PROMPT = "a painting of an ocean with clouds and birds, day time, low depth field effect"


def published_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state.items():
        for old, new in PUBLISHED_RENAMES.items():
            key = key.replace(new, old)
        renamed[key] = value
    return renamed


def build(folder: Path) -> tuple[MPS, dict[str, torch.Tensor]]:
    from transformers import CLIPConfig

    CLIPConfig(**VIT_H_14).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))
    write_clip_tokenizer(Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz", folder)
    with torch.device("meta"):
        from transformers import AutoTokenizer

        shapes_model = MPS(CLIPConfig.from_pretrained(folder), AutoTokenizer.from_pretrained(folder), FUSION, 224,
                           PREPROCESSOR["image_mean"], PREPROCESSOR["image_std"])
    state = seeded_state_dict({k: v.shape for k, v in shapes_model.state_dict().items()}, salt=7)
    return build_mps(folder, state).eval(), state


def images_per_s(run, count: int) -> float:
    run(1)  # warm-up
    start = time.perf_counter()
    run(count)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--original-python", help="python of the oracle environment")
    parser.add_argument("--mps-src", help="folder with MPS's trainer/ and mps_eval.py")
    args = parser.parse_args()
    results = {"machine": f"{torch.get_num_threads()} CPU threads", "images": args.images}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        files = []
        for i in range(args.images):
            files.append(tmp / f"{i}.png")
            Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)).save(files[-1])
        started = time.perf_counter()
        model, state = build(tmp)
        results["build_s"] = time.perf_counter() - started
        model.float()
        reference = model.score_batch(PROMPT, files, batch_size=args.batch_size)
        for dtype in args.dtypes:
            model.to(getattr(torch, dtype))
            results[f"{dtype}_batched"] = images_per_s(
                lambda n: model.score_batch(PROMPT, files[:n], batch_size=args.batch_size), args.images)
            results[f"{dtype}_one_per_forward"] = images_per_s(
                lambda n: [model.score(PROMPT, f) for f in files[:n]], args.images)
            print(json.dumps(results), flush=True)
        if args.original_python and args.mps_src:
            weights = tmp / "published.safetensors"
            save_file({k: v.contiguous() for k, v in published_names(state).items()}, str(weights))
            del model, state
            script = Path(__file__).with_name("mps_original_loop.py")
            out = subprocess.run([args.original_python, str(script), args.mps_src, str(tmp), str(weights),
                                  *map(str, files)], capture_output=True, text=True, check=True)
            original = json.loads(out.stdout.strip().splitlines()[-1])
            results["float32_original_loop"] = original["images_per_s"]
            results["max_abs_score_difference_fp32"] = float(np.abs(np.subtract(original["scores"], reference)).max())
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
