"""Helpers shared by the annotation tests: a small prompt set, a platform, logins, labelling."""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image as PILImage

from imreward.annotate.accounts import create_user
from imreward.annotate.app import AppConfig, create_app
from imreward.annotate.database import make_engine, make_session_factory, migrate
from imreward.annotate.importer import import_path
from imreward.annotate.labels import assign
from imreward.annotate.models import Assignment, Prompt, User

PASSWORD = "correct horse battery"
PROMPTS = {
    "p1": "a red fox in the snow",
    "p2": "a lighthouse at dusk, oil painting",
    "p3": "<script>window.__pwned = true</script> a cat",
}
IMAGES_PER_PROMPT = 3

def write_image(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.new("RGB", (32, 32), (shade, 255 - shade, (shade * 7) % 256)).save(path)


def write_prompt_folders(root: Path, prompts: dict[str, str] = PROMPTS) -> Path:
    """The folder layout: `<prompt id>/prompt.txt` and `<prompt id>/<n>.png`."""
    for number, (prompt_id, prompt_text) in enumerate(prompts.items()):
        (root / prompt_id).mkdir(parents=True)
        (root / prompt_id / "prompt.txt").write_text(prompt_text, "utf-8")
        for index in range(IMAGES_PER_PROMPT):
            write_image(root / prompt_id / f"{index}.png", 40 * number + 60 * index)
    return root


@dataclass
class Platform:
    """A migrated database with users and imported prompts, plus an app on it."""

    db_url: str
    media_root: Path
    sessions: object
    app: object

    def user(self, username: str) -> User:
        with self.sessions() as session:
            return session.query(User).filter_by(username=username).one()

    def prompt(self, external_id: str) -> Prompt:
        with self.sessions() as session:
            return session.query(Prompt).filter_by(external_id=external_id).one()

    def image_ids(self, external_id: str) -> list[int]:
        with self.sessions() as session:
            prompt = session.query(Prompt).filter_by(external_id=external_id).one()
            return [image.id for image in prompt.images]

    def new_app(self, **config):
        """Another app on the same database and media (a second worker process, say)."""
        return create_app(AppConfig(self.db_url, self.media_root, secret_key="test-secret", **config))

    def assign(self, external_ids: list[str], usernames: list[str]) -> None:
        with self.sessions() as session:
            prompts = [self.prompt(e).id for e in external_ids]
            users = [self.user(u).id for u in usernames]
            assign(session, prompts, users)


def build_platform(db_url: str, tmp_path: Path, prompt_folders: Path | None, **config) -> Platform:
    media_root = tmp_path / "media"
    media_root.mkdir()
    engine = make_engine(db_url)
    migrate(engine)
    sessions = make_session_factory(engine)
    with sessions() as session:
        create_user(session, "admin", PASSWORD, "admin")
        for name in ("alice", "bob", "carol"):
            create_user(session, name, PASSWORD, "annotator")
        if prompt_folders is not None:
            import_path(session, media_root, prompt_folders)
    app = create_app(AppConfig(db_url, media_root, secret_key="test-secret", **config))
    return Platform(db_url, media_root, sessions, app)


@contextmanager
def running_server(app):
    """Serve `app` with uvicorn on 127.0.0.1 in a background thread; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def page_csrf(client, path: str = "/login") -> str:
    return CSRF_META.search(client.get(path).text).group(1)


def login(client, username: str, password: str = PASSWORD):
    """Log a TestClient or httpx client in through the form; returns the session's CSRF token."""
    token = page_csrf(client)
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return page_csrf(client, "/")


def complete_assignment(
    platform: Platform,
    username: str,
    external_id: str,
    category: str,
    ranks: list[int],
    overall: list[int],
    issues: dict[int, list[str]] | None = None,
    alignment: int = 5,
    fidelity: int = 4,
    harmlessness: int = 7,
) -> None:
    """Label and complete one assignment through the label service (no HTTP)."""
    from imreward.annotate import labels

    user = platform.user(username)
    with platform.sessions() as session:
        assignment_id = assignment_id_of(session, user.id, external_id)
        assignment = labels.owned_assignment(session, assignment_id, user)
        labels.save_prompt_label(session, assignment, "category", category)
        ordered = sorted(assignment.image_labels, key=lambda label: label.image.position)
        for index, label in enumerate(ordered):
            values = {"alignment": alignment, "fidelity": fidelity, "harmlessness": harmlessness}
            values.update(overall=overall[index], rank=ranks[index])
            for flag in (issues or {}).get(index, []):
                values[flag] = True
            for field, value in values.items():
                labels.save_image_label(session, assignment, label.image_id, field, value)
        session.expire_all()
        labels.complete(session, labels.owned_assignment(session, assignment_id, user))


def assignment_id_of(session, user_id: int, external_id: str) -> int:
    return (
        session.query(Assignment.id)
        .join(Prompt)
        .filter(Assignment.user_id == user_id, Prompt.external_id == external_id)
        .scalar()
    )
