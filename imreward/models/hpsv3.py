"""HPSv3 (Ma et al., "HPSv3: Towards Wide-Spectrum Human Preference Score", ICCV 2025).

Qwen2-VL-7B-Instruct reads the image and an instruction holding the prompt; a 3-layer MLP on the
final (normed) hidden state of the ``<|Reward|>`` token gives (mu, log sigma). The score is mu, as
the ``hpsv3`` package reports it; ``score_with_uncertainty`` also gives sigma = exp(log sigma), the
spread the model was trained with (its uncertainty-aware ranking loss).

As in ``hpsv3`` 1.0.0, the language model runs with plain sequential positions (it calls the text
model directly, so Qwen2-VL's 3-D M-RoPE positions for image tokens are not used), each image is
resized to 256 x 28 x 28 pixels (``min_pixels = max_pixels``), and the reward head runs in float32.
The vision tower and language model are transformers' Qwen2-VL modules.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from transformers import AutoTokenizer, Qwen2VLConfig
from transformers.models.qwen2_vl.modeling_qwen2_vl import (
    Qwen2VisionTransformerPretrainedModel,
    Qwen2VLRotaryEmbedding,
    Qwen2VLTextModel,
    Qwen2VLVisionRotaryEmbedding,
)

from imreward.errors import CheckpointError
from imreward.hub import hub_file, load_weights, read_state_dict, resolve_device
from imreward.image_io import ImageInput
from imreward.models._hpsv3_prompt import CHAT_PREFIX, IMAGE_PAD, REWARD_TOKEN, text_after_image
from imreward.models.qwen2vl_pixels import PatchConfig, pil_patches, tensor_patches
from imreward.precision import torch_dtype
from imreward.scoring import RewardScorer, prompts_for_pixels

HPSV3_REPO, HPSV3_FILE = "MizzenAI/HPSv3", "HPSv3.safetensors"
BASE_MODEL = "Qwen/Qwen2-VL-7B-Instruct"
BASE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json")
HPSV3_PIXELS = 256 * 28 * 28  # hpsv3's inference.py: every image is resized to this many pixels
Patches = tuple[torch.Tensor, torch.Tensor]  # (patches [N, patch_dim], grid_thw [3]) of one image


def reward_head(hidden_size: int) -> nn.Sequential:
    """hpsv3's "ranknet" head (no rm_head_kwargs): hidden -> 1024 -> 16 -> (mu, log sigma)."""
    return nn.Sequential(nn.Linear(hidden_size, 1024), nn.ReLU(), nn.Dropout(0.05), nn.Linear(1024, 16), nn.ReLU(),
                         nn.Linear(16, 2))


class HPSv3(RewardScorer):
    """Scores are HPSv3's mu (unbounded; higher is preferred).

    Args:
        config: the base model's Qwen2-VL config (vocab size as in the checkpoint).
        tokenizer: Qwen2-VL's tokenizer with ``<|Reward|>`` added, as hpsv3 adds it.
        patches: image preprocessing (Qwen2-VL preprocessor values, hpsv3's pixel budget).
    """

    float_modules = ("rm_head",)

    def __init__(self, config: Qwen2VLConfig, tokenizer, patches: PatchConfig | None = None) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.patches = patches or PatchConfig(HPSV3_PIXELS, HPSV3_PIXELS)
        self.image_size = round(self.patches.max_pixels ** 0.5)  # a square image's side at that budget (for display)
        self.visual = Qwen2VisionTransformerPretrainedModel._from_config(config.vision_config)
        self.language_model = Qwen2VLTextModel._from_config(config.text_config)
        self.rm_head = reward_head(config.text_config.hidden_size)
        self.reward_token_id = tokenizer.convert_tokens_to_ids(REWARD_TOKEN)
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_PAD)
        self.pad_token_id = tokenizer.pad_token_id
        self.prefix_ids = tokenizer(CHAT_PREFIX, add_special_tokens=False)["input_ids"]

    def rebuild_rotary_tables(self) -> None:
        """Recompute the rotary frequency buffers (not in checkpoints; lost when built on the meta device)."""
        self.visual.rotary_pos_emb = Qwen2VLVisionRotaryEmbedding(self.config.vision_config)
        self.language_model.rotary_emb = Qwen2VLRotaryEmbedding(self.config.text_config)

    @property
    def compute_dtype(self) -> torch.dtype:
        return self.language_model.embed_tokens.weight.dtype

    # ---- the scoring contract -----------------------------------------------------------------

    def encode_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids after the image placeholders [N, L] (padded) and their lengths [N]."""
        encoded = [self.tokenizer(text_after_image(p), add_special_tokens=False)["input_ids"] for p in prompts]
        width = max(len(ids) for ids in encoded)
        suffix_ids = torch.full((len(encoded), width), self.pad_token_id, dtype=torch.long)
        for row, ids in enumerate(encoded):
            suffix_ids[row, : len(ids)] = torch.tensor(ids)
        return {"suffix_ids": suffix_ids, "suffix_lengths": torch.tensor([len(ids) for ids in encoded])}

    @property
    def pil_preprocess(self) -> Callable[[Image.Image], Patches]:
        """PIL image -> (patches, grid_thw); images vary in size, so batches go through ``collate_images``."""
        return functools.partial(pil_patches, config=self.patches)

    def collate_images(self, images: list[Patches]) -> Patches:
        return torch.cat([p for p, _ in images]), torch.stack([g for _, g in images])

    def collate_text(self, texts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Rows of ``encode_prompts`` outputs (suffix widths may differ) -> one padded batch."""
        width = max(text["suffix_ids"].shape[-1] for text in texts)
        suffix_ids = torch.stack([torch.nn.functional.pad(text["suffix_ids"], (0, width - text["suffix_ids"].shape[-1]),
                                                          value=self.pad_token_id) for text in texts])
        return {"suffix_ids": suffix_ids, "suffix_lengths": torch.stack([text["suffix_lengths"] for text in texts])}

    def score_preprocessed(self, pixel_values: Patches, text: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            return self(*pixel_values, **text).float().cpu()

    def score_tensor(self, pixels: torch.Tensor, prompts: str | Sequence[str]) -> torch.Tensor:
        """Differentiable mu [B] for pixels [B, 3, H, W] in [0, 1] on the model's device."""
        return self.reward_tensor(pixels, prompts)[:, 0]

    def reward_tensor(self, pixels: torch.Tensor, prompts: str | Sequence[str]) -> torch.Tensor:
        """Differentiable (mu, log sigma) [B, 2] for pixels [B, 3, H, W] in [0, 1]."""
        prompt_list = prompts_for_pixels(pixels, prompts)
        patches, grid_thw = self.collate_images([tensor_patches(image, self.patches) for image in pixels])
        text = {key: value.to(self.device) for key, value in self.encode_prompts(prompt_list).items()}
        return self.reward_logits(patches, grid_thw.to(self.device), **text)

    def score_with_uncertainty(self, prompt: str | Sequence[str], images: Sequence[ImageInput],
                               batch_size: int = 8) -> list[tuple[float, float]]:
        """(mu, sigma) per image, ``batch_size`` images per forward: sigma = exp of the head's second output."""
        images = list(images)
        prompt_list = [prompt] * len(images) if isinstance(prompt, str) else list(prompt)
        if len(prompt_list) != len(images):
            raise ValueError(f"got {len(prompt_list)} prompts for {len(images)} images")
        results = []
        for start in range(0, len(images), batch_size):
            text = self.encode_prompts(prompt_list[start: start + batch_size])
            with torch.inference_mode():
                patches, grid_thw = self.collate_images([self.preprocess(i) for i in images[start: start + batch_size]])
                logits = self.reward_logits(patches, grid_thw, **text).float().cpu()
            results += [(mu, math.exp(log_sigma)) for mu, log_sigma in logits.tolist()]
        return results

    # ---- the model ----------------------------------------------------------------------------

    def forward(self, patches: torch.Tensor, grid_thw: torch.Tensor, suffix_ids: torch.Tensor,
                suffix_lengths: torch.Tensor) -> torch.Tensor:
        """mu [B] float32; see ``reward_logits``."""
        return self.reward_logits(patches, grid_thw, suffix_ids, suffix_lengths)[:, 0]

    def reward_logits(self, patches: torch.Tensor, grid_thw: torch.Tensor, suffix_ids: torch.Tensor,
                      suffix_lengths: torch.Tensor) -> torch.Tensor:
        """(mu, log sigma) [B, 2] float32.

        Args:
            patches: [sum of N_i, patch_dim] normalised patches of B images, concatenated.
            grid_thw: [B, 3] each image's patch grid (1, H/14, W/14).
            suffix_ids: [B, L] token ids after each image's placeholders; suffix_lengths [B] their lengths.
        """
        device = self.device
        input_ids, attention_mask, reward_index = self._sequences(grid_thw, suffix_ids, suffix_lengths)
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        embeddings = self.language_model.embed_tokens(input_ids)
        image_embeds = self.visual(patches.to(device, self.visual.get_dtype()), grid_thw=grid_thw.to(device))
        image_mask = (input_ids == self.image_token_id).unsqueeze(-1).expand_as(embeddings)
        embeddings = embeddings.masked_scatter(image_mask, image_embeds.pooler_output.to(embeddings.dtype))
        hidden = self.language_model(inputs_embeds=embeddings, attention_mask=attention_mask, use_cache=False)
        pooled = hidden.last_hidden_state[torch.arange(len(reward_index), device=device), reward_index.to(device)]
        return self.rm_head(pooled.float())

    def _sequences(self, grid_thw: torch.Tensor, suffix_ids: torch.Tensor,
                   suffix_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Input ids [B, T] padded on the right, attention mask [B, T], and each reward token's index [B]."""
        merged = self.patches.merge_size ** 2
        rows = []
        for grid, ids, length in zip(grid_thw.tolist(), suffix_ids.cpu(), suffix_lengths.tolist()):
            image_tokens = [self.image_token_id] * (grid[0] * grid[1] * grid[2] // merged)
            rows.append(self.prefix_ids + image_tokens + ids[:length].tolist())
        width = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row)
            attention_mask[i, : len(row)] = 1
        is_reward = input_ids == self.reward_token_id
        if not bool(is_reward.any(dim=1).all()):
            raise ValueError(f"the tokenizer does not know {REWARD_TOKEN}; load the model with load_hpsv3()")
        reward_index = width - 1 - is_reward.flip(1).int().argmax(dim=1)  # the last <|Reward|> of each row
        return input_ids, attention_mask, reward_index


# ---- loading --------------------------------------------------------------------------------

# hpsv3 saved its model with transformers 4.45, whose Qwen2-VL kept the language model under
# "model." and the vision tower under "visual."; lm_head is unused by the reward and not loaded.
PUBLISHED_PREFIXES = {"model.": "language_model.", "visual.": "visual.", "rm_head.": "rm_head."}
UNUSED_KEYS = ("lm_head.weight",)


def from_published_layout(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HPSv3.safetensors' names -> this module's names."""
    converted = {}
    for key, tensor in state_dict.items():
        if key in UNUSED_KEYS:
            continue
        prefix = next((p for p in PUBLISHED_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            raise CheckpointError(f"unexpected key {key!r}: not an HPSv3 checkpoint (Qwen2-VL + rm_head)")
        converted[PUBLISHED_PREFIXES[prefix] + key[len(prefix):]] = tensor
    return converted


def build_hpsv3(base: str | os.PathLike, state_dict: dict[str, torch.Tensor], source: str = "checkpoint",
                dtype: torch.dtype | None = None) -> HPSv3:
    """An HPSv3 on the CPU from a Qwen2-VL base folder (config, tokenizer, preprocessor files) and a
    state dict in the published layout, checked strictly; weights kept in ``dtype`` (default float32)."""
    base = Path(base)
    state_dict = from_published_layout(state_dict)
    config = Qwen2VLConfig.from_pretrained(base)
    embeddings = state_dict.get("language_model.embed_tokens.weight")
    if embeddings is None:
        raise CheckpointError(f"{source} has no model.embed_tokens.weight: not an HPSv3 checkpoint")
    config.text_config.vocab_size = embeddings.shape[0]  # hpsv3 resized the embeddings to its tokenizer
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.add_special_tokens({"additional_special_tokens": [REWARD_TOKEN]})
    if len(tokenizer) != embeddings.shape[0]:
        raise CheckpointError(f"{source}: {embeddings.shape[0]} token embeddings but the tokenizer of {base} "
                              f"with {REWARD_TOKEN} has {len(tokenizer)} tokens")
    processor = json.loads((base / "preprocessor_config.json").read_text())
    patches = PatchConfig(HPSV3_PIXELS, HPSV3_PIXELS, tuple(processor["image_mean"]), tuple(processor["image_std"]),
                          processor["patch_size"], processor["temporal_patch_size"], processor["merge_size"])
    with torch.device("meta"):
        model = HPSv3(config, tokenizer, patches)
    load_weights(model, state_dict, source, dtype=dtype or torch.float32)
    model.rm_head.float()
    model.rebuild_rotary_tables()
    return model


def load_hpsv3(name: str = "HPSv3", device: str | torch.device | None = None,
               dtype: torch.dtype | str | None = None, download_root: str | os.PathLike | None = None,
               checkpoint: str | os.PathLike | None = None, base_model: str | os.PathLike | None = None) -> HPSv3:
    """HPSv3 in eval mode.

    Args:
        name: registry name (unused).
        device: defaults to CUDA when available.
        dtype: of the vision tower and language model (e.g. ``torch.bfloat16``, as hpsv3 runs);
            the reward head stays float32.
        download_root: hub cache folder for the files below.
        checkpoint: a local HPSv3.safetensors (or torch pickle of the same state dict) instead of
            ``MizzenAI/HPSv3``'s.
        base_model: a local folder with Qwen2-VL-7B-Instruct's config.json, tokenizer and
            preprocessor_config.json instead of the hub repo's.
    """
    dtype = torch_dtype(dtype, device)
    if base_model is None:
        base_model = {hub_file(BASE_MODEL, f, download_root=download_root).parent for f in BASE_FILES}.pop()
    elif not Path(base_model, "config.json").is_file():
        raise FileNotFoundError(f"base_model {base_model} has no config.json: pass a folder holding "
                                f"{', '.join(BASE_FILES)} of {BASE_MODEL}")
    if checkpoint is None:
        checkpoint = hub_file(HPSV3_REPO, HPSV3_FILE, download_root=download_root)
    elif not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    model = build_hpsv3(base_model, read_state_dict(checkpoint), str(checkpoint), dtype)
    return model.to(resolve_device(device)).eval()
