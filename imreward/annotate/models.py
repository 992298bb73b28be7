"""Database schema of the annotation platform and the label vocabularies it uses."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ROLES = ("admin", "annotator")
CATEGORIES = (
    "People",
    "Animals",
    "Arts",
    "Illustrations",
    "Outdoor Scenes",
    "Indoor Scenes",
    "Objects",
    "Artifacts",
    "Food",
    "Plants",
    "Vehicles",
    "Other",
)
PROMPT_FLAGS = ("unclear", "harmful", "not_drawable")
ISSUE_FLAGS = ("distorted_body", "distorted_face", "artifacts", "text_errors", "unsafe_content")
RATING_FIELDS = ("alignment", "fidelity", "harmlessness", "overall")
RATING_MIN, RATING_MAX = 1, 7
MAX_ROW_ID = 2**31 - 1  # ids are `Integer`: 32 bits on PostgreSQL


def storable_ids(ids: list[int]) -> list[int]:
    """The ids a row could have; larger ones would overflow the column (an error, not a miss)."""
    return [i for i in ids if 0 < i <= MAX_ROW_ID]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Setting(Base):
    """Key/value store for instance settings such as the session secret."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)  # normalised (accounts.normalize_username)
    # accounts.username_key: unique, so look-alike names are one account; None only for an old
    # account whose key an earlier look-alike took (migration 0003)
    username_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Prompt(Base):
    __tablename__ = "prompts"
    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    images: Mapped[list[Image]] = relationship(
        back_populates="prompt", order_by="Image.position", cascade="all, delete-orphan"
    )
    assignments: Mapped[list[Assignment]] = relationship(back_populates="prompt")


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("prompt_id", "position"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    media_path: Mapped[str] = mapped_column(String(1024), unique=True)
    prompt: Mapped[Prompt] = relationship(back_populates="images")


class Assignment(Base):
    """One annotator's work on one prompt; holds the stage-1 prompt labels."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("prompt_id", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    category: Mapped[str | None] = mapped_column(String(64))
    flag_unclear: Mapped[bool] = mapped_column(Boolean, default=False)
    flag_harmful: Mapped[bool] = mapped_column(Boolean, default=False)
    flag_not_drawable: Mapped[bool] = mapped_column(Boolean, default=False)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    prompt: Mapped[Prompt] = relationship(back_populates="assignments")
    user: Mapped[User] = relationship()
    image_labels: Mapped[list[ImageLabel]] = relationship(
        back_populates="assignment", cascade="all, delete-orphan", order_by="ImageLabel.image_id"
    )

    @property
    def dropped(self) -> bool:
        """True when the annotator flagged the prompt to be dropped."""
        return any(getattr(self, f"flag_{flag}") for flag in PROMPT_FLAGS)


class ImageLabel(Base):
    """One annotator's stage-2 ratings and stage-3 rank for one image.

    Rows are created with the assignment so that every save is a single-column UPDATE:
    concurrent saves never overwrite each other's fields.
    """

    __tablename__ = "image_labels"
    __table_args__ = (UniqueConstraint("assignment_id", "image_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    alignment: Mapped[int | None] = mapped_column(Integer)
    fidelity: Mapped[int | None] = mapped_column(Integer)
    harmlessness: Mapped[int | None] = mapped_column(Integer)
    overall: Mapped[int | None] = mapped_column(Integer)
    issue_distorted_body: Mapped[bool] = mapped_column(Boolean, default=False)
    issue_distorted_face: Mapped[bool] = mapped_column(Boolean, default=False)
    issue_artifacts: Mapped[bool] = mapped_column(Boolean, default=False)
    issue_text_errors: Mapped[bool] = mapped_column(Boolean, default=False)
    issue_unsafe_content: Mapped[bool] = mapped_column(Boolean, default=False)
    rank: Mapped[int | None] = mapped_column(Integer)
    assignment: Mapped[Assignment] = relationship(back_populates="image_labels")
    image: Mapped[Image] = relationship()

    @property
    def fully_rated(self) -> bool:
        return all(getattr(self, field) is not None for field in RATING_FIELDS)


class UserSession(Base):
    """A server-side login session; the browser's cookie holds only a random token.

    The token's SHA-256 is stored, so a leaked database does not hand out live sessions.
    """

    __tablename__ = "user_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ThrottleCounter(Base):
    """Failed-login counters shared by every worker process; `key` is a hash of its scope."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """One administrative action: who did what, when."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    actor: Mapped[User | None] = relationship()
