"""Request-scoped helpers shared by the views: database session, current user, rendering."""

from __future__ import annotations

from collections.abc import Iterator

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from .models import MAX_ROW_ID, User
from .security import SAFE_METHODS, csrf_token

# A row id in a URL beyond what the column holds is a 422, not a database error (500).
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


class NotLoggedIn(Exception):
    """Raised by `current_user`; pages redirect to the login form, the JSON API answers 401."""


def db_session(request: Request) -> Iterator[Session]:
    """A session per request; only state-changing requests take SQLite's write lock."""
    state = request.app.state
    factory = state.read_sessions if request.method in SAFE_METHODS else state.sessions
    with factory() as session:
        yield session


def current_user(request: Request, session: Session = Depends(db_session)) -> User:
    """The logged-in user, as `guard.RequestGuardMiddleware` resolved the session."""
    user_id = request.state.caller.user_id
    user = session.get(User, user_id) if user_id is not None else None
    if user is None:
        raise NotLoggedIn()
    return user


def current_admin(user: User = Depends(current_user)) -> User:
    if not user.is_admin:
        raise HTTPException(status_code=403, detail="administrators only")
    return user


def flash(request: Request, message: str) -> None:
    """Keep a message for the next page shown to this session."""
    request.session["flash"] = message


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def render(request: Request, template: str, status_code: int = 200, **context):
    context.update(
        csrf_token=csrf_token(request),
        flash=request.session.pop("flash", None),
        user=context.get("user"),
    )
    return request.app.state.templates.TemplateResponse(
        request, template, context, status_code=status_code
    )
