"""Failed-login limits kept in the database, so every worker process shares them.

Three limits apply to a login attempt:
- per address, over all accounts: at most `max_address_failures` attempts within `window_s` from
  a client the account does not know (see below), so one address cannot try many names (password
  spraying); a successful login gives its attempt back. Behind a reverse proxy the address is the
  forwarded one only when the proxy is configured (`--forwarded-allow-ips`);
- per (account, address): at most `max_failures` attempts within `window_s`. The attempt is
  counted *before* the password is checked, in one conditional UPDATE, so parallel
  requests cannot all slip past the check (the count and the check are one atomic step);
  a successful login clears the count.
- per account: after `backoff_after` failures from any address within `account_window_s`
  the account backs off,
  for `backoff_s` doubling with each further failure (up to `backoff_max_s`). The back-off
  does not apply to a browser that has logged in to the account before or to an address
  the account has logged in from, so an attacker elsewhere cannot lock the real user out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from .models import ThrottleCounter, utcnow


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int = 5  # attempts per (account, address) within window_s
    max_address_failures: int = 20  # attempts per address, all accounts, within window_s (unknown clients)
    window_s: float = 300.0
    backoff_after: int = 10  # failures of one account (all addresses) within account_window_s before back-off
    account_window_s: float = 3600.0
    backoff_s: float = 30.0  # first back-off; doubles with each further failure
    backoff_max_s: float = 3600.0
    hashing_threads: int = 2  # Argon2 hashes at once (64 MiB each), in threads of their own
    hashing_queue: int = 8  # logins waiting for a hashing thread; more get 503


def _key(*parts: str) -> str:
    """A fixed-length key whatever the username holds (length, NUL bytes, odd Unicode)."""
    joined = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha256(joined).hexdigest()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class LoginThrottle:
    def __init__(self, sessions: sessionmaker[Session], policy: LoginPolicy = LoginPolicy()):
        self.sessions = sessions
        self.policy = policy

    def admit(self, username: str, address: str, known_client: bool) -> bool:
        """Count one attempt; False when it must be refused without checking the password.
        `username` is the account's key (`accounts.username_key`), so look-alikes share counts."""
        if not known_client:
            if self._backing_off(_key("account", username)):
                return False
            if not self._take(_key("address", address), self.policy.max_address_failures, self.policy.window_s):
                return False
        return self._take(_key("pair", username, address), self.policy.max_failures, self.policy.window_s)

    def failed(self, username: str) -> None:
        """Record a wrong password against the account and start or lengthen its back-off."""
        key = _key("account", username)
        with self.sessions() as session:
            self._take(key, None, self.policy.account_window_s, session)
            attempts = session.scalar(select(ThrottleCounter.attempts).where(ThrottleCounter.key == key))
            excess = attempts - self.policy.backoff_after
            if excess >= 0:
                delay = min(self.policy.backoff_max_s, self.policy.backoff_s * 2 ** min(excess, 30))
                session.execute(
                    update(ThrottleCounter)
                    .where(ThrottleCounter.key == key)
                    .values(blocked_until=utcnow() + timedelta(seconds=delay))
                )
            session.commit()

    def succeeded(self, username: str, address: str) -> None:
        """Clear the counts of this account and address, and drop every count that has run out
        (attackers trying many names would otherwise grow the table without end)."""
        keys = [_key("pair", username, address), _key("account", username)]
        now = utcnow()
        longest = max(self.policy.window_s, self.policy.account_window_s)
        finished = (ThrottleCounter.window_start < now - timedelta(seconds=longest)) & or_(
            ThrottleCounter.blocked_until.is_(None), ThrottleCounter.blocked_until < now
        )
        with self.sessions() as session:
            session.execute(delete(ThrottleCounter).where(or_(ThrottleCounter.key.in_(keys), finished)))
            address_count = ThrottleCounter.key == _key("address", address)
            session.execute(  # a successful login does not use up its address's attempts
                update(ThrottleCounter).where(address_count).values(attempts=ThrottleCounter.attempts - 1)
            )
            session.execute(delete(ThrottleCounter).where(address_count, ThrottleCounter.attempts <= 0))
            session.commit()

    def _backing_off(self, key: str) -> bool:
        with self.sessions() as session:
            until = session.scalar(select(ThrottleCounter.blocked_until).where(ThrottleCounter.key == key))
        return until is not None and _aware(until) > utcnow()

    def _take(self, key: str, limit: int | None, window_s: float, session: Session | None = None) -> bool:
        """Add one attempt to `key` unless `limit` attempts are already in the window.

        The window restarts once it has passed. One UPDATE does the check and the count,
        so concurrent attempts are serialised by the database's row lock.
        """
        if session is None:
            with self.sessions() as own:
                taken = self._take(key, limit, window_s, own)
                own.commit()
                return taken
        now = utcnow()
        expired = ThrottleCounter.window_start <= now - timedelta(seconds=window_s)
        dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
        session.execute(
            dialect.insert(ThrottleCounter)
            .values(key=key, attempts=0, window_start=now)
            .on_conflict_do_nothing(index_elements=["key"])
        )
        counted = update(ThrottleCounter).where(ThrottleCounter.key == key)
        if limit is not None:
            counted = counted.where(or_(ThrottleCounter.attempts < limit, expired))
        result = session.execute(
            counted.values(
                attempts=case((expired, 1), else_=ThrottleCounter.attempts + 1),
                window_start=case((expired, now), else_=ThrottleCounter.window_start),
            )
        )
        return result.rowcount == 1
