"""A completed assignment stays valid, and export survives a bad record (issue 12, item 7)."""

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from imreward.annotate import labels
from imreward.annotate.exporter import export_dataset
from imreward.annotate.models import ImageLabel

from annotate.annotate_helpers import assignment_id_of, complete_assignment, login


@pytest.fixture
def completed(platform):
    platform.assign(["p1", "p2"], ["alice"])
    for prompt in ("p1", "p2"):
        complete_assignment(platform, "alice", prompt, "Animals", ranks=[1, 2, 3], overall=[6, 5, 4])
    alice = platform.user("alice").id
    with platform.sessions() as session:
        ids = {p: assignment_id_of(session, alice, p) for p in ("p1", "p2")}
    return platform, ids


@pytest.mark.parametrize("field, value", [("rank", None), ("overall", None)])
def test_a_completed_assignment_cannot_be_edited_into_an_invalid_state(completed, field, value):
    platform, ids = completed
    client = TestClient(platform.app)
    token = login(client, "alice")
    image = platform.image_ids("p1")[0]
    response = client.post(
        f"/api/assignments/{ids['p1']}/images/{image}", json={"field": field, "value": value},
        headers={"x-csrf-token": token},
    )
    assert response.status_code == 422 and "completed" in response.json()["detail"]
    with platform.sessions() as session:
        stored = session.query(ImageLabel).filter_by(assignment_id=ids["p1"], image_id=image).one()
        assert getattr(stored, field) is not None
    allowed = client.post(
        f"/api/assignments/{ids['p1']}/images/{image}", json={"field": "rank", "value": 2},
        headers={"x-csrf-token": token},
    )
    assert allowed.status_code == 200  # valid edits of a completed assignment still work


def test_clearing_the_drop_flag_of_a_dropped_completed_assignment_is_refused(platform):
    platform.assign(["p3"], ["bob"])
    user = platform.user("bob")
    with platform.sessions() as session:
        assignment = labels.owned_assignment(session, assignment_id_of(session, user.id, "p3"), user)
        labels.save_prompt_label(session, assignment, "harmful", True)
        session.expire_all()
        labels.complete(session, labels.owned_assignment(session, assignment.id, user))
        with pytest.raises(labels.InvalidLabel, match="unfinished"):
            labels.save_prompt_label(session, assignment, "harmful", False)


def test_export_skips_and_reports_a_bad_record(completed, tmp_path):
    platform, ids = completed
    with platform.sessions() as session:  # as an older version (or a hand edit) could leave it
        session.execute(update(ImageLabel).where(ImageLabel.assignment_id == ids["p1"]).values(rank=None))
        session.commit()
    (platform.media_root / "prompts" / str(platform.prompt("p2").id) / "0.png").unlink()
    (tmp_path / "extra").mkdir()
    platform.assign(["p3"], ["alice"])
    complete_assignment(platform, "alice", "p3", "Food", ranks=[3, 2, 1], overall=[2, 3, 4])
    with platform.sessions() as session:
        report = export_dataset(session, platform.media_root, tmp_path / "out")
    assert report.exported_prompts == 1 and report.images == 3
    assert [problem.split(":")[0] for problem in report.skipped] == ["p1", "p2"]
    assert "stage 'rank' unfinished" in report.skipped[0]
    exported = json.loads((tmp_path / "out" / "train.json").read_text())
    assert [record["id"] for record in exported] == ["p3"]
    assert list((tmp_path / "out" / "images" / str(platform.prompt("p2").id)).glob("*")) == []
