"""Initial schema: users, prompts, images, assignments, image labels, settings.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _timestamp(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _flag(name: str) -> sa.Column:
    return sa.Column(name, sa.Boolean(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        _timestamp("created_at"),
    )
    op.create_table(
        "prompts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("external_id", sa.String(128), nullable=False, unique=True),
        sa.Column("text", sa.Text(), nullable=False),
        _timestamp("created_at"),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "prompt_id", sa.Integer(), sa.ForeignKey("prompts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("media_path", sa.String(1024), nullable=False, unique=True),
        sa.UniqueConstraint("prompt_id", "position"),
    )
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "prompt_id", sa.Integer(), sa.ForeignKey("prompts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("category", sa.String(64), nullable=True),
        _flag("flag_unclear"),
        _flag("flag_harmful"),
        _flag("flag_not_drawable"),
        _timestamp("completed_at", nullable=True),
        _timestamp("updated_at"),
        sa.UniqueConstraint("prompt_id", "user_id"),
    )
    op.create_index("ix_assignments_user_id", "assignments", ["user_id"])
    op.create_table(
        "image_labels",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "assignment_id",
            sa.Integer(),
            sa.ForeignKey("assignments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "image_id", sa.Integer(), sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("alignment", sa.Integer(), nullable=True),
        sa.Column("fidelity", sa.Integer(), nullable=True),
        sa.Column("harmlessness", sa.Integer(), nullable=True),
        sa.Column("overall", sa.Integer(), nullable=True),
        _flag("issue_distorted_body"),
        _flag("issue_distorted_face"),
        _flag("issue_artifacts"),
        _flag("issue_text_errors"),
        _flag("issue_unsafe_content"),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.UniqueConstraint("assignment_id", "image_id"),
    )


def downgrade() -> None:
    op.drop_table("image_labels")
    op.drop_index("ix_assignments_user_id", table_name="assignments")
    op.drop_table("assignments")
    op.drop_table("images")
    op.drop_table("prompts")
    op.drop_table("users")
    op.drop_table("settings")
