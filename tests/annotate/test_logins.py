"""Login throttling and server-side sessions (issue 12, items 4 to 6)."""

import threading
import time
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
        assert session.query(ThrottleCounter).count() == 7  # (name, address) and name, for each; the address
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


def test_one_address_cannot_try_many_account_names(sqlite_platform):
    """Password spraying: an address gets `max_address_failures` attempts over all names."""
    app, policy = sqlite_platform.app, LoginPolicy()
    sprayer = from_address(app, "10.4.4.4")
    assert try_login(sprayer, "bob", PASSWORD) == 303  # bob's browser; a success uses up nothing
    bob_browser = sprayer
    sprayer = from_address(app, "10.4.4.4")
    statuses = [try_login(sprayer, f"name-{n}", "wrong password") for n in range(policy.max_address_failures + 3)]
    assert statuses == [401] * policy.max_address_failures + [429] * 3
    assert try_login(sprayer, "alice", PASSWORD) == 429  # an unknown client at that address waits
    assert try_login(bob_browser, "bob", PASSWORD) == 303  # a client the account knows does not
    assert try_login(from_address(app, "10.4.4.5"), "alice", PASSWORD) == 303  # other addresses unaffected


def test_password_hashing_is_bounded_and_leaves_pages_served(sqlite_url, tmp_path, monkeypatch):
    from imreward.annotate import accounts

    from annotate.annotate_helpers import build_platform

    platform = build_platform(sqlite_url, tmp_path, None, login=LoginPolicy(hashing_threads=1, hashing_queue=1))
    gate, hasher = threading.Event(), accounts.password_hasher

    class HeldHasher:
        def hash(self, password):
            gate.wait(30)
            return hasher.hash(password)

        def __getattr__(self, name):
            return getattr(hasher, name)

    monkeypatch.setattr(accounts, "password_hasher", HeldHasher())
    checks = platform.app.state.password_checks
    with TestClient(platform.app, client=("10.6.6.6", 40000)) as client:
        tokens = [page_csrf(client) for _ in range(2)]
        statuses = []

        def attempt(index: int) -> None:
            form = {"username": f"unknown-{index}", "password": "wrong password", "csrf_token": tokens[index]}
            statuses.append(client.post("/login", data=form, follow_redirects=False).status_code)

        waiting = [threading.Thread(target=attempt, args=(index,)) for index in range(2)]
        for thread in waiting:
            thread.start()
        deadline = time.monotonic() + 30
        while checks.pending < 2:  # one hashing, one queued
            assert time.monotonic() < deadline
            time.sleep(0.02)
        busy = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": tokens[0]},
                           follow_redirects=False)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "2"
        assert client.get("/login").status_code == 200  # pages are served meanwhile
        gate.set()
        for thread in waiting:
            thread.join(30)
    assert statuses == [401, 401]


def test_look_alike_usernames_name_one_account(sqlite_platform):
    from imreward.annotate.accounts import create_user

    for look_alike in ["carol\u200b", "car\u00adol", "\uff43\uff41\uff52\uff4f\uff4c", "Carol"]:
        with sqlite_platform.sessions() as session, pytest.raises(ValueError, match="user 'carol' already exists"):
            create_user(session, look_alike, PASSWORD, "annotator")
        assert try_login(from_address(sqlite_platform.app, "10.5.5.5"), look_alike, PASSWORD) == 303, look_alike


def test_new_names_are_normalised_and_mixed_script_look_alikes_refused(sqlite_platform):
    from imreward.annotate.accounts import create_user

    with sqlite_platform.sessions() as session:
        assert create_user(session, "jose\u0301", PASSWORD, "annotator").username == "jos\u00e9"  # composed
        with pytest.raises(ValueError, match="already exists"):
            create_user(session, "Jos\u00e9", PASSWORD, "annotator")
        with pytest.raises(ValueError, match="mixes scripts"):
            create_user(session, "d\u0430ve", PASSWORD, "annotator")  # a Cyrillic a
        with pytest.raises(ValueError, match="surrounding spaces"):
            create_user(session, "\u200b dave", PASSWORD, "annotator")
