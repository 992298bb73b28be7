"""Login and logout."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from sqlalchemy.orm import Session

from . import login_sessions
from .accounts import authenticate, valid_username
from .deps import db_session, redirect, render
from .guard import SESSION_TOKEN_KEY
from .security import csrf_token

router = APIRouter()

KNOWN_ACCOUNTS_KEY = "known"  # usernames that logged in from this browser before
KNOWN_ACCOUNTS_KEPT = 5


def client_address(request: Request) -> str:
    return request.client.host if request.client else "?"


@router.get("/login")
def login_form(request: Request):
    return render(request, "login.html")


@router.post("/login")
def login(
    request: Request,
    username: str = Form(...),
    password: str = Form(...),
    session: Session = Depends(db_session),
):
    throttle = request.app.state.login_throttle
    address = client_address(request)
    # Reads go through read-only sessions: on SQLite they take no write lock, so the password
    # check (slow on purpose) does not hold up other writers. No step holds two connections
    # at once, so a burst of logins cannot exhaust the pool.
    reader = request.app.state.read_sessions
    with reader() as read:
        known = valid_username(username) and (
            username in request.session.get(KNOWN_ACCOUNTS_KEY, [])
            or login_sessions.has_logged_in_from(read, username, address)
        )
    if not throttle.admit(username, address, known):
        return render(
            request, "login.html", status_code=429, error="Too many failed attempts; try later."
        )
    with reader() as read:
        user = authenticate(read, username, password)
    if user is None:
        throttle.failed(username)
        return render(request, "login.html", status_code=401, error="Wrong username or password.")
    throttle.succeeded(username, address)
    _end_session(request, session)
    known_accounts = [username] + [n for n in request.session.get(KNOWN_ACCOUNTS_KEY, []) if n != username]
    request.session.clear()
    request.session[KNOWN_ACCOUNTS_KEY] = known_accounts[:KNOWN_ACCOUNTS_KEPT]
    request.session[SESSION_TOKEN_KEY] = login_sessions.open_session(session, user.id, address)
    csrf_token(request)
    return redirect("/admin" if user.is_admin else "/")


@router.post("/logout")
def logout(request: Request, session: Session = Depends(db_session)):
    _end_session(request, session)
    known_accounts = request.session.get(KNOWN_ACCOUNTS_KEY, [])
    request.session.clear()
    request.session[KNOWN_ACCOUNTS_KEY] = known_accounts
    return redirect("/login")


def _end_session(request: Request, session: Session) -> None:
    token = request.session.get(SESSION_TOKEN_KEY)
    if isinstance(token, str):
        login_sessions.revoke(session, token)
