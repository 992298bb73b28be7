"""Entry points behind the `imreward annotate` commands."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from imreward.serve.connection_limits import ConnectionLimits

from .database import default_db_url, make_engine, make_session_factory, migrate
from .exporter import ExportReport, export_dataset
from .importer import ImportReport, import_path

DEFAULT_DB = "imreward-annotate.db"


def database_url(db: str | None) -> str:
    """Accept a SQLAlchemy URL or a plain SQLite file path (default: ./imreward-annotate.db)."""
    if db is None:
        return default_db_url(DEFAULT_DB)
    return db if "://" in db else default_db_url(db)


def open_database(db: str | None) -> sessionmaker[Session]:
    """Connect and bring the schema up to date."""
    engine = make_engine(database_url(db))
    migrate(engine)
    return make_session_factory(engine)


def import_data(db: str | None, media_root: Path, source: Path) -> ImportReport:
    media_root.mkdir(parents=True, exist_ok=True)
    with open_database(db)() as session:
        return import_path(session, media_root, source)


def export_data(db: str | None, media_root: Path, out_dir: Path, split: str = "train") -> ExportReport:
    with open_database(db)() as session:
        return export_dataset(session, media_root, out_dir, split)


def add_user(db: str | None, username: str, password: str, role: str) -> None:
    from .accounts import create_user

    with open_database(db)() as session:
        create_user(session, username, password, role)


def set_password(db: str | None, username: str, password: str) -> None:
    """Change an account's password; every session of the account ends."""
    from . import accounts

    with open_database(db)() as session:
        user = accounts.find_user(session, username)
        if user is None:
            raise ValueError(f"no account named {username!r}")
        accounts.set_password(session, user, password)


def serve(
    db: str | None,
    media_root: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    secure_cookies: bool = False,
    secret_key: str | None = None,
    forwarded_allow_ips: str | None = None,
    connections: ConnectionLimits | None = None,
    **limits,
) -> None:
    """Run the web app with uvicorn in this process.

    `forwarded_allow_ips`: the reverse proxies (comma-separated addresses) whose
    X-Forwarded-For/-Proto headers are trusted, so that login limits see the real client
    address; None trusts no such header. `connections`: header and body deadlines, header size
    and connection limits, as the reward server's (`imreward.serve.connections`; default
    `cli.CONNECTION_LIMITS`). `limits`:
    `AppConfig` fields (`login`, `sessions`, `body_limits`, `import_limits`). Sessions and login
    limits live in the database, so several processes on one database share them.
    """
    from imreward.serve.connections import run_server

    from .app import AppConfig, create_app
    from .cli import CONNECTION_LIMITS

    media_root.mkdir(parents=True, exist_ok=True)
    config = AppConfig(database_url(db), media_root, secret_key, secure_cookies, **limits)
    run_server(
        create_app(config),
        connections or CONNECTION_LIMITS,
        host,
        port,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
    )
