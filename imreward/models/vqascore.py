"""VQAScore (Lin et al., "Evaluating Text-to-Visual Generation with Image-to-Text Generation", ECCV 2024)
on a Qwen-VL backbone, as t2v_metrics computes it for its Qwen2.5-VL models.

The score is the probability that the model answers "Yes" to ``Does this figure show "{prompt}"?
Please answer Yes or No.`` about the image: the softmax of the first answer token's logits at the
answer's token, the logits as ``generate`` scores them (the published generation config's repetition
penalty applied to the prompt's tokens; temperature 1). Image loading and the conversation are those
of ``imreward.models.qwen_vl_chat`` (qwen-vl-utils' resize, the chat template). ``score_tensor`` is
differentiable with respect to the pixels (resize, normalisation and patches in torch), for ReFL.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence

import torch
from PIL import Image

from imreward.hub import resolve_device
from imreward.judges.templates import VQASCORE_ANSWER, fill_template
from imreward.models.qwen_vl_chat import Patches, QwenVLChat, hub_model_folder, load_qwen_vl_chat
from imreward.models.qwen2vl_pixels import pil_patches
from imreward.scoring import (RewardScorer, collate_utf8_prompts, decode_utf8_prompts, prompts_for_pixels,
                              utf8_prompts)

VQASCORE_REPOS = {"VQAScore-Qwen2.5-VL-7B": "Qwen/Qwen2.5-VL-7B-Instruct"}


class VQAScore(RewardScorer):
    """P("Yes") in [0, 1] per (prompt, image); see the module docstring.

    Args:
        chat: the Qwen-VL model, tokenizer and image budget.
        question: the question template (``{prompt}``, or a name from ``imreward.judges.templates``).
        answer: the answer whose probability is the score; it must be one token.
    """

    def __init__(self, chat: QwenVLChat, question: str = "vqascore", answer: str = VQASCORE_ANSWER) -> None:
        super().__init__()
        self.chat, self.question = chat, question
        answer_ids = chat.tokenizer.encode(answer, add_special_tokens=False)
        if len(answer_ids) != 1:
            raise ValueError(f"the answer {answer!r} is {len(answer_ids)} tokens for this tokenizer; VQAScore here "
                             "scores a one-token answer")
        self.answer_id = answer_ids[0]
        self.image_size = round(chat.patches.max_pixels ** 0.5)

    @property
    def device(self) -> torch.device:
        return self.chat.device

    @property
    def compute_dtype(self) -> torch.dtype:
        return self.chat.model.dtype

    # ---- the scoring contract ---------------------------------------------------------------------

    def encode_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """Prompts as UTF-8 bytes: the conversation is rendered once the image's size (its number of
        placeholder tokens) is known."""
        return utf8_prompts(prompts)

    def collate_text(self, texts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return collate_utf8_prompts(texts)

    @property
    def pil_preprocess(self) -> Callable[[Image.Image], Patches]:
        """PIL image -> (patches, grid_thw) as qwen-vl-utils and the image processor make them."""
        return functools.partial(pil_patches, config=self.chat.patches)

    def collate_images(self, images: list[Patches]) -> list[Patches]:
        return list(images)

    def score_preprocessed(self, pixel_values: list[Patches], text: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            return self(pixel_values, **text).float().cpu()

    def score_tensor(self, pixels: torch.Tensor, prompts: str | Sequence[str]) -> torch.Tensor:
        """Differentiable P(Yes) [B] for pixels [B, 3, H, W] in [0, 1] on the model's device."""
        prompt_list = prompts_for_pixels(pixels, prompts)
        return torch.stack([self.probability(prompt, self.chat.pixel_patches(image))
                            for prompt, image in zip(prompt_list, pixels)])

    # ---- the model ----------------------------------------------------------------------------------

    def probability(self, prompt: str, patches: Patches) -> torch.Tensor:
        """P(answer) for one image's (patches, grid_thw): a 0-d float32 tensor with gradients."""
        logits = self.chat.first_answer_logits(fill_template(self.question, prompt), [patches])
        return torch.softmax(logits, dim=-1)[self.answer_id]

    def forward(self, images: list[Patches], utf8: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        """P(answer) [B] of each image (one forward each, as t2v_metrics runs them) and its prompt."""
        prompts = decode_utf8_prompts(utf8, length)
        return torch.stack([self.probability(prompt, image) for prompt, image in zip(prompts, images)])


def load_vqascore(name: str = "VQAScore-Qwen2.5-VL-7B", device: str | torch.device | None = None,
                  dtype: torch.dtype | str | None = None, download_root: str | os.PathLike | None = None,
                  checkpoint: str | os.PathLike | None = None, question: str = "vqascore",
                  answer: str = VQASCORE_ANSWER) -> VQAScore:
    """VQAScore in eval mode.

    Args:
        name: a registry name (its backbone's hub repo) or a hub repo id of a Qwen-VL instruct model.
        dtype: default: the checkpoint's (bfloat16, as t2v_metrics loads it).
        checkpoint: a local folder with the backbone's files instead of the hub repo's.
        question, answer: the templates (default t2v_metrics' for Qwen-VL; ``vqascore-flant5`` is
            the CLIP-FlanT5 release's question).
    """
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    folder = hub_model_folder(VQASCORE_REPOS.get(name, name), checkpoint, download_root)
    model = VQAScore(load_qwen_vl_chat(folder, dtype, str(checkpoint or name)), question, answer)
    return model.to(resolve_device(device)).eval()
