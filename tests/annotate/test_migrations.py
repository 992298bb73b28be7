"""Several processes starting at once on a fresh PostgreSQL database migrate it once and share one
session secret (issue 20, item 9; SQLite serialises them by its write lock)."""

import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, inspect

MIGRATE_AT = """
import sys, time
from imreward.annotate.database import make_engine, make_session_factory, migrate, session_secret
url, start = sys.argv[1], float(sys.argv[2])
engine = make_engine(url)
with engine.connect():  # connected before the start, so the migrations themselves overlap
    pass
time.sleep(max(0.0, start - time.time()))
migrate(engine)
with make_session_factory(engine)() as session:
    print("secret", session_secret(session))
"""


def test_processes_starting_together_migrate_once(db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite serialises migrations by its write lock")
    start = time.time() + 3.0  # after every process has imported and connected
    processes = [subprocess.Popen([sys.executable, "-c", MIGRATE_AT, db_url, str(start)], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
                 for _ in range(3)]
    outputs = [process.communicate(timeout=120)[0].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], "\n".join(outputs)[-3000:]
    secrets = {line for output in outputs for line in output.splitlines() if line.startswith("secret ")}
    assert len(secrets) == 1
    engine = create_engine(db_url)
    assert {"users", "user_sessions", "alembic_version"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_existing_look_alike_accounts_keep_logging_in(sqlite_url):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from imreward.annotate.accounts import authenticate, password_hasher
    from imreward.annotate.database import MIGRATIONS_DIR, make_engine, make_session_factory, migrate

    engine = make_engine(sqlite_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:  # a database from before usernames were normalised
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
        for name, password in (("carol", "first password"), ("Carol", "second password")):
            connection.execute(text("INSERT INTO users (username, password_hash, role, created_at) "
                                    "VALUES (:name, :hash, 'annotator', CURRENT_TIMESTAMP)"),
                               {"name": name, "hash": password_hasher.hash(password)})
    migrate(engine)
    with make_session_factory(engine)() as session:
        assert authenticate(session, "carol", "first password").username == "carol"
        assert authenticate(session, "Carol", "second password").username == "Carol"  # by its exact name
        assert authenticate(session, "CAROL", "first password").username == "carol"
    engine.dispose()
