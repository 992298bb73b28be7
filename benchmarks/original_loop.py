"""Times the original ImageReward's one-image scoring loop; run with the oracle environment's python
(``scripts/oracle_env.sh``). Prints one JSON line: {"images_per_s": ..., "device": ...}.

Usage: ORACLE_PYTHON benchmarks/original_loop.py CHECKPOINT.pt MED_CONFIG.json VOCAB.txt DEVICE IMAGE...
"""

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from make_golden import load_original  # noqa: E402

PROMPT = "a painting of an ocean with clouds and birds, day time, low depth field effect"


def main() -> None:
    checkpoint, med_config, vocab, device, *images = sys.argv[1:]
    load = load_original(Path(vocab))
    model = load(checkpoint, device=device, med_config=med_config)
    with torch.no_grad():
        model.score(PROMPT, images[0])  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for image in images:
            model.score(PROMPT, image)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    print(json.dumps({"images_per_s": len(images) / elapsed, "device": device, "images": len(images)}))


if __name__ == "__main__":
    main()
