"""Alembic environment: runs migrations on the connection handed in by `database.migrate`.

To write a new revision, point Alembic at this folder with a database URL, e.g.
`alembic -x url=sqlite:///dev.db -c /dev/null revision --autogenerate -m "..."` from a
config whose `script_location` is this directory.
"""

from alembic import context
from sqlalchemy import create_engine

from imreward.annotate.models import Base


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        url = context.get_x_argument(as_dictionary=True)["url"]
        with create_engine(url).connect() as own_connection:
            _run(own_connection)
            own_connection.commit()
    else:
        _run(connection)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
