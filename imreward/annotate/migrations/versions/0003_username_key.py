"""Usernames compared by their normalised, case-folded key (`accounts.username_key`).

Existing accounts get their key in id order; an account whose key an older one already holds (two
names that differ only by case or invisible characters) keeps none and logs in by its exact name.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 23:30:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from imreward.annotate.accounts import username_key

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("username_key", sa.String(255), nullable=True))
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("username", sa.String),
                     sa.column("username_key", sa.String))
    connection = op.get_bind()
    taken = set()
    for user_id, username in connection.execute(sa.select(users.c.id, users.c.username).order_by(users.c.id)).all():
        key = username_key(username)
        if key not in taken:
            taken.add(key)
            connection.execute(users.update().where(users.c.id == user_id).values(username_key=key))
    with op.batch_alter_table("users") as batch:
        batch.create_unique_constraint("uq_users_username_key", ["username_key"])


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_username_key", type_="unique")
        batch.drop_column("username_key")
