"""Login and logout."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from sqlalchemy.orm import Session

from .accounts import authenticate
from .deps import USER_SESSION_KEY, db_session, redirect, render
from .security import csrf_token

router = APIRouter()


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
    limiter = request.app.state.login_limiter
    keys = (f"address:{request.client.host if request.client else '?'}", f"user:{username}")
    if limiter.blocked(*keys):
        return render(
            request, "login.html", status_code=429, error="Too many failed attempts; try later."
        )
    user = authenticate(session, username, password)
    if user is None:
        limiter.record_failure(*keys)
        return render(request, "login.html", status_code=401, error="Wrong username or password.")
    limiter.reset(f"user:{username}")
    request.session.clear()
    request.session[USER_SESSION_KEY] = user.id
    csrf_token(request)
    return redirect("/admin" if user.is_admin else "/")


@router.post("/logout")
def logout(request: Request):
    request.session.clear()
    return redirect("/login")
