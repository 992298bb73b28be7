"""A Qwen-VL chat model (Qwen2-VL, Qwen2.5-VL, Qwen3-VL: transformers' own classes) asked one question
about one or more images, as the vision-language judges built on it ask it (UnifiedReward, VQAScore).

The conversation is the model's chat template for one user turn (the images, then the text) with
the generation prompt; each image is loaded the way qwen-vl-utils' ``fetch_image`` loads it (RGB,
``smart_resize`` to a multiple of the patch factor within its pixel budget, PIL bicubic) and cut into
patches by ``imreward.models.qwen2vl_pixels`` (the image processor's steps). Answers are greedy
(``generate(do_sample=False)``, with the published generation config's repetition penalty);
``first_answer_logits`` gives the first answer token's logits with gradients (VQAScore's P(Yes)).

Checkpoints load in the layout they were published in: transformers < 4.52 saved the language model
under ``model.`` and the vision tower under ``visual.``; later ones under ``model.language_model.`` and
``model.visual.``. Both map onto the model strictly (``imreward.hub.load_weights``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from accelerate import init_empty_weights
from safetensors import safe_open
from torch import nn
from transformers import AutoConfig, AutoModelForImageTextToText, AutoTokenizer, GenerationConfig

from imreward.errors import CheckpointError, ModelDownloadError
from imreward.hub import hub_download_options, load_weights
from imreward.models.qwen2vl_pixels import PatchConfig, pil_patches, tensor_patches

IMAGE_PAD = "<|image_pad|>"
# qwen-vl-utils' fetch_image budget, in tokens of (patch_size * merge_size)^2 pixels each.
MIN_IMAGE_TOKENS, MAX_IMAGE_TOKENS = 4, 16384
MODEL_FILES = ["*.json", "*.safetensors", "*.jinja", "merges.txt", "vocab.json"]
LEGACY_PREFIXES = (("visual.", "model.visual."), ("model.", "model.language_model."))
Patches = tuple[torch.Tensor, torch.Tensor]  # (patches [N, patch_dim], grid_thw [3]) of one image


def from_published_layout(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensor names of either published layout -> transformers 5's (``model.language_model.``, ``model.visual.``)."""
    converted = {}
    for key, tensor in state_dict.items():
        if not key.startswith(("model.language_model.", "model.visual.", "lm_head.")):
            for old, new in LEGACY_PREFIXES:
                if key.startswith(old):
                    key = new + key[len(old):]
                    break
        converted[key] = tensor
    return converted


def read_checkpoint(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a ``save_pretrained`` folder: ``model.safetensors`` or the shards its index lists."""
    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else ["model.safetensors"]
    state: dict[str, torch.Tensor] = {}
    for name in files:
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} has no {name}: not a complete save_pretrained folder")
        with safe_open(str(folder / name), framework="pt") as shard:
            state.update({key: shard.get_tensor(key) for key in shard.keys()})
    return state


def patch_config(folder: Path) -> PatchConfig:
    """The image processor's values (``preprocessor_config.json``) with qwen-vl-utils' pixel budget."""
    processor = json.loads((folder / "preprocessor_config.json").read_text())
    patch, merge = processor["patch_size"], processor["merge_size"]
    factor = patch * merge
    return PatchConfig(MIN_IMAGE_TOKENS * factor ** 2, MAX_IMAGE_TOKENS * factor ** 2, tuple(processor["image_mean"]),
                       tuple(processor["image_std"]), patch, processor["temporal_patch_size"], merge)


class QwenVLChat(nn.Module):
    """A transformers Qwen-VL ``...ForConditionalGeneration`` with its tokenizer, chat template and
    image budget; see the module docstring."""

    def __init__(self, model: nn.Module, tokenizer, chat_template: str, patches: PatchConfig) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.patches = patches
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_PAD)

    @property
    def device(self) -> torch.device:
        return self.model.lm_head.weight.device

    def image_patches(self, image) -> Patches:
        """A PIL image -> (patches, grid_thw), as qwen-vl-utils and the image processor make them."""
        return pil_patches(image, self.patches)

    def pixel_patches(self, pixels: torch.Tensor) -> Patches:
        """Differentiable (patches, grid_thw) of pixels [3, H, W] in [0, 1]."""
        return tensor_patches(pixels, self.patches)

    def conversation(self, question: str, images: int) -> str:
        """The chat template rendered for one user turn of ``images`` images then ``question``."""
        content = [{"type": "image"}] * images + [{"type": "text", "text": question}]
        return self.tokenizer.apply_chat_template([{"role": "user", "content": content}], chat_template=self.chat_template,
                                                  tokenize=False, add_generation_prompt=True)

    def input_ids(self, question: str, grids: Sequence[torch.Tensor]) -> list[int]:
        """Token ids of the conversation, each image's placeholder repeated once per merged patch."""
        text = self.conversation(question, len(grids))
        if text.count(IMAGE_PAD) != len(grids):
            raise ValueError(f"the chat template rendered {text.count(IMAGE_PAD)} image placeholders for {len(grids)} images")
        merged = self.patches.merge_size ** 2
        pieces = text.split(IMAGE_PAD)
        expanded = pieces[0] + "".join(IMAGE_PAD * (int(grid.prod()) // merged) + piece
                                       for grid, piece in zip(grids, pieces[1:]))
        return self.tokenizer(expanded, add_special_tokens=False)["input_ids"]

    def model_inputs(self, question: str, images: Sequence[Patches]) -> dict[str, torch.Tensor]:
        """One conversation's inputs for the model (batch of 1), on its device."""
        grids = [grid for _, grid in images]
        ids = torch.tensor([self.input_ids(question, grids)], device=self.device)
        # 1 marks image tokens: transformers 5 places the 3-D (M-RoPE) positions by these types.
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                "mm_token_type_ids": (ids == self.image_token_id).int(),
                "pixel_values": torch.cat([p for p, _ in images]).to(self.device, self.model.dtype),
                "image_grid_thw": torch.stack(grids).to(self.device)}

    @property
    def repetition_penalty(self) -> float:
        """The published ``generation_config.json``'s penalty (Qwen2.5-VL-Instruct: 1.05), which
        ``generate`` applies to the logits of tokens already in the sequence, greedy or not."""
        return float(getattr(self.model.generation_config, "repetition_penalty", None) or 1.0)

    @torch.inference_mode()
    def answer(self, question: str, images: Sequence[Patches], max_new_tokens: int = 512) -> str:
        """The greedy answer's text (special tokens skipped, spaces kept as generated). The published
        generation config's repetition penalty applies; its sampling settings do not (top_k 1 in the
        Qwen-VL releases: the same tokens)."""
        inputs = self.model_inputs(question, images)
        generated = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                        top_p=None, top_k=None)
        new_tokens = generated[0, inputs["input_ids"].shape[1]:]
        return self.tokenizer.decode(new_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def first_answer_logits(self, question: str, images: Sequence[Patches]) -> torch.Tensor:
        """The first answer token's logits [V] (float32) as ``generate`` scores them (the repetition
        penalty applied to the prompt's tokens), with gradients to the patches."""
        inputs = self.model_inputs(question, images)
        logits = self.model(**inputs, use_cache=False, logits_to_keep=1).logits[0, -1].float()
        penalty = self.repetition_penalty
        if penalty == 1.0:
            return logits
        seen = torch.zeros_like(logits, dtype=torch.bool)
        seen[inputs["input_ids"][0].unique()] = True
        penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
        return torch.where(seen, penalised, logits)


def hub_model_folder(repo: str, checkpoint: str | os.PathLike | None, download_root: str | os.PathLike | None) -> Path:
    """A local model folder: ``checkpoint`` when given, else the hub repo's files downloaded once."""
    if checkpoint is not None:
        folder = Path(checkpoint)
        if not folder.is_dir():
            raise FileNotFoundError(f"checkpoint {folder} is not a folder: pass the model's folder as the hub holds it")
        return folder
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo, allow_patterns=MODEL_FILES, **hub_download_options(download_root)))
    except Exception as error:
        raise ModelDownloadError(f"could not get the files of {repo!r}: {type(error).__name__}: {error}\nWithout "
                                 "network, copy the repo's folder here and pass it: NAME=FOLDER or checkpoint=FOLDER") from error


def load_qwen_vl_chat(folder: str | os.PathLike, dtype: torch.dtype | None = None, source: str | None = None) -> QwenVLChat:
    """A ``QwenVLChat`` on the CPU from a folder as the hub publishes it (config.json, safetensors,
    tokenizer, preprocessor_config.json, chat template), weights checked strictly; ``dtype`` defaults
    to the config's ``torch_dtype`` (as ``from_pretrained(torch_dtype="auto")`` loads it)."""
    folder = Path(folder)
    source = source or str(folder)
    for name in ("config.json", "preprocessor_config.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} has no {name}: pass a folder holding a Qwen-VL model as published")
    config = AutoConfig.from_pretrained(folder)
    if dtype is None:
        stated = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "float32"
        dtype = getattr(torch, stated) if isinstance(stated, str) else stated
    with init_empty_weights(include_buffers=False):
        model = AutoModelForImageTextToText.from_config(config)
    state = from_published_layout(read_checkpoint(folder))
    tied = getattr(config.get_text_config(), "tie_word_embeddings", False) or getattr(config, "tie_word_embeddings", False)
    if tied and "lm_head.weight" not in state:
        state["lm_head.weight"] = state["model.language_model.embed_tokens.weight"]
    load_weights(model, state, source, dtype=dtype)
    if (folder / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(folder)
    template_file = folder / "chat_template.json"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    template = json.loads(template_file.read_text())["chat_template"] if template_file.is_file() else tokenizer.chat_template
    if not template:
        raise CheckpointError(f"{source} has no chat template (chat_template.json or in tokenizer_config.json)")
    return QwenVLChat(model.eval(), tokenizer, template, patch_config(folder))
