"""CSRF tokens, confinement of media paths and browser security headers."""

from __future__ import annotations

import secrets
from pathlib import Path, PurePosixPath

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_SESSION_KEY = "csrf_token"
CSRF_HEADER = "x-csrf-token"
CSRF_FORM_FIELD = "csrf_token"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_MEDIA_PATH = 1024  # the `images.media_path` column
MAX_NAME_BYTES = 255  # one path component, on common file systems

SECURITY_HEADERS = {
    b"content-security-policy": (
        b"default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; "
        b"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"same-origin",
    b"x-frame-options": b"DENY",
}


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get(CSRF_SESSION_KEY)
    if token is None:
        token = request.session[CSRF_SESSION_KEY] = secrets.token_urlsafe(32)
    return token


async def verify_csrf(request: Request) -> None:
    """Refuse state-changing requests whose CSRF token (header or form field) is wrong."""
    if request.method in SAFE_METHODS:
        return
    expected = request.session.get(CSRF_SESSION_KEY)
    supplied = request.headers.get(CSRF_HEADER)
    if supplied is None and request.headers.get("content-type", "").startswith(FORM_TYPES):
        supplied = (await request.form()).get(CSRF_FORM_FIELD)
    if not expected or not isinstance(supplied, str) or not secrets.compare_digest(expected, supplied):
        raise HTTPException(status_code=403, detail="missing or invalid CSRF token")


def resolve_media_path(media_root: Path, requested: str) -> Path | None:
    """The file `requested` names inside `media_root`, or None if it would leave the root.

    Refuses absolute paths, any `..` component, symbolic links pointing outside, and names
    the file system could not hold (a NUL byte, an over-long name), which would otherwise
    raise instead of answering "no such file".
    """
    if "\0" in requested or len(requested) > MAX_MEDIA_PATH:
        return None
    parts = PurePosixPath(requested.replace("\\", "/")).parts
    if not parts or requested.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
        return None
    if any(len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES for part in parts):
        return None
    root = media_root.resolve()
    try:
        candidate = root.joinpath(*parts).resolve()
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return None
    except (OSError, ValueError):  # e.g. a lone surrogate the file system cannot encode
        return None
    return candidate


class SecurityHeadersMiddleware:
    """Adds a strict Content-Security-Policy and related headers to every response."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS.items() if k not in present]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)
