"""Golden values from MPS's original code, for tests/core/test_mps.py.

Kwai-Kolors/MPS publishes its model code only as compiled .pyc files; its eval scripts
(``eval_overall_mps_on_hpdv2.py``, ``infer_one_sample``) are source. The reference here is:
``trainer/models/clip_model.py`` and ``trainer/models/cross_modeling.py`` as found in public copies
of MPS's trainer (the classes the published pickle names), plus ``infer_one_sample`` from the eval
script, all kept outside this repository in a folder passed as ``--mps-src``, run with
transformers 4.45.2 (the environment ``scripts/oracle_env_hpsv3.sh`` builds).
The eval script casts images and the mask to float16 for a float16 CUDA model; here
``Tensor.half`` is made the identity so the same code runs the float32 model on the CPU.

The model is reduced (CLIP 2+2 layers of width 32, projection 64; fusion 2 layers, 4 heads of 16,
ff_mult 2; the published one is ViT-H/14 with a 4-layer, 16-head fusion block of width 1024), its
tensors drawn from ``imreward/_seeded_weights.py`` by name. The tokenizer is CLIP's real BPE
vocabulary (``imreward/_clip_vocab.py``). It writes under ``tests/golden/mps/``: ``base/``
(config.json, preprocessor_config.json), ``published_keys.json`` (the original state dict's names
and shapes) and ``scores.json`` (token ids, pixel statistics and scores per prompt and image).

Usage: PYTHONPATH=MPS_SRC python scripts/make_golden_mps.py --mps-src MPS_SRC [--out tests/golden/mps]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SALT = 2026
IMAGES = REPO / "tests/golden/images"
PROMPTS = [
    "a painting of an ocean with clouds and birds, day time, low depth field effect",
    "A highly detailed portrait of an old wizard with a long white beard, wearing a starry blue robe, "
    "holding a glowing crystal staff, standing in an ancient library full of floating books, "
    "cinematic lighting, trending on artstation, 8k, ultra sharp focus, dramatic shadows, volumetric light",
    "Un café crème naïve — 一只可爱的猫 🐱 Ünïcödé ñandú &amp; friends",
    "",
]
PREPROCESSOR = {  # laion/CLIP-ViT-H-14-laion2B-s32B-b79K's preprocessor_config.json
    "crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224,
}
FUSION = {"dim": 64, "layer_num": 2, "dim_head": 16, "heads": 4, "ff_mult": 2}


def load_by_path(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "imreward" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bpe_file() -> Path:
    return Path(importlib.util.find_spec("open_clip").submodule_search_locations[0]) / "bpe_simple_vocab_16e6.txt.gz"


def write_base(folder: Path) -> None:
    from transformers import CLIPConfig

    folder.mkdir(parents=True, exist_ok=True)
    config = CLIPConfig(
        text_config={"vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 77, "hidden_act": "gelu",
                     "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 224, "patch_size": 14, "hidden_act": "gelu"},
        projection_dim=FUSION["dim"])
    config.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mps-src", type=Path, required=True, help="folder holding trainer/ and mps_eval.py")
    parser.add_argument("--out", type=Path, default=REPO / "tests/golden/mps")
    args = parser.parse_args()
    sys.path.insert(0, str(args.mps_src))
    torch.set_num_threads(1)
    import transformers
    from transformers import AutoTokenizer, CLIPImageProcessor
    from mps_eval import infer_one_sample
    from trainer.models.clip_model import CLIPModel
    from trainer.models.cross_modeling import Cross_model

    base = args.out / "base"
    write_base(base)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = AutoTokenizer.from_pretrained(load_by_path("_clip_vocab").write_clip_tokenizer(bpe_file(), tmp))
        processor = CLIPImageProcessor.from_pretrained(base)
        model = CLIPModel(str(base / "config.json"))
        model.cross_model = Cross_model(**FUSION)
        shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
        model.load_state_dict(load_by_path("_seeded_weights").seeded_state_dict(shapes, salt=SALT))
        model.eval()
        torch.Tensor.half = lambda self, *a, **k: self  # float32 on the CPU (see the module docstring)
        images = sorted(IMAGES.iterdir())
        scores = {p: {i.name: float(infer_one_sample(str(i), p, model, processor, tokenizer, "cpu")[0]) for i in images}
                  for p in PROMPTS}
        tokens = {p: tokenizer(p, max_length=tokenizer.model_max_length, padding="max_length",
                               truncation=True).input_ids for p in PROMPTS}
        pixels = {}
        for image in images:
            from PIL import Image

            values = processor(Image.open(image).convert("RGB"), return_tensors="pt")["pixel_values"][0].double()
            pixels[image.name] = {"sum": float(values.sum()), "sum_sq": float((values ** 2).sum()),
                                  "corner": values[:, :2, :2].flatten().tolist()}
    (args.out / "published_keys.json").write_text(json.dumps({k: list(v) for k, v in shapes.items()}, indent=0))
    (args.out / "scores.json").write_text(json.dumps({
        "salt": SALT, "fusion": FUSION, "torch": torch.__version__,
        "original": f"MPS trainer code (public copies of trainer/models/*.py) + eval_overall_mps_on_hpdv2.py "
                    f"infer_one_sample, transformers {transformers.__version__}, fp32 CPU",
        "scores": scores, "tokens": tokens, "pixels": pixels}, indent=1, ensure_ascii=False))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
