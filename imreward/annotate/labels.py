"""Assignments and the labels annotators save on them, one field at a time."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from .models import (
    CATEGORIES,
    ISSUE_FLAGS,
    PROMPT_FLAGS,
    RATING_FIELDS,
    RATING_MAX,
    RATING_MIN,
    Assignment,
    ImageLabel,
    Prompt,
    User,
    storable_ids,
    utcnow,
)

STAGES = ("prompt", "rate", "rank")


class AccessDenied(PermissionError):
    """The assignment belongs to someone else."""


class InvalidLabel(ValueError):
    """The field or value is not a valid label."""


def assign(session: Session, prompt_ids: list[int], user_ids: list[int]) -> int:
    """Give each listed prompt to each listed user; returns how many assignments are new."""
    prompt_ids, user_ids = storable_ids(prompt_ids), storable_ids(user_ids)
    try:
        return _assign(session, prompt_ids, user_ids)
    except IntegrityError:  # a concurrent request created some of them since our read: redo
        session.rollback()
        return _assign(session, prompt_ids, user_ids)


def _assign(session: Session, prompt_ids: list[int], user_ids: list[int]) -> int:
    existing = {
        tuple(row)
        for row in session.execute(
            select(Assignment.prompt_id, Assignment.user_id).where(
                Assignment.prompt_id.in_(prompt_ids), Assignment.user_id.in_(user_ids)
            )
        )
    }
    prompts = session.scalars(
        select(Prompt).where(Prompt.id.in_(prompt_ids)).options(selectinload(Prompt.images))
    ).all()
    users = session.scalars(select(User).where(User.id.in_(user_ids))).all()
    created = 0
    for prompt in prompts:
        for user in users:
            if (prompt.id, user.id) in existing:
                continue
            labels = [ImageLabel(image=image) for image in prompt.images]
            session.add(Assignment(prompt=prompt, user=user, image_labels=labels))
            created += 1
    session.commit()
    return created


def owned_assignment(session: Session, assignment_id: int, user: User) -> Assignment:
    """Load an assignment with its labels, only for the annotator it belongs to."""
    assignment = session.scalar(
        select(Assignment)
        .where(Assignment.id == assignment_id)
        .options(
            selectinload(Assignment.image_labels).selectinload(ImageLabel.image),
            selectinload(Assignment.prompt),
        )
    )
    if assignment is None:
        raise LookupError(f"no assignment {assignment_id}")
    if assignment.user_id != user.id:
        raise AccessDenied(f"assignment {assignment_id} belongs to another annotator")
    return assignment


def save_prompt_label(session: Session, assignment: Assignment, field: str, value) -> None:
    """Save the stage-1 category or one drop flag."""
    if field == "category":
        if value not in CATEGORIES:
            raise InvalidLabel(f"unknown category {value!r}")
        column = "category"
    elif field in PROMPT_FLAGS:
        column, value = f"flag_{field}", _as_bool(value)
    else:
        raise InvalidLabel(f"unknown prompt field {field!r}")
    session.execute(
        update(Assignment)
        .where(Assignment.id == assignment.id)
        .values({column: value, "updated_at": utcnow()})
    )
    _commit_if_still_valid(session, assignment.id)


def save_image_label(
    session: Session, assignment: Assignment, image_id: int, field: str, value
) -> None:
    """Save one rating, issue flag or rank of one image; `None` clears a rating or rank."""
    if field in RATING_FIELDS:
        column, value = field, _as_optional_int(value, RATING_MIN, RATING_MAX)
    elif field in ISSUE_FLAGS:
        column, value = f"issue_{field}", _as_bool(value)
    elif field == "rank":
        column, value = "rank", _as_optional_int(value, 1, len(assignment.image_labels))
    else:
        raise InvalidLabel(f"unknown image field {field!r}")
    result = session.execute(
        update(ImageLabel)
        .where(ImageLabel.assignment_id == assignment.id, ImageLabel.image_id == image_id)
        .values({column: value})
    )
    if result.rowcount != 1:
        session.rollback()
        raise InvalidLabel(f"image {image_id} is not part of assignment {assignment.id}")
    session.execute(
        update(Assignment).where(Assignment.id == assignment.id).values(updated_at=utcnow())
    )
    _commit_if_still_valid(session, assignment.id)


def _commit_if_still_valid(session: Session, assignment_id: int) -> None:
    """Commit a save unless it leaves a completed assignment unfinished (e.g. a cleared rank).

    The check reads the assignment inside the saving transaction, so it sees exactly
    what would be committed.
    """
    session.expire_all()
    saved = session.get(Assignment, assignment_id)
    stage = next_stage(saved) if saved.completed_at is not None else None
    if stage is not None:
        session.rollback()
        raise InvalidLabel(f"this assignment is completed; stage {stage!r} would be left unfinished")
    session.commit()


def _as_bool(value) -> bool:
    if not isinstance(value, bool):
        raise InvalidLabel(f"expected true or false, got {value!r}")
    return value


def _as_optional_int(value, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidLabel(f"expected a whole number from {low} to {high}, got {value!r}")
    return value


def stage_done(assignment: Assignment, stage: str) -> bool:
    labels = assignment.image_labels
    if stage == "prompt":
        return assignment.category is not None or assignment.dropped
    if stage == "rate":
        return all(label.fully_rated for label in labels)
    return all(label.rank is not None for label in labels)


def next_stage(assignment: Assignment) -> str | None:
    """The first stage still to do, or None when the assignment can be completed."""
    if assignment.dropped:
        return None
    return next((stage for stage in STAGES if not stage_done(assignment, stage)), None)


@dataclass(frozen=True)
class Contradiction:
    """Image `better` is ranked above image `worse` but has a lower overall rating."""

    better: int
    worse: int
    better_overall: int
    worse_overall: int

    @property
    def message(self) -> str:
        return (
            f"Image {self.better} is ranked above image {self.worse} but rated lower overall "
            f"({self.better_overall} < {self.worse_overall})."
        )


def contradictions(labels: list[ImageLabel]) -> list[Contradiction]:
    """Pairs whose ranking disagrees with their overall ratings; images numbered from 1."""
    ranked = [label for label in labels if label.rank is not None and label.overall is not None]
    ranked.sort(key=lambda label: label.image.position)
    return [
        Contradiction(a.image.position + 1, b.image.position + 1, a.overall, b.overall)
        for a in ranked
        for b in ranked
        if a.rank < b.rank and a.overall < b.overall
    ]


def complete(session: Session, assignment: Assignment) -> None:
    """Mark an assignment completed; the check runs after the row is locked by the update, so a
    save that clears a label at the same moment cannot slip in between check and completion."""
    stage = next_stage(assignment)
    if stage is not None:
        raise InvalidLabel(f"stage {stage!r} is not finished")
    if assignment.completed_at is None:
        session.execute(
            update(Assignment).where(Assignment.id == assignment.id).values(completed_at=utcnow())
        )
        _commit_if_still_valid(session, assignment.id)
