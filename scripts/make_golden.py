"""Golden scores from the original ImageReward implementation, for the parity test.

Run it in a separate environment holding the original package (PyPI ``image-reward`` 1.5,
installed with ``--no-deps``) beside an older transformers; ``scripts/oracle_env.sh`` builds one.
It writes, under ``tests/golden/``:

- ``images/``: generated test images in varied sizes, modes and formats;
- ``published_keys.json``: the parameter names and shapes of the original model's state dict
  (the layout of the published ``ImageReward.pt``);
- ``scores.json``: the original's token ids, scores and rankings for every (prompt, image).

Weights are not stored: both sides rebuild the same full-size checkpoint with
``imreward/_seeded_weights.py`` (every tensor seeded by its name), loaded here by file path so this
script imports nothing else from imreward.

Usage: python scripts/make_golden.py --vocab VOCAB.txt [--out tests/golden]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SALT = 2024
REFERENCE_IMAGES = Path("reference-data/images")  # relative to the shared folder beside the repo

PROMPTS = [
    "a painting of an ocean with clouds and birds, day time, low depth field effect",
    "A highly detailed portrait of an old wizard with a long white beard, wearing a starry blue robe, "
    "holding a glowing crystal staff, standing in an ancient library full of floating books, "
    "cinematic lighting, trending on artstation, 8k",
    "Un café crème naïve — 一只可爱的猫 🐱 Ünïcödé ñandú",
    "",
]

MED_CONFIG = {
    "architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
    "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
    "num_hidden_layers": 12, "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": 30524,
    "encoder_width": 768, "add_cross_attention": True,
}


def _pattern(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth colour gradients, a few discs and light noise: structured, and compresses well."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin((x + y) / (7 + seed))], axis=-1)
    for _ in range(4):
        cy, cx, r = rng.rand() * height, rng.rand() * width, (0.1 + 0.3 * rng.rand()) * min(height, width)
        image[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.rand(3)
    image += rng.randn(height, width, 3).astype(np.float32) * 0.02
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_images(folder: Path) -> list[str]:
    """Varied sizes (smaller and larger than 224, portrait, landscape), modes and formats."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = lambda h, w, s: Image.fromarray(_pattern(h, w, s))  # noqa: E731
    alpha = lambda h, w, s: Image.fromarray(np.dstack([_pattern(h, w, s), _pattern(h, w, s + 50)[:, :, 0]]))  # noqa: E731
    images = {
        "rgb_480x640.jpg": (rgb(480, 640, 1), {"quality": 90}),
        "rgba_500x300.png": (alpha(500, 300, 2), {}),
        "la_200x200.png": (alpha(200, 200, 3).convert("LA"), {}),
        "l_300x1000.png": (rgb(300, 1000, 4).convert("L"), {}),
        "p_320x256.gif": (rgb(320, 256, 5).convert("P"), {}),
        "cmyk_260x240.jpg": (rgb(260, 240, 6).convert("CMYK"), {"quality": 90}),
        "i16_240x180.png": (Image.fromarray((_pattern(240, 180, 7)[:, :, 0].astype(np.uint16) * 257)), {}),
        "1bit_300x300.png": (rgb(300, 300, 8).convert("1"), {}),
        "rgb_53x97.webp": (rgb(53, 97, 9), {"quality": 90}),
        "rgb_224x224.bmp": (rgb(224, 224, 10), {}),
        "rgb_222x333.tiff": (rgb(222, 333, 11), {}),
    }
    for name, (image, options) in images.items():
        image.save(folder / name, **options)
    return sorted(images)


def import_original(vocab: Path):
    """The original package without its __init__ (which pulls CLIP, diffusers and datasets), with
    BLIP's tokenizer read from a local vocab.txt; returns its ``utils`` and ``blip_pretrain`` modules.
    Import or stub ``clip`` first."""
    spec = importlib.util.find_spec("ImageReward")
    package = types.ModuleType("ImageReward")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["ImageReward"] = package
    import ImageReward.models.BLIP.blip_pretrain as blip_pretrain
    from transformers import BertTokenizer

    def offline_tokenizer():  # the original calls BertTokenizer.from_pretrained('bert-base-uncased')
        tokenizer = BertTokenizer(str(vocab))
        tokenizer.add_special_tokens({"bos_token": "[DEC]"})
        tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
        tokenizer.enc_token_id = tokenizer.additional_special_tokens_ids[0]
        return tokenizer

    blip_pretrain.init_tokenizer = offline_tokenizer
    import ImageReward.utils as utils
    return utils, blip_pretrain


def load_original(vocab: Path):
    """The original's ``load``; ``clip`` is stubbed (ImageReward itself does not use it)."""
    sys.modules.setdefault("clip", types.ModuleType("clip"))
    utils, _ = import_original(vocab)
    return utils.load


def seeded_weights_module():
    spec = importlib.util.spec_from_file_location("_seeded_weights", REPO / "imreward" / "_seeded_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=Path, required=True, help="bert-base-uncased vocab.txt")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "golden")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = parser.parse_args()
    torch.manual_seed(0)
    names = write_images(args.out / "images")
    image_paths = [args.out / "images" / name for name in names]
    reference = sorted((args.shared / REFERENCE_IMAGES).glob("*.webp"))
    (args.out / "med_config.json").write_text(json.dumps(MED_CONFIG, indent=2) + "\n")

    load = load_original(args.vocab)
    from ImageReward.ImageReward import ImageReward as OriginalImageReward

    model = OriginalImageReward(med_config=str(args.out / "med_config.json"), device="cpu")
    shapes = {key: list(value.shape) for key, value in model.state_dict().items()}
    (args.out / "published_keys.json").write_text(json.dumps(shapes, indent=0) + "\n")
    state_dict = seeded_weights_module().seeded_state_dict(shapes, salt=SALT)
    checkpoint = args.out / "_seeded_checkpoint.pt"
    torch.save(state_dict, checkpoint)
    model = load(str(checkpoint), device="cpu", med_config=str(args.out / "med_config.json"))
    checkpoint.unlink()

    tokens = {}
    for prompt in PROMPTS:
        encoded = model.blip.tokenizer(prompt, padding="max_length", truncation=True, max_length=35)
        tokens[prompt] = encoded["input_ids"]
    scores = []
    with torch.no_grad():
        for prompt in PROMPTS:
            for path in image_paths + reference:
                label = path.name if path in image_paths else f"reference/{path.name}"
                scores.append({"prompt": prompt, "image": label, "score": model.score(prompt, str(path))})
                print(f"{scores[-1]['score']:+.6f}  {label}  {prompt[:40]!r}", flush=True)
        ranking, rewards = model.inference_rank(PROMPTS[0], [str(p) for p in reference])
    golden = {
        "salt": SALT,
        "original": "image-reward 1.5 (PyPI), transformers 4.30.2, timm 0.6.13, fp32 CPU",
        "torch": torch.__version__,
        "tokens": tokens,
        "scores": scores,
        "reference_rank": {"prompt": PROMPTS[0], "images": [f"reference/{p.name}" for p in reference],
                           "ranking": ranking, "rewards": rewards},
    }
    (args.out / "scores.json").write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
