"""Unassign and delete from the web UI, paged and searchable lists, the audit log (issue 12, item 9)."""

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from imreward.annotate.admin_actions import PAGE_SIZE
from imreward.annotate.models import Assignment, AuditEntry, Image, Prompt

from annotate.annotate_helpers import complete_assignment, login

ROW = re.compile(r'<tr data-prompt="([^"]*)">')


def admin_client(platform):
    client = TestClient(platform.app)
    return platform, client, login(client, "admin")


@pytest.fixture
def admin(sqlite_platform):
    return admin_client(sqlite_platform)


def rows(client, **params) -> list[str]:
    return ROW.findall(client.get("/admin", params=params).text)


def counts(platform):
    with platform.sessions() as session:
        return {
            table.__name__: session.scalar(select(func.count()).select_from(table))
            for table in (Prompt, Image, Assignment)
        }


def test_unassign_refuses_labelled_work_unless_forced(admin):
    platform, client, token = admin
    platform.assign(["p1", "p2"], ["alice", "bob"])
    complete_assignment(platform, "alice", "p1", "Food", ranks=[1, 2, 3], overall=[5, 4, 3])
    form = {"prompt_ids": [platform.prompt("p1").id, platform.prompt("p2").id],
            "user_ids": [platform.user("alice").id], "csrf_token": token}
    assert "Nothing unassigned" in client.post("/admin/unassign", data=form).text
    assert counts(platform)["Assignment"] == 4
    bob_only = {**form, "user_ids": [platform.user("bob").id]}
    assert "Removed 2 assignments" in client.post("/admin/unassign", data=bob_only).text
    assert "Removed 2 assignments" in client.post("/admin/unassign", data={**form, "force": "true"}).text
    assert counts(platform)["Assignment"] == 0


def test_delete_removes_prompts_with_their_images_and_files(admin):
    platform, client, token = admin
    platform.assign(["p1", "p2"], ["alice"])
    complete_assignment(platform, "alice", "p1", "Food", ranks=[1, 2, 3], overall=[5, 4, 3])
    p1, p2 = platform.prompt("p1").id, platform.prompt("p2").id
    assert (platform.media_root / "prompts" / str(p2) / "0.png").is_file()
    form = {"prompt_ids": [p1, p2], "csrf_token": token}
    assert "Nothing deleted" in client.post("/admin/delete", data=form).text
    assert counts(platform)["Prompt"] == 3
    assert "Deleted 1 prompts" in client.post("/admin/delete", data={**form, "prompt_ids": [p2]}).text
    assert not (platform.media_root / "prompts" / str(p2)).exists()
    assert "Deleted 1 prompts" in client.post("/admin/delete", data={**form, "force": "true"}).text
    assert counts(platform) == {"Prompt": 1, "Image": 3, "Assignment": 0}
    assert not (platform.media_root / "prompts" / str(p1)).exists()
    assert (platform.media_root / "prompts" / str(platform.prompt("p3").id) / "0.png").is_file()


def test_annotators_cannot_unassign_or_delete(admin):
    platform, _, _ = admin
    alice = TestClient(platform.app)
    token = login(alice, "alice")
    for action in ("unassign", "delete"):
        response = alice.post(f"/admin/{action}", data={"prompt_ids": [1], "force": "true", "csrf_token": token})
        assert response.status_code == 403
    assert counts(platform)["Prompt"] == 3


def seed_prompts(platform, count: int) -> None:
    with platform.sessions() as session:
        session.execute(insert(Prompt), [{"external_id": f"seed-{n:05d}", "text": f"seeded prompt {n}"} for n in range(count)])
        session.commit()


def test_the_prompt_list_is_paged_and_searchable(platform):
    """On both databases: paging, LIKE escaping and NUL handling differ between them."""
    platform, client, _ = admin_client(platform)
    seed_prompts(platform, 2 * PAGE_SIZE + 7)  # plus the 3 imported
    first = rows(client)
    assert len(first) == PAGE_SIZE and first[:3] == ["p1", "p2", "p3"]
    assert len(rows(client, page=3)) == 10 and rows(client, page=3)[-1] == f"seed-{2 * PAGE_SIZE + 6:05d}"
    assert rows(client, page=99) == rows(client, page=3)  # past the end: the last page
    assert rows(client, q="seeded prompt 10") == ["seed-00010"] + [f"seed-{n:05d}" for n in range(100, 107)]
    assert rows(client, q="lighthouse") == ["p2"]
    assert rows(client, q="100%") == [] and rows(client, q="_") == ["p3"]  # LIKE wildcards are literal
    for hostile in ("\x00", "a\x00b", "%", "x" * 200):
        assert client.get("/admin", params={"q": hostile}).status_code == 200
    assert client.get("/admin", params={"q": "x" * 201}).status_code == 422
    assert client.get("/admin", params={"page": 2**70}).status_code == 422


def test_admin_actions_are_audited(admin):
    platform, client, token = admin
    alice = platform.user("alice").id
    client.post("/admin/assign", data={"prompt_ids": [1], "user_ids": [alice], "csrf_token": token})
    client.post("/admin/users", data={"username": "dave", "password": "long enough pw", "csrf_token": token})
    client.post("/admin/unassign", data={"prompt_ids": [1], "user_ids": [alice], "csrf_token": token})
    client.post("/admin/delete", data={"prompt_ids": [2], "csrf_token": token})
    with platform.sessions() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert [(e.action, e.actor.username) for e in entries] == [
            ("assign", "admin"), ("create_user", "admin"), ("unassign", "admin"), ("delete_prompts", "admin")
        ]
    page = client.get("/admin").text
    assert "<title>Admin · imreward annotate</title>" in page and page.count('id="audit"') == 1
    audit = page.split('id="audit"')[1]
    assert "delete_prompts" in audit and "&#39;p2&#39;" in audit
