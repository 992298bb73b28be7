"""UnifiedReward (Wang et al., "Unified Reward Model for Multimodal Understanding and Generation", 2025;
github CodeGoat24/UnifiedReward), the Qwen-VL based checkpoints, run in-process.

Pointwise: the image and UnifiedReward's question (``imreward.judges.templates``), a greedy answer of
up to 512 new tokens (its scripts' ``generate(max_new_tokens=512)``), and the score read as its code
reads it: the first digits after the last "Final Score:" (``imreward.judges.answers.final_score``).
UnifiedReward-2.0's alignment/coherence/style question (template ``unifiedreward-acs``) reports
three sub-scores; the score is then the one ``score_key`` names (their mean by default). An answer
without a score fails that item with the raw answer in the error. Pairwise (``compare``): both
images and the pairwise question; the verdict "Image 1/2 is better" or "equally good".

Each item is one ``generate`` call, as the original scripts run them (no padding between items).
It has the reward server's hooks (``preprocess``, ``encode_prompts``, ``score_preprocessed``), so
``imreward serve`` can hold it; it has no ``score_tensor`` (a generated answer has no gradient).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from imreward.errors import JudgeAnswerError
from imreward.hub import resolve_device
from imreward.image_io import DEFAULT_MAX_PIXELS, LOCAL_FORMATS, ImageInput, load_image
from imreward.judges.answers import Judgement, final_score, pairwise_verdict, sub_scores
from imreward.judges.templates import fill_template
from imreward.models.qwen_vl_chat import Patches, QwenVLChat, hub_model_folder, load_qwen_vl_chat
from imreward.scoring import (ErrorCallback, ScoreMethods, collate_utf8_prompts, decode_utf8_prompts,
                              utf8_prompts)

logger = logging.getLogger("imreward.models.unifiedreward")
UNIFIEDREWARD_REPOS = {
    "UnifiedReward-qwen-7b": "CodeGoat24/UnifiedReward-qwen-7b",
    "UnifiedReward-2.0-qwen3vl-8b": "CodeGoat24/UnifiedReward-2.0-qwen3vl-8b",
}
SCORE_KEYS = ("final", "mean", "alignment", "coherence", "style")


class UnifiedReward(ScoreMethods, nn.Module):
    """UnifiedReward as a scorer; see the module docstring.

    Args:
        chat: the Qwen-VL model, tokenizer and image budget.
        template: the pointwise question (a name from ``imreward.judges.templates.TEMPLATES`` or a
            text with ``{prompt}``).
        score_key: ``final`` ("Final Score"), or a sub-score of UnifiedReward-2.0's answer
            (``alignment``, ``coherence``, ``style``) or their ``mean``.
        max_new_tokens: the answer's length limit (512, as UnifiedReward's scripts).
    """

    def __init__(self, chat: QwenVLChat, template: str = "unifiedreward", score_key: str = "final",
                 max_new_tokens: int = 512) -> None:
        super().__init__()
        if score_key not in SCORE_KEYS:
            raise ValueError(f"score_key must be one of {', '.join(SCORE_KEYS)}, got {score_key!r}")
        self.chat, self.template, self.score_key, self.max_new_tokens = chat, template, score_key, max_new_tokens
        self.max_pixels, self.image_formats = DEFAULT_MAX_PIXELS, LOCAL_FORMATS

    @property
    def device(self) -> torch.device:
        return self.chat.device

    def _patches(self, image: ImageInput):
        return self.chat.image_patches(load_image(image, self.max_pixels, self.image_formats))

    def score_of(self, text: str) -> Judgement:
        """The score ``score_key`` reads from an answer, with the sub-scores it reports."""
        details = sub_scores(text)
        if self.score_key == "final":
            return Judgement(final_score(text), text, details)
        wanted = ("alignment", "coherence", "style") if self.score_key == "mean" else (self.score_key,)
        missing = [name for name in wanted if name not in details]
        if missing:
            raise JudgeAnswerError(f"no {', '.join(missing)} score (\"{missing[0].title()} Score (1-5): X\")", text)
        return Judgement(sum(details[name] for name in wanted) / len(wanted), text, details)

    def judge(self, prompt: str, image: ImageInput) -> Judgement:
        """The greedy answer for one image and its score."""
        text = self.chat.answer(fill_template(self.template, prompt), [self._patches(image)], self.max_new_tokens)
        return self.score_of(text)

    def compare(self, prompt: str, image_a: ImageInput, image_b: ImageInput,
                template: str = "unifiedreward-pairwise") -> int:
        """1 or 2 for the image UnifiedReward prefers for ``prompt``, 0 for "equally good"."""
        text = self.chat.answer(fill_template(template, prompt), [self._patches(image_a), self._patches(image_b)],
                                self.max_new_tokens)
        return pairwise_verdict(text)

    def judge_batch(self, prompts: str | Sequence[str], images: Sequence[ImageInput], progress: bool = False,
                    on_error: ErrorCallback | None = None) -> list[Judgement | None]:
        """Judgements in input order; a failed item (unreadable image or answer) is ``None`` and goes to
        ``on_error(index, error)``, or is raised without it."""
        images = list(images)
        prompt_list = [prompts] * len(images) if isinstance(prompts, str) else list(prompts)
        if len(prompt_list) != len(images):
            raise ValueError(f"got {len(prompt_list)} prompts for {len(images)} images")
        results: list[Judgement | None] = []
        for index, (prompt, image) in enumerate(tqdm(list(zip(prompt_list, images)), unit="img", desc="judging",
                                                     disable=not progress)):
            try:
                results.append(self.judge(prompt, image))
            except (JudgeAnswerError, ValueError, OSError) as error:
                if on_error is None:
                    raise
                on_error(index, error)
                results.append(None)
        return results

    def score_batch(self, prompts: str | Sequence[str], images: Sequence[ImageInput], batch_size: int = 1,
                    progress: bool = False, on_error: ErrorCallback | None = None) -> list[float | None]:
        """Scores in input order (one ``generate`` per item whatever ``batch_size``); see ``judge_batch``."""
        return [None if j is None else j.score for j in self.judge_batch(prompts, images, progress, on_error)]

    # ---- the reward server's hooks ----------------------------------------------------------------

    def preprocess(self, image: ImageInput) -> Patches:
        return self._patches(image)

    def encode_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        return utf8_prompts(prompts)

    def collate_images(self, images: list[Patches]) -> list[Patches]:
        return list(images)

    def collate_text(self, texts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return collate_utf8_prompts(texts)

    def score_preprocessed(self, images: list[Patches], text: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores [B] float32; NaN (the server reports it as that item's error) where the answer has
        no score, logged with the raw answer."""
        scores = torch.full((len(images),), float("nan"))
        for index, (prompt, patches) in enumerate(zip(decode_utf8_prompts(text["utf8"], text["length"]), images)):
            answer = self.chat.answer(fill_template(self.template, prompt), [patches], self.max_new_tokens)
            try:
                scores[index] = self.score_of(answer).score
            except JudgeAnswerError as error:
                logger.warning("UnifiedReward item failed: %s", error)
        return scores


def load_unifiedreward(name: str = "UnifiedReward-qwen-7b", device: str | torch.device | None = None,
                       dtype: torch.dtype | str | None = None, download_root: str | os.PathLike | None = None,
                       checkpoint: str | os.PathLike | None = None, template: str | None = None,
                       score_key: str | None = None, max_new_tokens: int = 512) -> UnifiedReward:
    """UnifiedReward in eval mode.

    Args:
        name: a registry name (its hub repo) or a hub repo id.
        dtype: default: the checkpoint's (bfloat16 for the published ones), as the scripts load it.
        checkpoint: a local folder with the model's files instead of the hub repo's.
        template, score_key: default ``unifiedreward``/``final``, or ``unifiedreward-acs``/``mean`` for
            the 2.0 models.
    """
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    acs = "2.0" in name
    folder = hub_model_folder(UNIFIEDREWARD_REPOS.get(name, name), checkpoint, download_root)
    chat = load_qwen_vl_chat(folder, dtype, str(checkpoint or name))
    model = UnifiedReward(chat, template or ("unifiedreward-acs" if acs else "unifiedreward"),
                          score_key or ("mean" if acs else "final"), max_new_tokens)
    return model.to(resolve_device(device)).eval()
