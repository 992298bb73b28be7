"""Two annotators saving the same prompt at the same moment lose nothing.

Runs against SQLite always and against PostgreSQL when IMREWARD_TEST_PG_URL is set.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from imreward.annotate.models import ISSUE_FLAGS, RATING_FIELDS, Assignment

from annotate.annotate_helpers import IMAGES_PER_PROMPT, assignment_id_of, login

CLIENTS_PER_ANNOTATOR = 4


def planned_writes(annotator_index: int, image_ids: list[int]) -> list[tuple[str, dict]]:
    """Every label of one assignment, with values that differ between the two annotators."""
    writes = [("prompt", {"field": "category", "value": ["Animals", "Food"][annotator_index]}),
              ("prompt", {"field": ["unclear", "not_drawable"][annotator_index], "value": True})]
    for index, image_id in enumerate(image_ids):
        for offset, field in enumerate(RATING_FIELDS):
            value = 1 + (index + offset + 3 * annotator_index) % 7
            writes.append((f"images/{image_id}", {"field": field, "value": value}))
        for flag_index, flag in enumerate(ISSUE_FLAGS):
            value = (flag_index + index + annotator_index) % 2 == 0
            writes.append((f"images/{image_id}", {"field": flag, "value": value}))
        rank = index + 1 if annotator_index == 0 else IMAGES_PER_PROMPT - index
        writes.append((f"images/{image_id}", {"field": "rank", "value": rank}))
    return writes


def stored_labels(session, assignment_id: int, image_ids: list[int]) -> list[tuple[str, dict]]:
    """The stored labels in the same shape as `planned_writes` (unset prompt flags left out)."""
    assignment = session.get(Assignment, assignment_id)
    labels = {label.image_id: label for label in assignment.image_labels}
    flags = [flag for flag in ("unclear", "harmful", "not_drawable") if getattr(assignment, f"flag_{flag}")]
    stored = [("prompt", {"field": "category", "value": assignment.category})]
    stored += [("prompt", {"field": flag, "value": True}) for flag in flags]
    for image_id in image_ids:
        label = labels[image_id]
        stored += [(f"images/{image_id}", {"field": f, "value": getattr(label, f)}) for f in RATING_FIELDS]
        stored += [(f"images/{image_id}", {"field": f, "value": getattr(label, f"issue_{f}")}) for f in ISSUE_FLAGS]
        stored.append((f"images/{image_id}", {"field": "rank", "value": label.rank}))
    return stored


def test_two_annotators_saving_at_once_lose_nothing(platform, live_server):
    platform.assign(["p1"], ["alice", "bob"])
    image_ids = platform.image_ids("p1")
    annotators = ["alice", "bob"]
    users = {name: platform.user(name).id for name in annotators}
    with platform.sessions() as session:
        assignment_ids = {name: assignment_id_of(session, users[name], "p1") for name in annotators}

    jobs = []  # (client, token, url, body): every client sends its share at the same moment
    for annotator_index, name in enumerate(annotators):
        clients = [httpx.Client(base_url=live_server) for _ in range(CLIENTS_PER_ANNOTATOR)]
        tokens = [login(client, name) for client in clients]
        writes = planned_writes(annotator_index, image_ids)
        for number, (target, body) in enumerate(writes):
            slot = number % CLIENTS_PER_ANNOTATOR
            url = f"/api/assignments/{assignment_ids[name]}/{target}"
            jobs.append((slot + annotator_index * CLIENTS_PER_ANNOTATOR, clients[slot], tokens[slot], url, body))

    start = threading.Barrier(2 * CLIENTS_PER_ANNOTATOR)

    def run_worker(worker: int) -> list[int]:
        mine = [job for job in jobs if job[0] == worker]
        start.wait()
        return [client.post(url, json=body, headers={"X-CSRF-Token": token}).status_code
                for _, client, token, url, body in mine]

    with ThreadPoolExecutor(2 * CLIENTS_PER_ANNOTATOR) as pool:
        statuses = [status for result in pool.map(run_worker, range(2 * CLIENTS_PER_ANNOTATOR)) for status in result]

    assert len(statuses) == len(jobs) == 64
    assert statuses == [200] * len(jobs)
    with platform.sessions() as session:
        for annotator_index, name in enumerate(annotators):
            planned = planned_writes(annotator_index, image_ids)
            stored = stored_labels(session, assignment_ids[name], image_ids)
            assert sorted(map(repr, stored)) == sorted(map(repr, planned))
