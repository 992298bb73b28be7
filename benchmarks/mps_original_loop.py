"""Times MPS's original ``infer_one_sample`` loop (float32, CPU); run with the oracle environment's
python by benchmarks/mps_throughput.py. Prints one JSON line {"images_per_s": ..., "scores": [...]}.

Usage: ORACLE_PYTHON benchmarks/mps_original_loop.py MPS_SRC BASE_FOLDER WEIGHTS.safetensors IMAGE...
"""

import json
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

PROMPT = "a painting of an ocean with clouds and birds, day time, low depth field effect"


def main() -> None:
    source, base, weights, *images = sys.argv[1:]
    sys.path.insert(0, source)
    from mps_eval import infer_one_sample
    from trainer.models.clip_model import CLIPModel
    from transformers import AutoTokenizer, CLIPImageProcessor

    model = CLIPModel(str(Path(base) / "config.json"))
    state = load_file(weights)
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys or not all(k.endswith("position_ids") for k in result.missing_keys):
        raise SystemExit(f"weights do not match the original model: {result}")
    model.eval()
    processor, tokenizer = CLIPImageProcessor.from_pretrained(base), AutoTokenizer.from_pretrained(base)
    torch.Tensor.half = lambda self, *a, **k: self
    infer_one_sample(images[0], PROMPT, model, processor, tokenizer, "cpu")  # warm-up
    start = time.perf_counter()
    scores = [float(infer_one_sample(image, PROMPT, model, processor, tokenizer, "cpu")[0]) for image in images]
    print(json.dumps({"images_per_s": len(images) / (time.perf_counter() - start), "scores": scores}))


if __name__ == "__main__":
    main()
