"""Time the annotation platform's admin page with many prompts (issue 12: 10,000 in under a second).

Seeds a fresh SQLite database with ``--prompts`` prompts of ``--images`` images each (rows only:
the page never reads image files), assigns every other prompt to three annotators (with their
empty label rows), then renders ``/admin`` (first page, a middle page, a search) in-process with
Starlette's test client and reports the median wall time of ``--repeats`` renders of each.

    python benchmarks/annotate_admin_page.py --prompts 10000
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import insert

from imreward.annotate import accounts
from imreward.annotate.app import AppConfig, create_app
from imreward.annotate.database import make_engine, make_session_factory, migrate
from imreward.annotate.models import Assignment, Image, ImageLabel, Prompt

PASSWORD = "benchmark password"


def seed(url: str, prompts: int, images: int) -> None:
    engine = make_engine(url)
    migrate(engine)
    with make_session_factory(engine)() as session:
        accounts.create_user(session, "admin", PASSWORD, "admin")
        annotators = [accounts.create_user(session, f"ann{n}", PASSWORD, "annotator").id for n in range(3)]
        session.execute(insert(Prompt), [{"id": p + 1, "external_id": f"id-{p}", "text": f"prompt number {p}"} for p in range(prompts)])
        session.execute(insert(Image), [
            {"id": p * images + i + 1, "prompt_id": p + 1, "position": i, "media_path": f"prompts/{p + 1}/{i}.png"}
            for p in range(prompts) for i in range(images)
        ])
        assignments = [(p, user) for p in range(0, prompts, 2) for user in annotators]
        session.execute(insert(Assignment), [
            {"id": n + 1, "prompt_id": p + 1, "user_id": user, "flag_unclear": False, "flag_harmful": False,
             "flag_not_drawable": False}
            for n, (p, user) in enumerate(assignments)
        ])
        session.execute(insert(ImageLabel), [
            {"assignment_id": n + 1, "image_id": p * images + i + 1, **{f"issue_{f}": False for f in
             ("distorted_body", "distorted_face", "artifacts", "text_errors", "unsafe_content")}}
            for n, (p, _) in enumerate(assignments) for i in range(images)
        ])
        session.commit()
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    accounts.password_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        started = time.perf_counter()
        seed(url, args.prompts, args.images)
        print(f"seeded {args.prompts} prompts x {args.images} images in {time.perf_counter() - started:.1f} s")
        client = TestClient(create_app(AppConfig(url, Path(folder) / "media", secret_key="bench")))
        token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/login").text).group(1)
        client.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
        for label, params in [("first page", {}), ("middle page", {"page": 100}), ("search", {"q": "number 99"})]:
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                response = client.get("/admin", params=params)
                times.append(time.perf_counter() - started)
                assert response.status_code == 200
            rows = response.text.count("<tr data-prompt=")
            print(f"{label:12s} median {1000 * statistics.median(times):7.1f} ms  max {1000 * max(times):7.1f} ms  ({rows} rows)")


if __name__ == "__main__":
    main()
