"""The configuration of a judge served behind an OpenAI-compatible chat-completions endpoint (vLLM,
sglang, a hosted API): where it is, what it is asked, how its answer becomes a score, and how hard
to push it. It round-trips through a JSON file, which ``load_scorer("openai-judge:judge.json")`` reads.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# How an answer becomes a score (imreward.judges.answers):
#   "yes-no"        P(Yes) / (P(Yes) + P(No)) from the first answer token's top_logprobs
#   "p-yes"         P(Yes) alone (VQAScore's score), from the same top_logprobs
#   "number"        the first match of ``pattern`` in the answer text (its group 1 when it has groups)
#   "unifiedreward" the number after the last "Final Score:", as UnifiedReward's scripts read it
RULES = ("yes-no", "p-yes", "number", "unifiedreward")
LOGPROB_RULES = ("yes-no", "p-yes")
IMAGE_FORMATS = ("png", "jpeg")


@dataclass(frozen=True)
class JudgeConfig:
    """One OpenAI-compatible judge.

    Attributes:
        base_url: the API root, e.g. ``http://localhost:8000/v1``; requests go to
            ``{base_url}/chat/completions``.
        model: the served model's name (vLLM's ``--served-model-name``).
        template: the question, with ``{prompt}`` where the text prompt goes, or a name from
            ``imreward.judges.templates.TEMPLATES`` (default: VQAScore's question).
        rule: how the answer becomes a score (``RULES``).
        pattern: the ``number`` rule's regular expression.
        yes_word, no_word: the answer words of the logprob rules, compared with each top token
            stripped of spaces and lower-cased (so " Yes", "yes" and "YES" all count).
        top_logprobs: alternatives requested per token for the logprob rules (OpenAI allows 0-20).
        max_tokens: answer length (default: 1 for the logprob rules, 1024 for the text rules).
        temperature: 0 by default (greedy), so the same image gets the same answer.
        system: an optional system message.
        concurrency: requests in flight at once, per scorer.
        max_retries: retries of a request after a 408/409/429/5xx answer, a timeout or a dropped
            connection (other 4xx fail at once).
        backoff_s, max_backoff_s: the first wait before a retry, doubled each time up to the cap
            (with jitter); a ``Retry-After`` header, when sent, sets the wait instead (capped too).
        timeout_s: per request (connect, read and write each).
        api_key_env: the environment variable holding the API key, sent as a bearer token; none
            by default (local servers). The key itself is never stored in the config or logged.
        image_format: how images travel in their ``data:`` URLs: ``png`` (lossless) or ``jpeg``
            (quality 95, as UnifiedReward's vLLM client sends them).
        extra_body: further request fields, merged last (e.g. vLLM's ``{"top_k": 1}``).
    """

    base_url: str
    model: str
    template: str = "vqascore"
    rule: str = "yes-no"
    pattern: str = r"-?\d+(?:\.\d+)?"
    yes_word: str = "yes"
    no_word: str = "no"
    top_logprobs: int = 20
    max_tokens: int | None = None
    temperature: float = 0.0
    system: str | None = None
    concurrency: int = 8
    max_retries: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    timeout_s: float = 120.0
    api_key_env: str | None = None
    image_format: str = "png"
    extra_body: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if not self.model:
            raise ValueError("model must name the served model")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {', '.join(IMAGE_FORMATS)}, got {self.image_format!r}")
        if self.concurrency < 1 or self.max_retries < 0 or not 0 <= self.top_logprobs <= 20:
            raise ValueError("concurrency must be >= 1, max_retries >= 0 and top_logprobs within 0..20")
        if not all(math.isfinite(v) and v > 0 for v in (self.timeout_s, self.max_backoff_s)) or self.backoff_s < 0:
            raise ValueError("timeout_s and max_backoff_s must be positive, backoff_s not negative")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if not isinstance(self.extra_body, dict):
            raise ValueError("extra_body must be a JSON object")

    @property
    def answer_tokens(self) -> int:
        return self.max_tokens or (1 if self.rule in LOGPROB_RULES else 1024)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> JudgeConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown judge option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)

    @classmethod
    def load(cls, path: str | os.PathLike) -> JudgeConfig:
        """Read a JSON file of the fields above."""
        try:
            values = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from error
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a JSON object of judge options")
        return cls.from_dict(values)

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n", encoding="utf-8")
