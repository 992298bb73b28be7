"""MPS, overall preference (Zhang et al., "Learning Multi-dimensional Human Preference for
Text-to-Image Generation", CVPR 2024).

A CLIP ViT-H/14 (transformers' CLIPModel) plus a fusion block: the image's projected patch tokens
attend to the prompt's projected tokens, keeping only the prompt tokens similar enough to a
*condition* text (for the overall model, a list of 22 preference aspects); the score is
exp(logit_scale) x cosine(projected prompt end token, fused class token). Scored as Kwai-Kolors'
``eval_overall_mps_on_*.py`` do: one (prompt, image) per forward there, so the similarity
normalisation (dividing by its maximum) is per pair here, threshold 0.3.

The published weights are a whole-model pickle; they are read with ``imreward.safe_pickle``
(nothing in the file is executed) and can be converted once to safetensors with ``convert_mps``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, CLIPConfig, CLIPModel

from imreward.errors import CheckpointError, ModelDownloadError
from imreward.hub import hub_file, load_weights, read_state_dict, resolve_device
from imreward.models.mps_fusion import PUBLISHED_RENAMES, FusionModel
from imreward.precision import torch_dtype
from imreward.preprocess import HFCLIPPilPreprocessor
from imreward.safe_pickle import read_pickled_state_dict
from imreward.scoring import RewardScorer

OVERALL_CONDITION = ("light, color, clarity, tone, style, ambiance, artistry, shape, face, hair, hands, limbs, "
                     "structure, instance, texture, quantity, attributes, position, number, location, word, things.")
CONDITION_THRESHOLD = 0.3  # eval scripts' value (the training forward used 0.01)
BASE_MODEL = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"  # config, tokenizer and image processor MPS uses
BASE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json")
OPTIONAL_BASE_FILES = ("special_tokens_map.json",)
CHECKPOINT_URL = "https://drive.google.com/file/d/17qrK_aJkVNM75ZEvMEePpLj6L867MLkN (MPS_overall_checkpoint.pth)"


class MPS(RewardScorer):
    """Scores are exp(logit_scale) x cosine; higher is preferred.

    Args:
        config: the CLIP config (laion ViT-H/14's for the published model).
        tokenizer: the CLIP tokenizer; prompts and the condition are cut to its model_max_length.
        fusion: the fusion block's shape (inferred from the checkpoint by ``build_mps``).
        image_size, image_mean, image_std: the CLIP image processor's values.
    """

    float_modules = ("model.visual_projection", "model.text_projection")

    def __init__(self, config: CLIPConfig, tokenizer, fusion: dict[str, int], image_size: int,
                 image_mean: tuple[float, ...], image_std: tuple[float, ...],
                 condition: str = OVERALL_CONDITION) -> None:
        super().__init__()
        self.model = CLIPModel(config)
        self.cross_model = FusionModel(config.projection_dim, **fusion)
        self.tokenizer = tokenizer
        self.image_size, self.image_mean, self.image_std = image_size, image_mean, image_std
        self.condition = condition

    @property
    def pil_preprocess(self) -> HFCLIPPilPreprocessor:
        if getattr(self, "_pil_preprocess", None) is None:
            self._pil_preprocess = HFCLIPPilPreprocessor(self.image_size, self.image_mean, self.image_std)
        return self._pil_preprocess

    def encode_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids [N, 77]: padded to the maximum length, truncated, as the eval scripts tokenise."""
        return {"input_ids": self._tokenize(list(prompts))}

    def _tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(texts, max_length=self.tokenizer.model_max_length, padding="max_length",
                              truncation=True, return_tensors="pt").input_ids

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """pixel_values [B, 3, S, S] normalised, input_ids [B, 77] -> scores [B] float32."""
        clip = self.model
        text = clip.text_model(input_ids=input_ids)
        text_tokens = clip.text_projection(text.last_hidden_state)
        text_embeds = clip.text_projection(text.pooler_output)
        image_tokens = clip.visual_projection(clip.vision_model(pixel_values=pixel_values).last_hidden_state)
        # The condition is the same text for every item: encoded once per forward, at batch size 1.
        condition_ids = self._tokenize([self.condition]).to(input_ids.device)
        condition_tokens = clip.text_projection(clip.text_model(input_ids=condition_ids).last_hidden_state)[0]
        # How much each prompt token resembles its closest condition token, relative to the best one.
        similarity = torch.einsum("bid,jd->bji", text_tokens, condition_tokens).amax(dim=1, keepdim=True)
        similarity = similarity / similarity.amax(dim=(1, 2), keepdim=True)
        bias = torch.where(similarity > CONDITION_THRESHOLD, 0.0, float("-inf")).to(similarity.dtype)
        fused = self.cross_model(image_tokens, text_tokens, bias.expand(-1, image_tokens.shape[1], -1))[:, 0]
        fused = fused / fused.norm(dim=-1, keepdim=True)
        text_embeds = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
        return (clip.logit_scale.exp() * (text_embeds * fused).sum(dim=-1)).float()


# ---- the published checkpoint ---------------------------------------------------------------

def from_published_layout(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MPS_overall_checkpoint.pth's state dict (``model.`` = CLIP, ``cross_model.`` = fusion) -> this
    module's names; position_ids buffers (older transformers saved them) are dropped."""
    converted = {}
    for key, tensor in state_dict.items():
        if key.endswith("embeddings.position_ids"):
            continue
        if not key.startswith(("model.", "cross_model.")):
            raise CheckpointError(f"unexpected key {key!r}: not an MPS checkpoint (model.* and cross_model.*)")
        for old, new in PUBLISHED_RENAMES.items():
            key = key.replace(old, new)
        converted[key] = tensor
    return converted


def fusion_shape(state_dict: dict[str, torch.Tensor]) -> dict[str, int]:
    """layers, heads, head_dim and ff_mult of the fusion block, read from its weight shapes."""
    layers = {int(m.group(1)) for k in state_dict if (m := re.match(r"cross_model\.layers\.(\d+)\.", k))}
    if not layers:
        raise CheckpointError("no cross_model.layers.* in the checkpoint: not an MPS checkpoint")
    prefix = "cross_model.layers.0.cross_attention."
    inner, dim = state_dict[prefix + "to_q.weight"].shape
    head_dim = state_dict[prefix + "to_kv.weight"].shape[0] // 2
    return {"layers": len(layers), "head_dim": head_dim, "heads": inner // head_dim,
            "ff_mult": state_dict[prefix + "ff.0.weight"].shape[0] // (2 * dim)}


def read_mps_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a published ``.pth`` (read safely) or of a converted ``.safetensors``, in this module's names."""
    path = Path(path)
    state = read_state_dict(path) if path.suffix == ".safetensors" else read_pickled_state_dict(path)
    return from_published_layout(state)


def convert_mps(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Convert the published whole-model pickle to a safetensors file of its tensors (same names)."""
    state = read_pickled_state_dict(source)
    from_published_layout(state)  # checks it is an MPS checkpoint
    target = Path(target)
    save_file({k: v.contiguous() for k, v in state.items()}, str(target))
    return target


def build_mps(base: str | os.PathLike, state_dict: dict[str, torch.Tensor], source: str = "checkpoint",
              dtype: torch.dtype | None = None) -> MPS:
    """An MPS on the CPU from a CLIP base folder (config.json, tokenizer, preprocessor_config.json) and
    a state dict in this module's names, checked strictly."""
    base = Path(base)
    processor = json.loads((base / "preprocessor_config.json").read_text())
    crop = processor.get("crop_size", 224)
    size = crop["height"] if isinstance(crop, dict) else crop
    with torch.device("meta"):
        model = MPS(CLIPConfig.from_pretrained(base), AutoTokenizer.from_pretrained(base), fusion_shape(state_dict),
                    size, tuple(processor["image_mean"]), tuple(processor["image_std"]))
    load_weights(model, state_dict, source, dtype=dtype or torch.float32)
    for module in model.model.modules():  # position ids are not in checkpoints: rebuild them off the meta device
        if hasattr(module, "position_ids"):
            module.position_ids = torch.arange(module.position_ids.shape[-1]).expand((1, -1))
    return model


def load_mps(name: str = "MPS", device: str | torch.device | None = None, dtype: torch.dtype | str | None = None,
             download_root: str | os.PathLike | None = None, checkpoint: str | os.PathLike | None = None,
             base_model: str | os.PathLike | None = None) -> MPS:
    """MPS (overall) in eval mode.

    Args:
        name: registry name (unused).
        device: defaults to CUDA when available.
        dtype: of the whole model, e.g. ``torch.bfloat16``.
        download_root: hub cache folder for the base model's files.
        checkpoint: ``MPS_overall_checkpoint.pth`` as published (only on Google Drive, so it must be
            given), or the safetensors ``convert_mps`` wrote from it.
        base_model: a local folder with laion/CLIP-ViT-H-14-laion2B-s32B-b79K's config.json, tokenizer
            and preprocessor_config.json instead of the hub repo's.
    """
    if checkpoint is None:
        raise FileNotFoundError(f"MPS weights are published only at {CHECKPOINT_URL}; download the file and pass "
                                "checkpoint=PATH (convert it once with imreward.models.mps.convert_mps to skip "
                                "reading the pickle each time)")
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    dtype = torch_dtype(dtype, device)
    if base_model is None:
        base_model = {hub_file(BASE_MODEL, f, download_root=download_root).parent for f in BASE_FILES}.pop()
        for name in OPTIONAL_BASE_FILES:
            try:
                hub_file(BASE_MODEL, name, download_root=download_root)
            except ModelDownloadError:
                pass
    elif not Path(base_model, "config.json").is_file():
        raise FileNotFoundError(f"base_model {base_model} has no config.json: pass a folder holding "
                                f"{', '.join(BASE_FILES)} of {BASE_MODEL}")
    model = build_mps(base_model, read_mps_checkpoint(checkpoint), str(checkpoint), dtype)
    return model.to(resolve_device(device)).eval()


def main(argv: list[str] | None = None) -> int:
    """``python -m imreward.models.mps SOURCE.pth TARGET.safetensors``: convert the MPS release once."""
    parser = argparse.ArgumentParser(prog="python -m imreward.models.mps", description=convert_mps.__doc__)
    parser.add_argument("source", help="MPS_overall_checkpoint.pth as published")
    parser.add_argument("target", help="the .safetensors file to write")
    args = parser.parse_args(argv)
    try:
        print(f"wrote {convert_mps(args.source, args.target)}")
    except (CheckpointError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
