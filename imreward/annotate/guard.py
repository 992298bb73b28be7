"""Decides who may send a request body, and how large, before any of it is read.

FastAPI reads and parses a body (JSON, or multipart spooled to the temp dir) before it runs
a route's dependencies, so login and CSRF checks written as dependencies come too late to
stop an anonymous 1 GB upload. This ASGI middleware runs first and, for every request:
1. resolves the server-side session from the cookie (see `login_sessions`);
2. for a state-changing method, refuses a cross-site `Origin`, a missing login (401/403),
   or a non-admin on an admin route (403) before reading anything;
3. refuses a declared `Content-Length` over the route's limit (413) at once, then lets
   Starlette's `RequestBodyLimitResponder` count the bytes actually received (chunked
   bodies included) and answer 413 as soon as they pass it.
The CSRF token itself is still checked by `security.verify_csrf` once a (bounded) form is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from anyio import to_thread
from starlette.datastructures import Headers
from starlette.middleware.body_limit import RequestBodyLimitResponder
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .login_sessions import SessionPolicy, active_session, touch
from .security import SAFE_METHODS

SESSION_TOKEN_KEY = "sid"
PUBLIC_PATHS = frozenset({"/login", "/logout"})


@dataclass(frozen=True)
class BodyLimits:
    """The largest request body accepted, in bytes, by kind of route."""

    default: int = 64 * 1024  # label saves (JSON), login and other small forms
    admin_form: int = 1024 * 1024  # admin forms: assignment lists of many prompt ids
    import_archive: int = 512 * 1024 * 1024  # the zip uploaded to /admin/import


@dataclass(frozen=True)
class Caller:
    """Who sent the request, as the middleware found it; views read it from request.state."""

    user_id: int | None = None
    is_admin: bool = False


def body_limit(path: str, limits: BodyLimits) -> int:
    if path == "/admin/import":
        return limits.import_archive
    if path.startswith("/admin"):
        return limits.admin_form
    return limits.default


class RequestGuardMiddleware:
    def __init__(self, app: ASGIApp, read_sessions, write_sessions, policy: SessionPolicy, limits: BodyLimits):
        self.app = app
        self.read_sessions = read_sessions
        self.write_sessions = write_sessions
        self.policy = policy
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        token = scope["session"].get(SESSION_TOKEN_KEY)
        caller = await to_thread.run_sync(self._caller, token) if isinstance(token, str) else Caller()
        scope.setdefault("state", {})["caller"] = caller

        path, headers = scope["path"], Headers(scope=scope)
        refusal = None if scope["method"] in SAFE_METHODS else self._refusal(path, headers, caller)
        limit = body_limit(path, self.limits)
        if refusal is None and _declared_length(headers) > limit:
            refusal = (413, f"request body over {limit} bytes")
        if refusal is not None:
            await JSONResponse({"detail": refusal[1]}, status_code=refusal[0])(scope, receive, send)
            return
        # Starlette's responder counts the bytes received and answers 413 once they pass the limit.
        await RequestBodyLimitResponder(self.app, limit)(scope, receive, send)

    def _caller(self, token: str) -> Caller:
        with self.read_sessions() as session:
            found = active_session(session, token, self.policy)
        if found is None:
            return Caller()
        if found.needs_touch:  # its own write transaction: a read one cannot always be upgraded
            with self.write_sessions() as session:
                touch(session, found.id)
        return Caller(found.user_id, found.is_admin)

    @staticmethod
    def _refusal(path: str, headers: Headers, caller: Caller) -> tuple[int, str] | None:
        origin = headers.get("origin")
        if origin is not None and origin.partition("://")[2] != headers.get("host"):
            return 403, "cross-site request refused"
        if path in PUBLIC_PATHS:
            return None
        if caller.user_id is None:
            return (401, "log in first") if path.startswith("/api/") else (403, "log in first")
        if path.startswith("/admin") and not caller.is_admin:
            return 403, "administrators only"
        return None


def _declared_length(headers: Headers) -> int:
    try:
        return int(headers.get("content-length", "0"))
    except ValueError:
        return 0
