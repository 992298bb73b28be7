"""Login and logout."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from . import login_sessions
from .accounts import authenticate, find_user, username_key, valid_username
from .deps import db_session, redirect, render
from .guard import SESSION_TOKEN_KEY
from .password_checks import PasswordChecksBusy
from .security import csrf_token

router = APIRouter()

KNOWN_ACCOUNTS_KEY = "known"  # usernames that logged in from this browser before
KNOWN_ACCOUNTS_KEPT = 5
BUSY_RETRY_AFTER_S = 2


def client_address(request: Request) -> str:
    return request.client.host if request.client else "?"


@router.get("/login")
def login_form(request: Request):
    return render(request, "login.html")


@router.post("/login")
async def login(request: Request, username: str = Form(...), password: str = Form(...)):
    # Database steps run in the page-serving threads (never two connections at once, so a burst
    # of logins cannot exhaust the pool; reads in read-only sessions, which on SQLite take no
    # write lock); the password hash, slow and memory-hungry on purpose, in `PasswordChecks`.
    state = request.app.state
    checks = state.password_checks
    if checks.full():
        return _busy(request)
    address = client_address(request)
    account = username_key(username) if valid_username(username) else username
    if not await run_in_threadpool(_admit, request, username, account, address):
        return render(
            request, "login.html", status_code=429, error="Too many failed attempts; try later."
        )
    try:
        user = await checks.run(_authenticate, state.read_sessions, username, password)
    except PasswordChecksBusy:
        return _busy(request)
    if user is None:
        await run_in_threadpool(state.login_throttle.failed, account)
        return render(request, "login.html", status_code=401, error="Wrong username or password.")
    await run_in_threadpool(_start_session, request, user, account, address)
    return redirect("/admin" if user.is_admin else "/")


def _admit(request: Request, username: str, account: str, address: str) -> bool:
    """Count the attempt (`login_throttle`); a browser or address the account knows skips the
    account back-off and the per-address limit."""
    with request.app.state.read_sessions() as read:
        user = find_user(read, username) if valid_username(username) else None
        known = user is not None and (
            user.username in request.session.get(KNOWN_ACCOUNTS_KEY, [])
            or login_sessions.has_logged_in_from(read, user.id, address)
        )
    return request.app.state.login_throttle.admit(account, address, known)


def _authenticate(read_sessions, username: str, password: str):
    with read_sessions() as read:
        return authenticate(read, username, password)


def _start_session(request: Request, user, account: str, address: str) -> None:
    request.app.state.login_throttle.succeeded(account, address)
    with request.app.state.sessions() as session:
        _end_session(request, session)
        known_accounts = [user.username] + [
            n for n in request.session.get(KNOWN_ACCOUNTS_KEY, []) if n != user.username
        ]
        request.session.clear()
        request.session[KNOWN_ACCOUNTS_KEY] = known_accounts[:KNOWN_ACCOUNTS_KEPT]
        request.session[SESSION_TOKEN_KEY] = login_sessions.open_session(session, user.id, address)
    csrf_token(request)


def _busy(request: Request):
    response = render(
        request, "login.html", status_code=503, error="The server is busy; try again in a moment."
    )
    response.headers["Retry-After"] = str(BUSY_RETRY_AFTER_S)
    return response


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
