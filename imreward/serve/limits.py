"""Request-size limit and bearer-token check of the reward server.

Starlette has no body-size limit of its own, hence ``BodySizeLimit``: it refuses a declared
``Content-Length`` over the limit before reading anything, and stops chunked bodies as they grow.
"""

from __future__ import annotations

import hmac

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimit:
    """ASGI middleware answering 413 to request bodies larger than ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            message = ("invalid Content-Length" if not declared.isdigit()
                       else f"request body of {int(declared)} bytes exceeds the limit of {self.max_bytes}")
            await JSONResponse({"detail": message}, status_code=400 if not declared.isdigit() else 413)(
                scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, f"request body exceeds the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)


def check_bearer_token(request: Request, token: str | None) -> None:
    """Raise 401 unless ``token`` is unset or the request carries ``Authorization: Bearer <token>``."""
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
