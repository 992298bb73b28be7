"""A loopback stand-in for an OpenAI-compatible chat-completions server (vLLM, sglang), so the judge
scorer's real HTTP code runs in tests and benchmarks without a model or the network.

``FakeJudge(respond)`` serves ``POST /v1/chat/completions``; ``respond(body, number)`` (the decoded
request and its 0-based arrival number) returns a ``Reply``. Every request's body and headers are
recorded.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """What the fake server sends: a status, headers, a JSON body (or raw text), after ``delay_s``."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    raw: str | None = None


def chat_reply(text: str, top_logprobs: dict[str, float] | None = None, **reply: Any) -> Reply:
    """A chat completion answering ``text``; ``top_logprobs`` (token -> probability) become the first
    token's ``logprobs.content[0].top_logprobs``, as vLLM returns them."""
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    if top_logprobs is not None:
        alternatives = [{"token": token, "logprob": math.log(p), "bytes": list(token.encode())}
                        for token, p in top_logprobs.items()]
        first = alternatives[0] if alternatives else {"token": text, "logprob": 0.0}
        choice["logprobs"] = {"content": [{"token": first["token"], "logprob": first["logprob"],
                                           "top_logprobs": alternatives}]}
    return Reply(body={"id": "chatcmpl-fake", "object": "chat.completion", "choices": [choice]}, **reply)


def question_of(body: dict) -> str:
    """The text part of a request's last user turn."""
    return next(part["text"] for part in body["messages"][-1]["content"] if part["type"] == "text")


class FakeJudge:
    """Serves chat completions from ``respond``; ``url`` is the API root (``.../v1``)."""

    def __init__(self, respond: Callable[[dict, int], Reply]) -> None:
        self.respond = respond
        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        judge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with judge._lock:
                    number = len(judge.bodies)
                    judge.bodies.append(body)
                    judge.headers.append(dict(self.headers))
                if self.path != "/v1/chat/completions":
                    reply = Reply(404, {"error": f"no route {self.path}"})
                else:
                    try:
                        reply = judge.respond(body, number)
                    except Exception as error:  # a responder's bug shows in the client's error, not as a hang-up
                        reply = Reply(500, {"error": f"{type(error).__name__}: {error}"})
                time.sleep(reply.delay_s)
                data = (reply.raw if reply.raw is not None else json.dumps(reply.body)).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeJudge:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()
