"""Login throttling and server-side sessions (issue 12, items 4 to 6)."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from imreward.annotate.accounts import set_password
from imreward.annotate.login_throttle import LoginPolicy
from imreward.annotate.models import ThrottleCounter, User, UserSession, utcnow

from annotate.annotate_helpers import PASSWORD, login, page_csrf

ATTEMPTS = 40


def test_parallel_wrong_passwords_cannot_beat_the_limit(platform, live_server):
    """40 wrong passwords sent at once from one address: exactly 5 are checked."""
    clients = [httpx.Client(base_url=live_server) for _ in range(ATTEMPTS)]
    tokens = [page_csrf(client) for client in clients]
    start = threading.Barrier(ATTEMPTS)

    def attempt(index: int) -> int:
        start.wait()
        form = {"username": "alice", "password": f"wrong-{index}", "csrf_token": tokens[index]}
        return clients[index].post("/login", data=form).status_code

    with ThreadPoolExecutor(ATTEMPTS) as pool:
        statuses = sorted(pool.map(attempt, range(ATTEMPTS)))
    for client in clients:
        client.close()
    assert statuses == [401] * 5 + [429] * (ATTEMPTS - 5)


def try_login(client: TestClient, username: str, password: str) -> int:
    form = {"username": username, "password": password, "csrf_token": page_csrf(client)}
    return client.post("/login", data=form, follow_redirects=False).status_code


def from_address(app, address: str) -> TestClient:
    return TestClient(app, client=(address, 40000))


def test_attackers_elsewhere_cannot_lock_the_real_user_out(platform):
    app = platform.app
    browser = from_address(app, "10.0.0.1")
    assert try_login(browser, "alice", PASSWORD) == 303
    browser.post("/logout", data={"csrf_token": page_csrf(browser, "/")})

    policy = LoginPolicy()
    for number in range(policy.backoff_after // policy.max_failures):  # each address gets its own 5
        attacker = from_address(app, f"192.0.2.{number}")
        statuses = [try_login(attacker, "alice", f"guess-{n}") for n in range(policy.max_failures + 2)]
        assert statuses == [401] * policy.max_failures + [429] * 2
    assert try_login(from_address(app, "192.0.2.100"), "alice", "guess") == 429  # the account backs off

    assert try_login(from_address(app, "192.0.2.200"), "alice", PASSWORD) == 429  # unknown: backs off
    assert try_login(browser, "alice", PASSWORD) == 303  # the browser that logged in before
    assert try_login(from_address(app, "10.0.0.1"), "alice", PASSWORD) == 303  # a new browser, known address
    assert try_login(from_address(app, "198.51.100.7"), "bob", PASSWORD) == 303  # other accounts unaffected


def test_the_limit_holds_across_worker_processes(platform):
    """Two app instances on one database share the counts (as two workers would)."""
    first, second = from_address(platform.app, "10.1.1.1"), from_address(platform.new_app(), "10.1.1.1")
    statuses = [try_login(client, "bob", f"wrong-{n}") for n, client in enumerate([first, second] * 3)]
    assert statuses == [401] * 5 + [429]
    assert try_login(second, "bob", PASSWORD) == 429


def test_a_successful_login_clears_the_count(sqlite_platform):
    client = from_address(sqlite_platform.app, "10.2.2.2")
    assert [try_login(client, "carol", f"wrong-{n}") for n in range(4)] == [401] * 4
    assert try_login(client, "carol", PASSWORD) == 303
    assert [try_login(client, "carol", f"wrong-{n}") for n in range(5)] == [401] * 5


@pytest.fixture
def alice_logged_in(sqlite_platform):
    platform = sqlite_platform
    platform.assign(["p1"], ["alice"])
    client = TestClient(platform.app)
    token = login(client, "alice")
    return platform, client, token


def copy_of(client: TestClient, app) -> TestClient:
    thief = TestClient(app)
    thief.cookies.update(client.cookies)
    return thief


def logged_in(client: TestClient) -> bool:
    return client.get("/", follow_redirects=False).status_code == 200


def test_a_copied_cookie_stops_working_at_logout(alice_logged_in):
    platform, client, token = alice_logged_in
    thief = copy_of(client, platform.app)
    assert logged_in(thief)
    client.post("/logout", data={"csrf_token": token})
    assert not logged_in(client) and not logged_in(thief)
    response = thief.post(
        "/api/assignments/1/prompt", json={"field": "category", "value": "Food"}, headers={"x-csrf-token": token}
    )
    assert response.status_code == 401


def test_a_password_change_ends_every_session(alice_logged_in):
    platform, client, _ = alice_logged_in
    other = TestClient(platform.app)
    login(other, "alice")
    with platform.sessions() as session:
        set_password(session, session.query(User).filter_by(username="alice").one(), "a new long password")
    assert not logged_in(client) and not logged_in(other)
    assert try_login(TestClient(platform.app), "alice", "a new long password") == 303


def age_sessions(platform, **ago: timedelta) -> None:
    with platform.sessions() as session:
        session.execute(update(UserSession).values({column: utcnow() - delta for column, delta in ago.items()}))
        session.commit()


def test_sessions_end_after_the_idle_timeout(alice_logged_in):
    platform, client, _ = alice_logged_in
    age_sessions(platform, last_seen_at=timedelta(minutes=59))
    assert logged_in(client)  # and the request counts as activity
    age_sessions(platform, last_seen_at=timedelta(minutes=61))
    assert not logged_in(client)


def test_activity_does_not_extend_a_session_past_its_lifetime(alice_logged_in):
    platform, client, _ = alice_logged_in
    age_sessions(platform, created_at=timedelta(hours=11, minutes=59))
    assert logged_in(client)
    age_sessions(platform, created_at=timedelta(hours=12, minutes=1), last_seen_at=timedelta(seconds=1))
    assert not logged_in(client)


def test_activity_is_recorded_so_the_idle_timeout_restarts(alice_logged_in):
    platform, client, _ = alice_logged_in
    age_sessions(platform, last_seen_at=timedelta(minutes=50))
    assert logged_in(client)
    with platform.sessions() as session:
        last_seen = session.query(UserSession).one().last_seen_at
    assert abs((last_seen.replace(tzinfo=None) - utcnow().replace(tzinfo=None)).total_seconds()) < 60


def test_spent_login_counts_are_pruned(sqlite_platform):
    client = from_address(sqlite_platform.app, "10.3.3.3")
    for name in ("nobody-1", "nobody-2", "carol"):
        assert try_login(client, name, "wrong password") == 401
    with sqlite_platform.sessions() as session:
        assert session.query(ThrottleCounter).count() == 6  # (name, address) and name, for each
        session.execute(update(ThrottleCounter).values(window_start=utcnow() - timedelta(minutes=61)))
        session.commit()
    assert try_login(client, "bob", PASSWORD) == 303
    with sqlite_platform.sessions() as session:
        assert session.query(ThrottleCounter).count() == 0


def test_the_account_back_off_doubles_with_each_failure(sqlite_platform):
    from imreward.annotate.login_throttle import LoginThrottle

    throttle = LoginThrottle(sqlite_platform.sessions, LoginPolicy(backoff_after=3, backoff_s=10, backoff_max_s=35))
    delays = []
    for _ in range(6):
        throttle.failed("dave")
        with sqlite_platform.sessions() as session:
            until = session.query(ThrottleCounter.blocked_until).one()[0]
        delays.append(None if until is None else round((until.replace(tzinfo=None) - utcnow().replace(tzinfo=None)).total_seconds()))
    assert delays == [None, None, 10, 20, 35, 35]
    assert not throttle.admit("dave", "10.9.9.9", known_client=False)
    assert throttle.admit("dave", "10.9.9.9", known_client=True)
