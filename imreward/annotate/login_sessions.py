"""Server-side login sessions: revocable, with an absolute lifetime and an idle timeout.

The browser's signed cookie carries only a random token; the session itself is a row of
`user_sessions` keyed by the token's SHA-256. Logging out or changing the password revokes
the row, so a copied cookie stops working at once, and no amount of activity extends a
session past its absolute lifetime.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from .models import User, UserSession, utcnow

ADDRESS_LENGTH = 64
KEEP_DAYS = 90


@dataclass(frozen=True)
class SessionPolicy:
    lifetime_s: float = 12 * 60 * 60  # a session ends this long after login, however active
    idle_s: float = 60 * 60  # ... or after this long without a request
    touch_every_s: float = 60.0  # last activity is written at most this often (one write, not one per request)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def open_session(session: Session, user_id: int, address: str) -> str:
    """Start a session for `user_id`; returns the token to put in the cookie.

    Rows older than `KEEP_DAYS` are deleted on the way (until then they remember the
    addresses a user logged in from; see `has_logged_in_from`).
    """
    session.execute(delete(UserSession).where(UserSession.created_at < utcnow() - timedelta(days=KEEP_DAYS)))
    token = secrets.token_urlsafe(32)
    session.add(
        UserSession(token_hash=_token_hash(token), user_id=user_id, address=address[:ADDRESS_LENGTH])
    )
    session.commit()
    return token


@dataclass(frozen=True)
class ActiveSession:
    id: int
    user_id: int
    is_admin: bool
    needs_touch: bool  # last activity is older than `touch_every_s`: call `touch`


def active_session(session: Session, token: str, policy: SessionPolicy) -> ActiveSession | None:
    """The session the token names, or None when it is unknown, revoked, expired or idle too long.

    Only reads, so it can run in a read-only transaction; `touch` records the activity.
    """
    now = utcnow()
    row = session.execute(
        select(UserSession.id, UserSession.user_id, UserSession.last_seen_at, User.role)
        .join(User, User.id == UserSession.user_id)
        .where(
            UserSession.token_hash == _token_hash(token),
            UserSession.revoked_at.is_(None),
            UserSession.created_at > now - timedelta(seconds=policy.lifetime_s),
            UserSession.last_seen_at > now - timedelta(seconds=policy.idle_s),
        )
    ).first()
    if row is None:
        return None
    stale = _aware(row.last_seen_at) < now - timedelta(seconds=policy.touch_every_s)
    return ActiveSession(row.id, row.user_id, row.role == "admin", stale)


def touch(session: Session, session_id: int) -> None:
    session.execute(update(UserSession).where(UserSession.id == session_id).values(last_seen_at=utcnow()))
    session.commit()


def revoke(session: Session, token: str) -> None:
    session.execute(
        update(UserSession)
        .where(UserSession.token_hash == _token_hash(token), UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    session.commit()


def revoke_all(session: Session, user_id: int) -> None:
    """End every session of a user (password change, account removal)."""
    session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    session.commit()


def has_logged_in_from(session: Session, user_id: int, address: str) -> bool:
    """Whether the user ever logged in from `address` (a known address skips the account back-off)."""
    query = (
        select(UserSession.id)
        .where(UserSession.user_id == user_id, UserSession.address == address[:ADDRESS_LENGTH])
        .limit(1)
    )
    return session.scalar(query) is not None
