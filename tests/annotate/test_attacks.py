"""Hostile requests against the annotation platform: none may be read before it is allowed,
and none may end in a 500 (issue 12, items 1 and 8)."""

import itertools
import json
import tempfile

import httpx
import pytest
from fastapi.testclient import TestClient

from imreward.annotate.guard import BodyLimits

from annotate.annotate_helpers import PASSWORD, assignment_id_of, build_platform, login, page_csrf, running_server

CHUNK = 64 * 1024


class Body:
    """A streamed (chunked) request body that records how much of it the server pulled."""

    def __init__(self, total: int, chunk: bytes = b"x" * CHUNK):
        self.total, self.chunk, self.pulled = total, chunk, 0

    def __iter__(self):
        while self.pulled < self.total:
            self.pulled += len(self.chunk)
            yield self.chunk


def multipart_head(boundary: str = "b0undary") -> tuple[bytes, dict]:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="archive"; filename="big.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    return head, {"content-type": f"multipart/form-data; boundary={boundary}"}


@pytest.fixture
def spool(tmp_path, monkeypatch):
    """The temp dir the server spools uploads to, watched by the tests."""
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def small_limits_platform(sqlite_url, tmp_path, prompt_folders):
    limits = BodyLimits(default=4 * 1024, admin_form=16 * 1024, import_archive=256 * 1024)
    platform = build_platform(sqlite_url, tmp_path, prompt_folders, body_limits=limits)
    platform.assign(["p1"], ["alice"])
    return platform


def test_anonymous_upload_to_admin_import_is_refused_before_reading(small_limits_platform, spool):
    client = TestClient(small_limits_platform.app)
    token = page_csrf(client)
    head, headers = multipart_head()
    body = Body(8 * 1024 * 1024)
    response = client.post(
        "/admin/import", content=itertools.chain([head], body), headers={**headers, "x-csrf-token": token}
    )
    assert response.status_code == 403
    assert body.pulled <= CHUNK  # at most what the test client buffers ahead
    assert list(spool.iterdir()) == []


def test_annotator_cannot_upload_to_admin_import(small_limits_platform, spool):
    client = TestClient(small_limits_platform.app)
    token = login(client, "alice")
    body = Body(8 * 1024 * 1024)
    head, headers = multipart_head()
    response = client.post("/admin/import", content=itertools.chain([head], body), headers={**headers, "x-csrf-token": token})
    assert response.status_code == 403 and body.pulled <= CHUNK


ASYNCIO_READ_BYTES = 256 * 1024  # asyncio's _SelectorSocketTransport.max_size


class ReceivedBytes:
    """ASGI wrapper counting the request body bytes the app actually pulled from the server."""

    def __init__(self, app):
        self.app, self.received = app, 0

    async def __call__(self, scope, receive, send):
        async def counted():
            message = await receive()
            self.received += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


def test_admin_upload_over_the_limit_stops_while_streaming(small_limits_platform, spool):
    """A chunked upload (no Content-Length) to a real server is cut off at the limit."""
    spy = ReceivedBytes(small_limits_platform.app)
    with running_server(spy) as url, httpx.Client(base_url=url, follow_redirects=True) as client:
        token = login(client, "admin")
        head, headers = multipart_head()
        body = Body(32 * 1024 * 1024)
        try:
            status = client.post(
                "/admin/import", content=itertools.chain([head], body), headers={**headers, "x-csrf-token": token}
            ).status_code
        except httpx.TransportError:  # the server may close while the client is still sending
            status = None
    assert status in (413, None), status
    # The limit plus what one body message can hold beyond it, not the 32 MiB sent: uvicorn buffers
    # up to its 64 KiB high-water mark (CHUNK) before pausing the socket, plus the read in progress
    # (asyncio reads up to 256 KiB at a time).
    bound = 256 * 1024 + ASYNCIO_READ_BYTES + CHUNK
    assert spy.received <= bound
    assert sum(f.stat().st_size for f in spool.rglob("*") if f.is_file()) <= bound


def test_declared_oversize_body_is_refused_before_reading(small_limits_platform):
    platform = small_limits_platform
    client = TestClient(platform.app)
    token = login(client, "alice")
    with platform.sessions() as session:
        assignment = assignment_id_of(session, platform.user("alice").id, "p1")
    big = json.dumps({"field": "category", "value": "x" * (1024 * 1024)})
    response = client.post(
        f"/api/assignments/{assignment}/prompt", content=big,
        headers={"content-type": "application/json", "x-csrf-token": token},
    )
    assert response.status_code == 413


def test_anonymous_json_is_refused_before_reading(small_limits_platform):
    client = TestClient(small_limits_platform.app)
    token = page_csrf(client)
    body = Body(4 * 1024 * 1024, b'{"field": "category", "value": "' + b"x" * CHUNK)
    response = client.post(
        "/api/assignments/1/prompt", content=iter(body),
        headers={"content-type": "application/json", "x-csrf-token": token},
    )
    assert response.status_code == 401 and body.pulled <= CHUNK


def test_cross_site_origin_is_refused_even_with_a_valid_cookie(small_limits_platform):
    client = TestClient(small_limits_platform.app)
    token = login(client, "admin")
    form = {"prompt_ids": [1], "user_ids": [2], "csrf_token": token}
    refused = client.post("/admin/assign", data=form, headers={"origin": "https://evil.example"})
    assert refused.status_code == 403
    allowed = client.post("/admin/assign", data=form, headers={"origin": "http://testserver"}, follow_redirects=False)
    assert allowed.status_code == 303


@pytest.fixture
def hostile(platform):
    """An annotator and an admin client on SQLite and PostgreSQL; server errors become 500s."""
    platform.assign(["p1"], ["alice"])
    alice, admin = TestClient(platform.app, raise_server_exceptions=False), TestClient(platform.app, raise_server_exceptions=False)
    tokens = {"alice": login(alice, "alice"), "admin": login(admin, "admin")}
    with platform.sessions() as session:
        assignment = assignment_id_of(session, platform.user("alice").id, "p1")
    return platform, alice, admin, tokens, assignment


HUGE = 2**64 + 1


def test_malformed_paths_and_ids_are_client_errors(hostile):
    platform, alice, admin, tokens, assignment = hostile
    image = platform.image_ids("p1")[0]
    paths = [
        "/media/prompts/1/%00.png", "/media/prompts%00/1/0.png", "/media/" + "a" * 300,
        "/media/prompts/1/" + "b" * 300 + ".png", "/media/%ED%A0%80.png", "/media/" + "c/" * 600,
        f"/assignments/{HUGE}", f"/assignments/{HUGE}/rate", "/assignments/-1", f"/assignments/{2**31}",
    ]
    for path in paths:
        status = alice.get(path).status_code
        assert 400 <= status < 500, (path, status)
    headers = {"x-csrf-token": tokens["alice"]}
    posts = [
        (f"/api/assignments/{HUGE}/prompt", {"field": "category", "value": "Food"}),
        (f"/api/assignments/{assignment}/images/{HUGE}", {"field": "overall", "value": 3}),
        (f"/api/assignments/{assignment}/images/{image}", {"field": "overall", "value": HUGE}),
        (f"/api/assignments/{assignment}/prompt", {"field": "category\x00", "value": "Food\x00"}),
    ]
    for url, body in posts:
        status = alice.post(url, json=body, headers=headers).status_code
        assert 400 <= status < 500, (url, body, status)
    admin_form = {"prompt_ids": [str(HUGE), "1"], "user_ids": [str(HUGE)], "csrf_token": tokens["admin"]}
    for action in ("assign", "unassign", "delete"):
        assert admin.post(f"/admin/{action}", data=admin_form, follow_redirects=False).status_code == 303, action


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_json_numbers_are_client_errors(hostile, literal):
    platform, alice, _, tokens, assignment = hostile
    image = platform.image_ids("p1")[0]
    body = '{"field": "overall", "value": %s}' % literal
    response = alice.post(
        f"/api/assignments/{assignment}/images/{image}", content=body,
        headers={"content-type": "application/json", "x-csrf-token": tokens["alice"]},
    )
    assert response.status_code == 422  # the answer is valid JSON naming the field, not the NaN
    assert any(problem.startswith("body.value") for problem in response.json()["detail"])


@pytest.mark.parametrize("username", ["ali\x00ce", "\x00", "a" * 5000, "ali\u0007ce"])
def test_hostile_usernames_fail_like_a_wrong_password(hostile, username):
    platform = hostile[0]
    client = TestClient(platform.app, raise_server_exceptions=False)
    token = page_csrf(client)
    response = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 401


def test_admin_cannot_create_an_account_with_a_nul_in_its_name(hostile):
    platform, _, admin, tokens, _ = hostile
    form = {"username": "eve\x00", "password": PASSWORD, "role": "annotator", "csrf_token": tokens["admin"]}
    response = admin.post("/admin/users", data=form)
    assert response.status_code == 200 and "Could not create the account" in response.text


def test_fuzzed_requests_never_give_a_server_error(hostile):
    """A small seeded fuzz over the routes: random ids, fields, values and bodies."""
    import random

    platform, alice, admin, tokens, assignment = hostile
    rng = random.Random(12)
    ids = [0, 1, assignment, -5, 2**31 - 1, 2**31, 2**63, HUGE]
    values = [None, True, 0, 3, 7, 8, -1, 1.5, "Food", "", "\x00", "x" * 300, [], {}, HUGE]
    fields = ["category", "unclear", "overall", "rank", "issue", "artifacts", "", "\x00" * 3, "x" * 200]
    raw_bodies = [b"", b"{", b"[]", b'{"field": "overall"}', b"\xff\xfe", b'{"field": 1, "value": NaN}', b"null"]
    headers = {"x-csrf-token": tokens["alice"]}
    for _ in range(60):
        target = rng.choice([f"/api/assignments/{rng.choice(ids)}/prompt",
                             f"/api/assignments/{rng.choice(ids)}/images/{rng.choice(ids)}"])
        if rng.random() < 0.3:
            response = alice.post(target, content=rng.choice(raw_bodies),
                                  headers={**headers, "content-type": "application/json"})
        else:
            response = alice.post(target, json={"field": rng.choice(fields), "value": rng.choice(values)}, headers=headers)
        assert response.status_code < 500, (target, response.text)
    for _ in range(20):
        stage = rng.choice(["prompt", "rate", "rank", "x", "%00", "." * 300])
        assert alice.get(f"/assignments/{rng.choice(ids)}/{stage}", follow_redirects=False).status_code < 500
