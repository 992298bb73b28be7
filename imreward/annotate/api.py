"""Entry points behind the `imreward annotate` commands."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

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


def serve(
    db: str | None,
    media_root: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    secure_cookies: bool = False,
    secret_key: str | None = None,
) -> None:
    """Run the web app with uvicorn in this process (a single worker: see LoginRateLimiter)."""
    import uvicorn

    from .app import AppConfig, create_app

    media_root.mkdir(parents=True, exist_ok=True)
    config = AppConfig(database_url(db), media_root, secret_key, secure_cookies)
    uvicorn.run(create_app(config), host=host, port=port, proxy_headers=False)
