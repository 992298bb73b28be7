"""Golden scores from the original CLIP-family scorers, for tests/models/test_clip_family.py.

Two original environments, one per command:

- ``imagereward`` (``scripts/oracle_env.sh``: image-reward 1.5 with OpenAI's CLIP, transformers
  4.30.2): ``ImageReward.load_score("CLIP" | "BLIP" | "Aesthetic")`` and PickScore's published usage
  (transformers ``CLIPModel`` + ``AutoProcessor``, score = ``logit_scale.exp() * text @ image``);
- ``hpsv2`` (``scripts/oracle_env_hpsv2.sh``: hpsv2 1.2.0 with its own open_clip):
  ``hpsv2.img_score.score(image, prompt, cp=...)``.

Each model runs at reduced width and depth (``--size tiny``, the committed goldens) or at its
published size (``--size full``), with every tensor drawn from a seed of its name
(``tests/models/clip_fixtures.py``), saved in the published file layout and read by the
original's own loader. Only the originals' downloads are bypassed: the files are already in place
(OpenAI's ``_download`` checksum, hpsv2's base-weights download, ``bert-base-uncased``). Writes
``OUT/<model>/scores.json``: the original's parameter shapes, token ids, scores and rankings.

Usage: ORACLE_PYTHON scripts/make_golden_clip.py {imagereward,hpsv2} --vocab VOCAB.txt [--size full --out DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SALT = 2025
IMAGES = REPO / "tests" / "golden" / "images"
# shared/ lies beside the repository (a git worktree sits one level deeper).
REFERENCE_IMAGES = next((p / "shared" / "reference-data" / "images" for p in REPO.parents[:2]
                         if (p / "shared" / "reference-data" / "images").is_dir()), REPO / "missing")
PROMPTS = [
    "a painting of an ocean with clouds and birds, day time, low depth field effect",
    "A highly detailed portrait of an old wizard with a long white beard, wearing a starry blue robe, "
    "holding a glowing crystal staff, standing in an ancient library full of floating books, "
    "cinematic lighting, trending on artstation, 8k",
    "an extremely long prompt " + " ".join(f"with detail number {i}, sharp focus," for i in range(20)),
    "Un café crème naïve — 一只可爱的猫 🐱 Ünïcödé ñandú &amp; <b>html</b>",
    "",
]
TINY_OPENAI_CLIP = dict(embed_dim=768, image_resolution=32, vision_layers=2, vision_width=64, vision_patch_size=8,
                        context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1,
                        transformer_layers=2)
FULL_OPENAI_CLIP = dict(embed_dim=768, image_resolution=224, vision_layers=24, vision_width=1024, vision_patch_size=14,
                        context_length=77, vocab_size=49408, transformer_width=768, transformer_heads=12,
                        transformer_layers=12)
AESTHETIC_SCALES = {"layers.7.weight": 1000.0}  # spreads the tiny model's ratings over a few units
TINY_BLIP_VIT = dict(img_size=224, patch_size=16, embed_dim=32, depth=2, num_heads=2)
TINY_MED_CONFIG = {"architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
                   "hidden_dropout_prob": 0.1, "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 64,
                   "layer_norm_eps": 1e-12, "max_position_embeddings": 64, "model_type": "bert",
                   "num_attention_heads": 2, "num_hidden_layers": 2, "pad_token_id": 0, "type_vocab_size": 2,
                   "vocab_size": 30524, "encoder_width": 32, "add_cross_attention": True}
TINY_OPEN_CLIP = {"embed_dim": 16, "vision_cfg": {"image_size": 224, "layers": 2, "width": 32, "head_width": 16,
                                                  "patch_size": 32},
                  "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}
TINY_PICKSCORE_TEXT = dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2,
                           max_position_embeddings=77, vocab_size=49408, hidden_act="gelu")
TINY_PICKSCORE_VISION = dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2,
                             image_size=224, patch_size=32, hidden_act="gelu")


def fixtures():
    spec = importlib.util.spec_from_file_location("clip_fixtures", REPO / "tests" / "models" / "clip_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# At full size (about 2-10 s per image on one core) only a subset is scored.
FULL_SIZE_IMAGES = ("rgb_480x640.jpg", "l_300x1000.png", "p_320x256.gif", "rgb_53x97.webp")
FULL_SIZE = False


def image_list() -> list[tuple[str, str]]:
    images = [(p.name, str(p)) for p in sorted(IMAGES.iterdir())]
    if FULL_SIZE:
        return [(name, path) for name, path in images if name in FULL_SIZE_IMAGES]
    return images + [(f"reference/{p.name}", str(p)) for p in sorted(REFERENCE_IMAGES.glob("*.webp"))]


def score_all(score, prompts=PROMPTS) -> list[dict]:
    """The original's one-image loop over every (prompt, image); prints its throughput."""
    rows = []
    prompts = prompts[2:4] if FULL_SIZE and len(prompts) > 1 else prompts  # > 77 tokens; unicode
    start = time.perf_counter()
    with torch.no_grad():
        for prompt in prompts:
            for label, path in image_list():
                try:
                    value = float(score(prompt, path))
                except Exception as error:  # the original fails on some inputs: record how
                    rows.append({"prompt": prompt, "image": label, "error": f"{type(error).__name__}: {error}"[:200]})
                    continue
                rows.append({"prompt": prompt, "image": label, "score": value})
    print(f"TIMING {len(rows) / (time.perf_counter() - start):.3f} images/s", flush=True)
    return rows


def write(out: Path, name: str, golden: dict) -> None:
    (out / name).mkdir(parents=True, exist_ok=True)
    golden = {"salt": SALT, "torch": torch.__version__, **golden}
    (out / name / "scores.json").write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n")
    scores = [row["score"] for row in golden["scores"] if "score" in row]
    print(f"{name}: {len(scores)} scores, {len(golden['scores']) - len(scores)} errors, "
          f"range {min(scores):.4f}..{max(scores):.4f}", flush=True)


# ---- image-reward 1.5 (CLIP, BLIP, Aesthetic) and PickScore -------------------------------------

def import_image_reward(vocab: Path):
    """The original package (``make_golden.import_original``) with OpenAI's CLIP, and downloads of
    files already present skipped."""
    import clip
    from make_golden import import_original

    clip.clip._download = lambda url, root: os.path.join(root, os.path.basename(url))  # skip the checksum
    utils, blip_pretrain = import_original(vocab)
    utils.ImageReward_download = lambda url, root: os.path.join(root, os.path.basename(url))
    return utils, blip_pretrain


def rank(model, prompt: str) -> dict | None:
    if FULL_SIZE:
        return None
    labels = [label for label, _ in image_list() if label.startswith("reference/")]
    paths = [path for label, path in image_list() if label.startswith("reference/")]
    with torch.no_grad():
        ranking, rewards = model.inference_rank(prompt, paths)
    return {"prompt": prompt, "images": labels, "ranking": ranking, "rewards": rewards}


def golden_image_reward(args, fx) -> None:
    import clip

    utils, blip_pretrain = import_image_reward(args.vocab)
    from ImageReward.models.AestheticScore import MLP
    root = Path(tempfile.mkdtemp(prefix="golden-clip-"))
    full = args.size == "full"
    # CLIP ViT-L/14 (OpenAI's layout) for the CLIP score and the aesthetic predictor.
    with torch.device("meta"):
        shapes_model = clip.model.CLIP(**(FULL_OPENAI_CLIP if full else TINY_OPENAI_CLIP))
    clip_shapes = {k: list(v.shape) for k, v in shapes_model.state_dict().items()}
    del shapes_model
    fx.write_openai_clip(root / "ViT-L-14.pt", fx.seeded_checkpoint(clip_shapes, SALT),
                         fx.openai_clip_image_size(clip_shapes))
    model = utils.load_score("CLIP", device="cpu", download_root=str(root))
    tokens = {p: clip.tokenize(p, truncate=True)[0].tolist() for p in PROMPTS}
    write(args.out, "clip", {"original": "image-reward 1.5 load_score('CLIP') (openai-clip 1.0.1), fp32 CPU",
                             "size": args.size, "shapes": clip_shapes, "tokens": tokens,
                             "scores": score_all(model.score), "rank": rank(model, PROMPTS[0])})
    mlp_shapes = {k: list(v.shape) for k, v in MLP(768).state_dict().items()}
    torch.save(fx.seeded_checkpoint(mlp_shapes, SALT, AESTHETIC_SCALES), root / "sac+logos+ava1-l14-linearMSE.pth")
    os.link(root / "sac+logos+ava1-l14-linearMSE.pth", root / "sac%2Blogos%2Bava1-l14-linearMSE.pth")
    model = utils.load_score("Aesthetic", device="cpu", download_root=str(root))
    write(args.out, "aesthetic", {"original": "image-reward 1.5 load_score('Aesthetic'), fp32 CPU", "size": args.size,
                                  "shapes": mlp_shapes, "scales": AESTHETIC_SCALES,
                                  "scores": score_all(model.score, PROMPTS[:1]), "rank": rank(model, PROMPTS[0])})
    del model
    golden_blip(args, fx, utils, blip_pretrain, root)
    golden_pickscore(args, fx, root)


def golden_blip(args, fx, utils, blip_pretrain, root: Path) -> None:
    from ImageReward.models.BLIP.vit import VisionTransformer

    med_config = TINY_MED_CONFIG if args.size == "tiny" else json.loads((REPO / "tests/golden/med_config.json").read_text())
    (root / "med_config.json").write_text(json.dumps(med_config))
    if args.size == "tiny":
        def tiny_vit(vit, image_size, *unused, **unused_kw):
            return VisionTransformer(**TINY_BLIP_VIT), TINY_BLIP_VIT["embed_dim"]
        blip_pretrain.create_vit = tiny_vit
    shapes_model = blip_pretrain.BLIP_Pretrain(image_size=224, vit="large", med_config=str(root / "med_config.json"))
    shapes = {k: list(v.shape) for k, v in shapes_model.state_dict().items()}
    del shapes_model
    state = fx.seeded_checkpoint(shapes, SALT)
    # Pre-training entries of model_large.pth that the score ignores.
    fx.write_blip(root / "model_large.pth", {**state, "temp": torch.tensor(0.07), "text_queue": torch.zeros(256, 8)})
    model = utils.load_score("BLIP", device="cpu", download_root=str(root))
    tokens = {p: model.blip.tokenizer(p, padding="max_length", truncation=True, max_length=35)["input_ids"]
              for p in PROMPTS}
    write(args.out, "blip", {"original": "image-reward 1.5 load_score('BLIP'), transformers 4.30.2, fp32 CPU",
                             "size": args.size, "shapes": shapes, "med_config": med_config,
                             "vit": TINY_BLIP_VIT if args.size == "tiny" else None, "tokens": tokens,
                             "scores": score_all(model.score), "rank": rank(model, PROMPTS[0])})


def golden_pickscore(args, fx, root: Path) -> None:
    """PickScore's published usage (its README's ``calc_probs`` without the softmax)."""
    import open_clip  # only for the location of OpenAI's BPE merges file
    from PIL import Image
    from transformers import AutoProcessor, CLIPConfig, CLIPModel

    processor_folder, model_folder = root / "processor", root / "pickscore"
    fx.write_clip_processor(processor_folder, Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz")
    if args.size == "tiny":
        config = CLIPConfig(text_config=TINY_PICKSCORE_TEXT, vision_config=TINY_PICKSCORE_VISION, projection_dim=16)
    else:
        config = CLIPConfig(text_config=dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16,
                                             num_hidden_layers=24, hidden_act="gelu"),
                            vision_config=dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=16,
                                               num_hidden_layers=32, patch_size=14, hidden_act="gelu"),
                            projection_dim=1024)
    config_dict = config.to_dict()
    with torch.device("meta"):
        shapes = {k: list(v.shape) for k, v in CLIPModel(config).state_dict().items()}
    fx.write_pickscore(model_folder, config_dict, fx.seeded_checkpoint(shapes, SALT))
    processor = AutoProcessor.from_pretrained(str(processor_folder))
    model = CLIPModel.from_pretrained(str(model_folder)).eval().to("cpu")

    def score(prompt, path):
        image_inputs = processor(images=[Image.open(path)], padding=True, truncation=True, max_length=77,
                                 return_tensors="pt")
        text_inputs = processor(text=prompt, padding=True, truncation=True, max_length=77, return_tensors="pt")
        image_embs = model.get_image_features(**image_inputs)
        image_embs = image_embs / torch.norm(image_embs, dim=-1, keepdim=True)
        text_embs = model.get_text_features(**text_inputs)
        text_embs = text_embs / torch.norm(text_embs, dim=-1, keepdim=True)
        return (model.logit_scale.exp() * (text_embs @ image_embs.T)[0])[0].item()

    tokens = {p: processor(text=p, padding=True, truncation=True, max_length=77)["input_ids"] for p in PROMPTS}
    write(args.out, "pickscore", {"original": "PickScore published usage: transformers 4.30.2 CLIPModel + "
                                              "AutoProcessor (tokenizers 0.13.3), fp32 CPU",
                                  "size": args.size, "config": config_dict, "shapes": shapes, "tokens": tokens,
                                  "scores": score_all(score)})


# ---- hpsv2 1.2.0 -----------------------------------------------------------------------------

def golden_hpsv2(args, fx) -> None:
    import hpsv2.img_score as img_score
    from hpsv2.src.open_clip import factory

    if args.size == "tiny":
        factory._MODEL_CONFIGS["ViT-H-14"] = TINY_OPEN_CLIP
    create = img_score.create_model_and_transforms
    # The package first loads the laion2B base weights that the HPS checkpoint then replaces entirely.
    img_score.create_model_and_transforms = lambda name, pretrained, **kw: create(name, None, **kw)
    img_score.initialize_model()
    shapes = {k: list(v.shape) for k, v in img_score.model_dict["model"].state_dict().items()}
    root = Path(tempfile.mkdtemp(prefix="golden-hps-"))
    fx.write_hps(root / "HPS_v2_compressed.pt", fx.seeded_checkpoint(shapes, SALT))
    tokenizer = factory.get_tokenizer("ViT-H-14")
    tokens = {p: tokenizer([p])[0].tolist() for p in PROMPTS}
    checkpoint = str(root / "HPS_v2_compressed.pt")
    write(args.out, "hpsv2", {"original": "hpsv2 1.2.0 img_score.score (its vendored open_clip), fp32 CPU",
                              "size": args.size, "architecture": TINY_OPEN_CLIP if args.size == "tiny" else "ViT-H-14",
                              "shapes": shapes, "tokens": tokens,
                              "scores": score_all(lambda p, path: img_score.score(path, p, cp=checkpoint)[0])})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("original", choices=["imagereward", "hpsv2"])
    parser.add_argument("--vocab", type=Path, help="bert-base-uncased vocab.txt (imagereward only)")
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "golden")
    args = parser.parse_args()
    global FULL_SIZE
    FULL_SIZE = args.size == "full"
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.original == "imagereward":
        golden_image_reward(args, fixtures())
    else:
        golden_hpsv2(args, fixtures())


if __name__ == "__main__":
    main()
