import os

import pytest
from fastapi.testclient import TestClient

from imreward.annotate.models import ImageLabel, User
from imreward.annotate.security import resolve_media_path

from annotate.annotate_helpers import PASSWORD, assignment_id_of, login, page_csrf


@pytest.fixture
def alice_and_bob(sqlite_platform):
    """alice holds p1 and p3, bob holds p2; each with a logged-in client."""
    sqlite_platform.assign(["p1", "p3"], ["alice"])
    sqlite_platform.assign(["p2"], ["bob"])
    alice, bob = TestClient(sqlite_platform.app), TestClient(sqlite_platform.app)
    tokens = {"alice": login(alice, "alice"), "bob": login(bob, "bob")}
    users = {name: sqlite_platform.user(name).id for name in ("alice", "bob")}
    with sqlite_platform.sessions() as session:
        ids = {
            prompt: assignment_id_of(session, users[name], prompt)
            for name, prompt in [("alice", "p1"), ("alice", "p3"), ("bob", "p2")]
        }
    return sqlite_platform, alice, bob, tokens, ids


def test_prompt_with_script_tag_is_escaped(alice_and_bob):
    _, alice, _, _, ids = alice_and_bob
    for path in ("/", f"/assignments/{ids['p3']}/prompt"):
        html = alice.get(path).text
        assert "<script>window.__pwned" not in html
        assert "&lt;script&gt;window.__pwned = true&lt;/script&gt; a cat" in html


def test_pages_carry_a_strict_content_security_policy(alice_and_bob):
    _, alice, _, _, _ = alice_and_bob
    headers = alice.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "requested",
    ["..%2Fannotate.db", "%2e%2e/%2e%2e/etc/passwd", "prompts/..%2F..%2Fannotate.db", "%2Fetc%2Fpasswd"],
)
def test_media_paths_leaving_the_media_root_are_refused(alice_and_bob, requested):
    platform, alice, _, _, _ = alice_and_bob
    assert (platform.media_root.parent / "annotate.db").exists()
    response = alice.get(f"/media/{requested}")
    assert response.status_code == 404
    assert b"SQLite format" not in response.content


def test_resolve_media_path_refuses_traversal_and_escaping_links(tmp_path):
    root = tmp_path / "media"
    (root / "a").mkdir(parents=True)
    (root / "a" / "ok.png").write_bytes(b"png")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", root / "a" / "link.png")
    assert resolve_media_path(root, "a/ok.png") == (root / "a" / "ok.png").resolve()
    for bad in ("../secret.txt", "a/../../secret.txt", "/etc/passwd", "a/link.png", "a\\..\\..\\secret.txt", ""):
        assert resolve_media_path(root, bad) is None, bad


def test_annotator_cannot_see_images_of_prompts_not_assigned_to_them(alice_and_bob):
    _, alice, bob, _, _ = alice_and_bob
    assert alice.get("/media/prompts/1/0.png").status_code == 200
    assert bob.get("/media/prompts/1/0.png").status_code == 404


def test_annotator_cannot_read_or_write_another_annotators_assignment(alice_and_bob):
    platform, alice, bob, tokens, ids = alice_and_bob
    theirs = ids["p1"]
    for stage in ("", "/prompt", "/rate", "/rank"):
        assert bob.get(f"/assignments/{theirs}{stage}", follow_redirects=False).status_code == 403
    headers = {"X-CSRF-Token": tokens["bob"]}
    prompt_save = bob.post(
        f"/api/assignments/{theirs}/prompt", json={"field": "category", "value": "Food"}, headers=headers
    )
    image_save = bob.post(f"/api/assignments/{theirs}/images/1", json={"field": "overall", "value": 1}, headers=headers)
    finish = bob.post(f"/assignments/{theirs}/complete", data={"csrf_token": tokens["bob"]})
    assert (prompt_save.status_code, image_save.status_code, finish.status_code) == (403, 403, 403)
    with platform.sessions() as session:
        label = session.query(ImageLabel).filter_by(assignment_id=theirs, image_id=1).one()
        assert label.overall is None and label.assignment.category is None
    assert "p1" not in bob.get("/").text


def test_requests_without_the_csrf_token_are_refused(alice_and_bob):
    platform, alice, _, tokens, ids = alice_and_bob
    url = f"/api/assignments/{ids['p1']}/prompt"
    body = {"field": "category", "value": "Food"}
    assert alice.post(url, json=body).status_code == 403
    assert alice.post(url, json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert alice.post(f"/assignments/{ids['p1']}/complete").status_code == 403
    assert alice.post(url, json=body, headers={"X-CSRF-Token": tokens["alice"]}).status_code == 200

    admin = TestClient(platform.app)
    admin_token = login(admin, "admin")
    assign = {"prompt_ids": [1], "user_ids": [platform.user("carol").id]}
    assert admin.post("/admin/assign", data=assign).status_code == 403
    assert admin.post("/admin/assign", data={**assign, "csrf_token": tokens["alice"]}).status_code == 403
    assert "carol: in progress" not in admin.get("/admin").text
    admin.post("/admin/assign", data={**assign, "csrf_token": admin_token})
    assert "carol: in progress" in admin.get("/admin").text


def test_login_without_csrf_token_is_refused(sqlite_platform):
    client = TestClient(sqlite_platform.app)
    response = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 403


def test_login_attempts_are_rate_limited(sqlite_platform):
    client = TestClient(sqlite_platform.app)
    token = page_csrf(client)
    attempt = {"username": "alice", "csrf_token": token}
    statuses = [client.post("/login", data={**attempt, "password": f"wrong-{n}"}).status_code for n in range(5)]
    assert statuses == [401] * 5
    blocked = client.post("/login", data={**attempt, "password": PASSWORD}, follow_redirects=False)
    assert blocked.status_code == 429
    other_user = client.post(
        "/login", data={**attempt, "username": "bob", "password": PASSWORD}, follow_redirects=False
    )
    assert other_user.status_code == 303  # behind a proxy everyone shares one address


def test_passwords_are_stored_as_argon2_hashes(sqlite_platform):
    with sqlite_platform.sessions() as session:
        stored = session.query(User).filter_by(username="alice").one().password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_roles_and_login_are_enforced(alice_and_bob):
    platform, alice, _, tokens, ids = alice_and_bob
    assert alice.get("/admin").status_code == 403
    anonymous = TestClient(platform.app)
    assert anonymous.get("/", follow_redirects=False).headers["location"] == "/login"
    token = page_csrf(anonymous)
    response = anonymous.post(f"/api/assignments/{ids['p1']}/prompt", json={"field": "category", "value": "Food"},
                              headers={"X-CSRF-Token": token})
    assert response.status_code == 401
