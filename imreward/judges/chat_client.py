"""One chat-completions request at a time against an OpenAI-compatible endpoint, with retries.

Rate limits (429), server errors (5xx), 408/409, timeouts and dropped connections are retried with
exponential back-off and jitter, or after the ``Retry-After`` the server asks for; other client
errors (400, 401, 404, ...) fail at once. The API key is read from the environment variable the
config names and travels only in the ``Authorization`` header: it is in no message and no log.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import httpx

from imreward.errors import JudgeRequestError
from imreward.judges.config import JudgeConfig

logger = logging.getLogger("imreward.judges")
RETRIED_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
SHOWN_BODY_CHARS = 1000


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header's wait: seconds, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class ChatClient:
    """Posts chat-completion bodies to ``{base_url}/chat/completions``; thread-safe (one pooled
    connection per concurrent request, up to ``config.concurrency``)."""

    def __init__(self, config: JudgeConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        self._sleep = sleep
        headers = {}
        if config.api_key_env:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise ValueError(f"the judge's API key variable {config.api_key_env} (api_key_env) is not set")
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(config.timeout_s),
                                  limits=httpx.Limits(max_connections=config.concurrency,
                                                      max_keepalive_connections=config.concurrency))

    def close(self) -> None:
        self._http.close()

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """The decoded JSON answer to ``body``.

        Raises:
            JudgeRequestError: a status that is not retried, or still failing after
                ``config.max_retries`` retries; the message holds the status and the start of the body.
        """
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            try:
                response = self._http.post(self.url, json=body)
            except httpx.TimeoutException as error:
                failure, wait = f"timed out after {self.config.timeout_s:g} s ({type(error).__name__})", None
            except httpx.TransportError as error:
                failure, wait = f"connection failed ({type(error).__name__}: {error})", None
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        raise JudgeRequestError(f"{self.url} answered 200 with a body that is not JSON: "
                                                f"{response.text[:SHOWN_BODY_CHARS]!r}") from None
                failure = f"HTTP {response.status_code}: {response.text[:SHOWN_BODY_CHARS]}"
                if response.status_code not in RETRIED_STATUSES:
                    raise JudgeRequestError(f"{self.url} refused the request: {failure}")
                wait = retry_after_seconds(response.headers.get("Retry-After"))
            if attempt == attempts - 1:
                break
            if wait is None:
                wait = self.config.backoff_s * 2 ** attempt * random.uniform(0.5, 1.0)
            wait = min(wait, self.config.max_backoff_s)
            logger.info("judge request failed (%s); retry %d of %d in %.2f s", failure.splitlines()[0][:200],
                        attempt + 1, self.config.max_retries, wait)
            self._sleep(wait)
        raise JudgeRequestError(f"{self.url} failed {attempts} time(s); last: {failure}")
