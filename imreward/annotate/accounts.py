"""User accounts: Argon2 password hashing, username rules, login checks, password changes."""

from __future__ import annotations

import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .login_sessions import revoke_all
from .models import ROLES, User

# Module attribute so that tests can swap in cheaper parameters.
password_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # Argon2 takes any length; this bounds the work one request can ask for
MAX_USERNAME_LENGTH = 64


def valid_username(username: str) -> bool:
    """1 to 64 characters, none of them control or unpaired surrogate characters.

    PostgreSQL refuses NUL in text, so such a name must never reach a query.
    """
    return 0 < len(username) <= MAX_USERNAME_LENGTH and not any(
        unicodedata.category(character) in ("Cc", "Cs") for character in username
    )


def _check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ValueError(
            f"password must have {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
        )


def create_user(session: Session, username: str, password: str, role: str) -> User:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    if not valid_username(username):
        raise ValueError(
            f"username must be 1 to {MAX_USERNAME_LENGTH} characters without control characters"
        )
    _check_password(password)
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise ValueError(f"user {username!r} already exists")
    user = User(username=username, password_hash=password_hasher.hash(password), role=role)
    session.add(user)
    try:
        session.commit()
    except IntegrityError:  # created by a concurrent request since the check above
        session.rollback()
        raise ValueError(f"user {username!r} already exists") from None
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    """Return the user when the password matches, else None."""
    valid = valid_username(username) and len(password) <= MAX_PASSWORD_LENGTH
    user = session.scalar(select(User).where(User.username == username)) if valid else None
    if user is None:
        password_hasher.hash(password[:MAX_PASSWORD_LENGTH])  # same work as a check, so timing does not reveal names
        return None
    try:
        password_hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if password_hasher.check_needs_rehash(user.password_hash):
        user.password_hash = password_hasher.hash(password)
        session.commit()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    """Change a password and end every session of the account."""
    _check_password(password)
    user.password_hash = password_hasher.hash(password)
    session.commit()
    revoke_all(session, user.id)
