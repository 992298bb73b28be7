"""Fixtures for the annotation platform: databases, a small prompt set, a live server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from annotate.annotate_helpers import Platform, build_platform, running_server, write_prompt_folders

PG_URL_ENV = "IMREWARD_TEST_PG_URL"


def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def _backends():
    yield pytest.param("sqlite", id="sqlite")
    yield pytest.param(
        "postgresql",
        id="postgresql",
        marks=pytest.mark.skipif(not os.environ.get(PG_URL_ENV), reason=f"set {PG_URL_ENV}"),
    )


@pytest.fixture(params=list(_backends()))
def db_url(request, tmp_path) -> str:
    """A fresh, empty database: SQLite always, PostgreSQL when IMREWARD_TEST_PG_URL is set."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'annotate.db'}"
    url = os.environ[PG_URL_ENV]
    _reset_postgres(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'annotate.db'}"


@pytest.fixture
def prompt_folders(tmp_path) -> Path:
    return write_prompt_folders(tmp_path / "incoming")


@pytest.fixture
def platform(db_url, tmp_path, prompt_folders) -> Platform:
    return build_platform(db_url, tmp_path, prompt_folders)


@pytest.fixture
def live_server(platform):
    """The platform's app served by uvicorn on 127.0.0.1 in a background thread."""
    with running_server(platform.app) as url:
        yield url


@pytest.fixture
def artifacts_dir(tmp_path_factory) -> Path:
    """Where screenshots go: $IMREWARD_TEST_ARTIFACTS, else a pytest temporary folder."""
    configured = os.environ.get("IMREWARD_TEST_ARTIFACTS")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """Argon2 with its production cost takes about a second here; tests use a light setting."""
    from argon2 import PasswordHasher

    from imreward.annotate import accounts

    monkeypatch.setattr(
        accounts, "password_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture
def sqlite_platform(sqlite_url, tmp_path, prompt_folders) -> Platform:
    """The platform on SQLite only, for tests that do not depend on the database engine."""
    return build_platform(sqlite_url, tmp_path, prompt_folders)
