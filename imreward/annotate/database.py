"""Engine setup (SQLite in WAL mode or PostgreSQL) and Alembic migrations."""

from __future__ import annotations

import secrets
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .models import Setting

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_BEGIN_OPTION = "imreward_sqlite_begin"
MIGRATION_LOCK_KEY = 0x696D726577617264  # "imreward" in ASCII: the advisory lock held while migrating


def default_db_url(path: str | Path = "imreward-annotate.db") -> str:
    return f"sqlite:///{Path(path).resolve()}"


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL mode, a busy timeout and immediate write locks."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"check_same_thread": False})
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" event below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        # Taking the write lock up front means concurrent writers queue on the busy
        # timeout instead of failing when a read transaction is upgraded to a write.
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")


def make_session_factory(engine: Engine, read_only: bool = False) -> sessionmaker[Session]:
    """Sessions for writing, or for reading only (on SQLite these take no write lock)."""
    if read_only:
        engine = engine.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})
    return sessionmaker(engine, expire_on_commit=False)


def migrate(engine: Engine) -> None:
    """Bring the schema up to the newest Alembic revision, one process at a time: on PostgreSQL
    under a transaction-scoped advisory lock (processes starting together on a fresh database
    would otherwise create the same tables at once), on SQLite under its write lock (BEGIN
    IMMEDIATE). A process that waited finds the schema up to date and changes nothing."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def session_secret(session: Session) -> str:
    """Return the instance's session-signing secret, creating it on first use (when processes
    start together, the first one's)."""
    setting = session.get(Setting, "session_secret")
    if setting is None:
        session.add(Setting(key="session_secret", value=secrets.token_urlsafe(48)))
        try:
            session.commit()
        except IntegrityError:  # another process created it since the read above
            session.rollback()
        setting = session.get(Setting, "session_secret", populate_existing=True)
    return setting.value
