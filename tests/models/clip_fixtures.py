"""Checkpoints in the CLIP-family scorers' published layouts, with every tensor drawn from a seed of
its name, and CLIP tokenizer files; shared by the tests and by ``scripts/make_golden_clip.py``,
which loads this file by path in the original implementations' environments (so it imports
nothing from imreward, and loads ``imreward/_seeded_weights.py`` by path too)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
from pathlib import Path

import torch

from imreward._clip_vocab import bytes_to_unicode

REPO = Path(__file__).resolve().parents[2]
LOGIT_SCALE = math.log(100.0)  # the value CLIP models end training at; gives PickScore its usual range

# preprocessor_config.json of laion/CLIP-ViT-H-14-laion2B-s32B-b79K (PickScore's processor).
CLIP_PREPROCESSOR = {
    "crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True, "do_convert_rgb": True,
    "feature_extractor_type": "CLIPFeatureExtractor", "image_processor_type": "CLIPImageProcessor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3, "size": 224,
}


def _seeded_weights():
    spec = importlib.util.spec_from_file_location("_seeded_weights", REPO / "imreward" / "_seeded_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seeded_checkpoint(shapes: dict[str, list[int]], salt: int, scales: dict[str, float] | None = None
                      ) -> dict[str, torch.Tensor]:
    """Seeded tensors for ``shapes``; a ``logit_scale`` is set to log(100); ``scales`` multiplies
    named tensors (so that a tiny model's scores spread widely enough to reveal any difference)."""
    state = _seeded_weights().seeded_state_dict(shapes, salt=salt)
    for key, factor in (scales or {}).items():
        state[key] = state[key] * factor
    for key in state:
        if key.endswith("logit_scale"):
            state[key] = torch.full(state[key].shape, LOGIT_SCALE)
    return state


def write_openai_clip(path: Path, state: dict[str, torch.Tensor], image_size: int) -> None:
    """OpenAI's layout: a TorchScript archive whose state dict holds the weights (matrices and
    convolutions in float16, the rest float32) and the ``input_resolution``, ``context_length`` and
    ``vocab_size`` entries ``ViT-L-14.pt`` has. (OpenAI's ``clip.load`` cannot read a plain state dict
    file: it re-reads the handle its TorchScript attempt consumed.)"""
    state = {k: v.half() if v.is_floating_point() and v.ndim >= 2 else v for k, v in state.items()}
    state.update(input_resolution=torch.tensor(image_size), context_length=torch.tensor(77),
                 vocab_size=torch.tensor(49408))
    root = torch.nn.Module()
    for key, value in state.items():
        *parents, leaf = key.split(".")
        module = root
        for part in parents:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        module.register_buffer(leaf, value)
    torch.jit.save(torch.jit.script(root), str(path))


def write_hps(path: Path, state: dict[str, torch.Tensor]) -> None:
    torch.save({"state_dict": state}, path)


def write_blip(path: Path, state: dict[str, torch.Tensor]) -> None:
    torch.save({"model": state}, path)


def write_pickscore(folder: Path, config: dict, state: dict[str, torch.Tensor]) -> None:
    """A transformers CLIPModel folder as published: config.json + model.safetensors."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"), {"format": "pt"})


def write_clip_processor(folder: Path, bpe_file: Path) -> None:
    """vocab.json, merges.txt and tokenizer settings of CLIP's BPE (built from OpenAI's merges file, as
    the hub's CLIP tokenizers were) and the laion ViT-H/14 ``preprocessor_config.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    merges = gzip.open(bpe_file, "rt", encoding="utf-8").read().split("\n")[1: 49152 - 256 - 2 + 1]
    characters = list(bytes_to_unicode().values())
    vocab = characters + [c + "</w>" for c in characters] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
               "unk_token": "<|endoftext|>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special))
    (folder / "tokenizer_config.json").write_text(json.dumps({**special, "model_max_length": 77,
                                                               "tokenizer_class": "CLIPTokenizer",
                                                               "do_lower_case": True}))
    (folder / "preprocessor_config.json").write_text(json.dumps(CLIP_PREPROCESSOR, indent=2))
    (folder / "config.json").write_text(json.dumps({"model_type": "clip"}))  # how AutoProcessor finds CLIP


def openai_clip_image_size(shapes: dict[str, list[int]]) -> int:
    """The input resolution of an OpenAI CLIP state dict: patch size x patches per side."""
    return math.isqrt(shapes["visual.positional_embedding"][0] - 1) * shapes["visual.conv1.weight"][-1]


def build_scorer(name: str, goldens: dict[str, dict], folder: Path, dtype: torch.dtype = torch.float32):
    """imreward's scorer on the seeded checkpoint that ``goldens[name]`` was made with, written in
    the published layout under ``folder`` and loaded with ``imreward.load_score`` (imports imreward:
    for the tests and benchmarks only)."""
    import open_clip

    import imreward
    from imreward.config import ImageRewardConfig, VisionConfig

    golden = goldens[name]
    folder.mkdir(parents=True, exist_ok=True)
    if name in ("clip", "aesthetic"):
        clip = goldens["clip"]
        write_openai_clip(folder / "ViT-L-14.pt", seeded_checkpoint(clip["shapes"], clip["salt"]),
                          openai_clip_image_size(clip["shapes"]))
        if name == "clip":
            return imreward.load_score("CLIP", device="cpu", dtype=dtype, checkpoint=folder / "ViT-L-14.pt")
        torch.save(seeded_checkpoint(golden["shapes"], golden["salt"], golden["scales"]), folder / "mlp.pth")
        return imreward.load_score("Aesthetic", device="cpu", dtype=dtype, checkpoint=folder / "mlp.pth",
                                   clip_checkpoint=folder / "ViT-L-14.pt")
    if name == "blip":
        vit = golden["vit"]
        vision = VisionConfig() if vit is None else VisionConfig(
            image_size=vit["img_size"], patch_size=vit["patch_size"], width=vit["embed_dim"], depth=vit["depth"],
            num_heads=vit["num_heads"])
        config = ImageRewardConfig.from_med_config(golden["med_config"], vision=vision,
                                                   embed_dim=golden["shapes"]["vision_proj.weight"][0])
        state = seeded_checkpoint(golden["shapes"], golden["salt"])
        # Pre-training entries of model_large.pth that the score ignores.
        write_blip(folder / "model_large.pth", {**state, "temp": torch.tensor(0.07), "text_queue": torch.zeros(256, 8)})
        return imreward.load_score("BLIP", device="cpu", dtype=dtype, checkpoint=folder / "model_large.pth",
                                   config=config)
    if name == "pickscore":
        write_pickscore(folder / "model", golden["config"], seeded_checkpoint(golden["shapes"], golden["salt"]))
        write_clip_processor(folder / "processor", Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz")
        return imreward.load_score("PickScore-v1", device="cpu", dtype=dtype, checkpoint=folder / "model",
                                   processor=folder / "processor")
    if name == "hpsv2":
        write_hps(folder / "HPS_v2_compressed.pt", seeded_checkpoint(golden["shapes"], golden["salt"]))
        return imreward.load_score("HPSv2", device="cpu", dtype=dtype, checkpoint=folder / "HPS_v2_compressed.pt",
                                   architecture=golden["architecture"])
    raise KeyError(f"no golden scorer named {name!r}")
