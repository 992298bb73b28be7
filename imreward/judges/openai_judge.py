"""A scorer whose scores come from a vision-language judge behind an OpenAI-compatible endpoint
(vLLM, sglang, a hosted API), so any such judge works wherever a scorer does.

Each (prompt, image) pair is one chat completion: the image as a ``data:`` URL, then the question
(``config.template`` with the prompt in it), answered greedily. The answer becomes a score by
``config.rule`` (``imreward.judges.answers``). Requests run ``config.concurrency`` at a time with
retries (``imreward.judges.chat_client``); an item whose request keeps failing or whose answer
yields no score fails alone, with the reason and the raw answer in its error, never as a silent 0.

Besides the scorer contract (``score``, ``inference_rank``, ``score_batch``), it has the hooks the
reward server batches through (``preprocess``, ``encode_prompts``, ``score_preprocessed``). It has no
``score_tensor``: an answer over HTTP has no gradient, so ReFL refuses it as a reward.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from imreward.errors import JudgeAnswerError, ScorerOptionError
from imreward.image_io import DEFAULT_MAX_PIXELS, LOCAL_FORMATS, ImageInput, load_image
from imreward.judges.answers import (Judgement, final_score, judgement_from_logprobs, number_in, pairwise_verdict,
                                     sub_scores)
from imreward.judges.chat_client import ChatClient
from imreward.judges.config import LOGPROB_RULES, JudgeConfig
from imreward.judges.templates import fill_template
from imreward.scoring import (ErrorCallback, ScoreMethods, collate_utf8_prompts, decode_utf8_prompts,
                              utf8_prompts)

logger = logging.getLogger("imreward.judges")


def image_data_url(image: ImageInput, image_format: str = "png", max_pixels: int = DEFAULT_MAX_PIXELS,
                   formats: frozenset[str] = LOCAL_FORMATS) -> str:
    """An image input as a ``data:image/...;base64,`` URL: decoded and checked by ``load_image``
    (format allow-list, pixel budget), converted to RGB, re-encoded as PNG (zlib level 1) or JPEG
    (quality 95)."""
    rgb = load_image(image, max_pixels, formats).convert("RGB")
    buffer = io.BytesIO()
    if image_format == "jpeg":
        rgb.save(buffer, format="JPEG", quality=95)
    else:
        rgb.save(buffer, format="PNG", compress_level=1)  # lossless all the same; 3x faster than level 6 on photos
    return f"data:image/{image_format};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


@dataclass(frozen=True)
class ImageURL:
    """One preprocessed image: the data URL it is sent as (a type of its own, so that the server does not
    take it for an error message)."""

    url: str


class OpenAIJudge(ScoreMethods):
    """Scores from an OpenAI-compatible judge; see the module docstring (``score`` and
    ``inference_rank`` come from ``ScoreMethods``).

    Args:
        config: the endpoint, question, scoring rule and limits.
        client: the HTTP client (default: one built from ``config``).
    """

    def __init__(self, config: JudgeConfig, client: ChatClient | None = None) -> None:
        self.config = config
        self.client = client or ChatClient(config)
        self.max_pixels = DEFAULT_MAX_PIXELS
        self.image_formats = LOCAL_FORMATS
        self._pool = ThreadPoolExecutor(config.concurrency, thread_name_prefix="judge")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.client.close()

    def __repr__(self) -> str:
        return f"OpenAIJudge(model={self.config.model!r}, base_url={self.config.base_url!r}, rule={self.config.rule!r})"

    # ---- one request ----------------------------------------------------------------------------

    def request_body(self, text: str, image_urls: Sequence[str]) -> dict[str, Any]:
        """The chat-completion request: the images, then the question, in one user turn."""
        content = [{"type": "image_url", "image_url": {"url": url}} for url in image_urls]
        messages = [{"role": "system", "content": self.config.system}] if self.config.system else []
        messages.append({"role": "user", "content": content + [{"type": "text", "text": text}]})
        body: dict[str, Any] = {"model": self.config.model, "messages": messages,
                                "temperature": self.config.temperature, "max_tokens": self.config.answer_tokens}
        if self.config.rule in LOGPROB_RULES:
            body.update(logprobs=True, top_logprobs=self.config.top_logprobs)
        return body | self.config.extra_body

    def answer(self, text: str, image_urls: Sequence[str]) -> tuple[str, dict[str, Any]]:
        """(the answer's text, its first choice) for a question about images given as data URLs."""
        response = self.client.complete(self.request_body(text, image_urls))
        try:
            choice = response["choices"][0]
            content = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise JudgeAnswerError("the response has no choices[0].message", json.dumps(response)[:2000]) from None
        return content, choice

    def judge_url(self, prompt: str, image_url: str) -> Judgement:
        """The judgement of one image (a data URL) for ``prompt``."""
        text, choice = self.answer(fill_template(self.config.template, prompt), [image_url])
        rule = self.config.rule
        if rule == "number":
            return Judgement(number_in(text, self.config.pattern), text, sub_scores(text))
        if rule == "unifiedreward":
            return Judgement(final_score(text), text, sub_scores(text))
        try:
            top_logprobs = choice["logprobs"]["content"][0]["top_logprobs"]
        except (KeyError, IndexError, TypeError):
            raise JudgeAnswerError("the response has no logprobs.content[0].top_logprobs (does the server "
                                   "return logprobs?)", text) from None
        return judgement_from_logprobs(top_logprobs, text, rule == "yes-no", self.config.yes_word,
                                       self.config.no_word)

    def judge(self, prompt: str, image: ImageInput) -> Judgement:
        return self.judge_url(prompt, self.preprocess(image).url)

    def compare(self, prompt: str, image_a: ImageInput, image_b: ImageInput,
                template: str = "unifiedreward-pairwise") -> int:
        """1 or 2 for the image the judge prefers for ``prompt``, 0 for a tie, asked with a pairwise
        question (default: UnifiedReward's) about both images in one turn."""
        text, _ = self.answer(fill_template(template, prompt), [self.preprocess(image_a).url,
                                                                self.preprocess(image_b).url])
        return pairwise_verdict(text)

    # ---- the scoring contract -------------------------------------------------------------------

    def judge_batch(self, prompts: str | Sequence[str], images: Sequence[ImageInput], progress: bool = False,
                    on_error: ErrorCallback | None = None) -> list[Judgement | None]:
        """Judgements of (prompt, image) pairs, ``config.concurrency`` requests at a time, in input
        order. An item that fails is ``None`` and reported to ``on_error(index, error)``; without
        ``on_error`` the first failure is raised (requests not yet sent are dropped)."""
        images = list(images)
        prompt_list = [prompts] * len(images) if isinstance(prompts, str) else list(prompts)
        if len(prompt_list) != len(images):
            raise ValueError(f"got {len(prompt_list)} prompts for {len(images)} images")
        results: list[Judgement | None] = [None] * len(images)
        futures = {self._pool.submit(self.judge, prompt, image): index
                   for index, (prompt, image) in enumerate(zip(prompt_list, images))}
        with tqdm(total=len(images), unit="img", disable=not progress, desc="judging") as bar:
            for future in as_completed(futures):
                index = futures[future]
                try:
                    results[index] = future.result()
                except Exception as error:
                    if on_error is None:
                        for pending in futures:
                            pending.cancel()
                        raise
                    on_error(index, error)
                bar.update(1)
        return results

    def score_batch(self, prompts: str | Sequence[str], images: Sequence[ImageInput], batch_size: int = 32,
                    progress: bool = False, on_error: ErrorCallback | None = None) -> list[float | None]:
        """Scores of (prompt, image) pairs, as ``judge_batch``; ``batch_size`` is accepted for the
        contract's sake (requests are bounded by ``config.concurrency`` instead)."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        return [None if j is None else j.score for j in self.judge_batch(prompts, images, progress, on_error)]

    # ---- the reward server's hooks --------------------------------------------------------------

    def preprocess(self, image: ImageInput) -> ImageURL:
        """One image input as the data URL it is sent as."""
        return ImageURL(image_data_url(image, self.config.image_format, self.max_pixels, self.image_formats))

    def encode_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """Prompts as UTF-8 bytes, so they travel through the server's batcher like any scorer's tokens."""
        return utf8_prompts(prompts)

    def collate_images(self, images: list[ImageURL]) -> list[ImageURL]:
        return list(images)

    def collate_text(self, texts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return collate_utf8_prompts(texts)

    def score_preprocessed(self, images: list[ImageURL], text: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores [B] float32 of data URLs and encoded prompts; NaN (which the server reports as that
        item's error) where an item failed, its reason logged with the raw answer."""
        prompts = decode_utf8_prompts(text["utf8"], text["length"])
        scores = torch.full((len(images),), float("nan"))
        futures = {self._pool.submit(self.judge_url, prompt, image.url): i
                   for i, (prompt, image) in enumerate(zip(prompts, images))}
        for future in as_completed(futures):
            try:
                scores[futures[future]] = future.result().score
            except Exception as error:
                logger.warning("judge item failed: %s: %s", type(error).__name__, error)
        return scores


def load_openai_judge(name: str = "openai-judge", device: str | torch.device | None = None,
                      dtype: torch.dtype | str | None = None, download_root: str | os.PathLike | None = None,
                      config: str | os.PathLike | dict | JudgeConfig | None = None, **options: Any) -> OpenAIJudge:
    """An ``OpenAIJudge`` from ``config`` (a JSON file, a dict or a ``JudgeConfig``) with ``options``
    (its fields) on top; ``load_scorer("openai-judge:judge.json")`` passes the path as ``config``.

    ``device``, ``dtype`` and ``download_root`` are accepted and unused: the model runs on the
    endpoint's machine, in the precision its server chose (so commands and RL placements that pass
    them work unchanged).
    """
    if isinstance(config, (str, os.PathLike)):
        config = JudgeConfig.load(config)
    values = dataclasses.asdict(config) if isinstance(config, JudgeConfig) else dict(config or {})
    unknown = sorted(set(options) - set(JudgeConfig.__dataclass_fields__))
    if unknown:
        raise ScorerOptionError(f"scorer {name!r} does not take the option(s) {', '.join(unknown)} "
                                f"(judge options: {', '.join(JudgeConfig.__dataclass_fields__)})")
    if "base_url" not in values | options or "model" not in values | options:
        raise ValueError(f"scorer {name!r} needs a config with base_url and model, e.g. "
                         "load_scorer('openai-judge:judge.json') or load_score('openai-judge', "
                         "base_url='http://localhost:8000/v1', model='Qwen/Qwen2.5-VL-7B-Instruct')")
    return OpenAIJudge(JudgeConfig.from_dict(values | options))
