"""PickScore v1 (Kirstain et al., *Pick-a-Pic*, NeurIPS 2023, arXiv 2305.01569): CLIP ViT-H/14
fine-tuned on Pick-a-Pic preferences, published in transformers' ``CLIPModel`` layout (hub
``yuvalkirstain/PickScore_v1``). Score = ``exp(logit_scale)`` x cosine of the normalised image and
prompt embeddings, as PickScore's published usage computes it.

That usage runs the processor of ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` as transformers 4.x
did: the prompt through the fast CLIP tokenizer (truncated to 77 tokens, padded, with an attention
mask) and the image through the PIL ``CLIPImageProcessor``: convert to RGB *first*, resize the
shorter side to 224 with PIL bicubic (the longer side truncated to an int), centre crop with the
offset rounded down, scale to [0, 1] and normalise. transformers 5 replaced that processor with a
torchvision one whose resize differs, so the PIL steps are written out here (``preprocess``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from imreward.errors import CheckpointError
from imreward.hub import hub_file
from imreward.models._clip_backbone import DualEncoderScore, place
from imreward.preprocess import HFCLIPPilPreprocessor

PICKSCORE_REPO = "yuvalkirstain/PickScore_v1"
PICKSCORE_FILES = ("config.json", "model.safetensors")
PROCESSOR_REPO = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
PROCESSOR_FILES = ("preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.json", "merges.txt")
PIL_BICUBIC = 3  # the ``resample`` value of preprocessor_config.json


class PickScore(DualEncoderScore):
    """PickScore: ``exp(logit_scale)`` x cosine of the normalised image and prompt embeddings."""

    float_modules = ("clip.visual_projection", "clip.text_projection")

    def __init__(self, clip_model, tokenizer, processor_config: dict) -> None:
        super().__init__()
        self.clip = clip_model
        self.tokenizer = tokenizer
        self.scale = float(clip_model.logit_scale.detach().float().exp())  # kept in float32 whatever the dtype
        self.max_length = min(int(tokenizer.model_max_length), clip_model.config.text_config.max_position_embeddings)
        self.resize_to = _shortest_edge(processor_config)
        crop = processor_config.get("crop_size", self.resize_to)
        self.image_size = crop["height"] if isinstance(crop, dict) else int(crop)
        self.image_mean = tuple(processor_config["image_mean"])
        self.image_std = tuple(processor_config["image_std"])

    def encode_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask [N, L], padded to the longest prompt, at most 77 tokens."""
        encoded = self.tokenizer(list(prompts), padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    @property
    def pil_preprocess(self) -> HFCLIPPilPreprocessor:
        """The PIL CLIPImageProcessor of transformers 4.x: -> normalised [3, S, S] float32."""
        if getattr(self, "_pil_preprocess", None) is None:
            self._pil_preprocess = HFCLIPPilPreprocessor(self.image_size, self.image_mean, self.image_std,
                                                         resize_to=self.resize_to)
        return self._pil_preprocess

    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return _features(self.clip.get_image_features(pixel_values=pixel_values))

    def text_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return _features(self.clip.get_text_features(input_ids=input_ids, attention_mask=attention_mask))


def _features(output) -> torch.Tensor:
    """transformers 5 returns a model output whose ``pooler_output`` is the projection; 4.x a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _shortest_edge(config: dict) -> int:
    size = config.get("size", 224)
    return int(size["shortest_edge"]) if isinstance(size, dict) else int(size)


def read_processor_config(folder: Path) -> dict:
    """``preprocessor_config.json``, checked for the steps ``PickScore.preprocess`` implements."""
    path = folder / "preprocessor_config.json"
    config = json.loads(path.read_text())
    unsupported = [key for key, wanted in (("do_resize", True), ("do_center_crop", True), ("do_normalize", True),
                                           ("do_convert_rgb", True), ("resample", PIL_BICUBIC))
                   if config.get(key, wanted) != wanted]
    if unsupported or abs(config.get("rescale_factor", 1 / 255) - 1 / 255) > 1e-12:
        raise CheckpointError(f"{path}: preprocessing other than CLIP's ({', '.join(unsupported) or 'rescale_factor'})")
    return config


def _folder_with(files: tuple[str, ...], repo: str, folder: str | os.PathLike | None,
                 download_root: str | os.PathLike | None) -> Path:
    if folder is not None:
        path = Path(folder)
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is not a folder (expected {', '.join(files)})")
        return path
    return {hub_file(repo, name, download_root=download_root).parent for name in files}.pop()


def load_pick_score(name: str = "PickScore-v1", device: str | torch.device | None = None,
                    dtype: torch.dtype | str | None = None, download_root: str | os.PathLike | None = None,
                    checkpoint: str | os.PathLike | None = None,
                    processor: str | os.PathLike | None = None) -> PickScore:
    """PickScore v1 in eval mode.

    Args:
        device: defaults to CUDA when available.
        dtype: e.g. ``torch.bfloat16`` for CLIP (the logit scale and scores stay float32).
        download_root: cache folder for hub files (default: the Hugging Face cache).
        checkpoint: a local folder in the published layout (``config.json`` + ``model.safetensors``
            or ``pytorch_model.bin``) instead of the download.
        processor: a local folder with the processor files (tokenizer and ``preprocessor_config.json``)
            instead of those of ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``.
    """
    from transformers import AutoTokenizer, CLIPModel

    model_folder = _folder_with(PICKSCORE_FILES, PICKSCORE_REPO, checkpoint, download_root)
    processor_folder = _folder_with(PROCESSOR_FILES, PROCESSOR_REPO, processor, download_root)
    try:
        clip_model, info = CLIPModel.from_pretrained(model_folder, output_loading_info=True)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{model_folder} is not a transformers CLIPModel folder: {error}") from error
    # transformers would leave missing or misshapen weights randomly initialised: refuse instead.
    problems = {kind: sorted(info.get(kind) or []) for kind in ("missing_keys", "mismatched_keys")}
    if any(problems.values()):
        raise CheckpointError(f"{model_folder} does not match its config.json: "
                              + "; ".join(f"{kind}: {keys[:10]}" for kind, keys in problems.items() if keys))
    clip_model = clip_model.float()
    tokenizer = AutoTokenizer.from_pretrained(processor_folder)
    scorer = PickScore(clip_model.eval(), tokenizer, read_processor_config(processor_folder))
    return place(scorer, device, dtype)
