"""User accounts: Argon2 password hashing, username rules, login checks, password changes.

Usernames are stored normalised (``normalize_username``: format characters such as zero-width
spaces and soft hyphens removed, then NFKC, so fullwidth letters and decomposed accents take their
usual form), and two names are the same account when they are equal case-folded
(``username_key``, a unique column): ``carol\u200b``, ``car\u00adol``, ``ｃａｒｏｌ`` and ``Carol``
all name ``carol``. A new name that mixes scripts with look-alike letters (Latin ``carol`` with a
Cyrillic ``а``) is refused (Unicode's confusables table, via ``confusable_homoglyphs``).
"""

from __future__ import annotations

import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from confusable_homoglyphs import confusables
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


def normalize_username(username: str) -> str:
    """The form a username is stored and shown in: without format characters, then NFKC."""
    visible = "".join(character for character in username if unicodedata.category(character) != "Cf")
    return unicodedata.normalize("NFKC", visible)


def username_key(username: str) -> str:
    """What makes two usernames one account: the normalised name, case-folded."""
    return normalize_username(username).casefold()


def find_user(session: Session, username: str) -> User | None:
    """The account ``username`` names (any case, any look-alike form ``username_key`` folds);
    an account older than the key column whose key went to an earlier look-alike answers to its
    exact name only."""
    keyless = session.scalar(select(User).where(User.username_key.is_(None), User.username == username))
    return keyless or session.scalar(select(User).where(User.username_key == username_key(username)))


def _new_username(username: str) -> str:
    """The normalised form of a name for a new account; ValueError when it is not allowed."""
    normalized = normalize_username(username)
    if not valid_username(normalized) or normalized != normalized.strip():
        raise ValueError(
            f"username must be 1 to {MAX_USERNAME_LENGTH} characters without control characters "
            "or surrounding spaces"
        )
    if confusables.is_dangerous(normalized):
        raise ValueError(f"username {normalized!r} mixes scripts with look-alike letters")
    return normalized


def _check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ValueError(
            f"password must have {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
        )


def create_user(session: Session, username: str, password: str, role: str) -> User:
    """A new account under the normalised form of ``username`` (``normalize_username``)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    username = _new_username(username)
    _check_password(password)
    existing = find_user(session, username)
    if existing is not None:
        raise ValueError(f"user {existing.username!r} already exists")
    user = User(username=username, username_key=username_key(username),
                password_hash=password_hasher.hash(password), role=role)
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
    user = find_user(session, username) if valid else None
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
