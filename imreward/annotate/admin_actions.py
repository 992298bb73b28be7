"""What the admin pages do beyond import and assignment: unassign, delete prompts, list them
a page at a time, and keep an audit log of every administrative action."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session, selectinload

from .importer import remove_media_files
from .models import PROMPT_FLAGS, AuditEntry, Assignment, Image, ImageLabel, Prompt, User, storable_ids

PAGE_SIZE = 50
MAX_SEARCH_LENGTH = 200


class HasLabels(ValueError):
    """Refused because labels would be lost; pass `force` to go ahead."""


def record(session: Session, actor: User, action: str, detail: str) -> None:
    """Add an audit entry to the session's transaction (committed with the action itself)."""
    session.add(AuditEntry(actor_id=actor.id, action=action, detail=detail[:2000]))


def recent_entries(session: Session, limit: int = PAGE_SIZE) -> list[AuditEntry]:
    return list(
        session.scalars(
            select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).options(selectinload(AuditEntry.actor))
        )
    )


def _labelled(assignment_ids) -> select:
    """The ids among `assignment_ids` holding any label (a category, a flag or an image label)."""
    flagged = or_(
        Assignment.category.is_not(None), *[getattr(Assignment, f"flag_{flag}") for flag in PROMPT_FLAGS]
    )
    image_labelled = select(ImageLabel.assignment_id).where(
        or_(
            ImageLabel.alignment.is_not(None),
            ImageLabel.fidelity.is_not(None),
            ImageLabel.harmlessness.is_not(None),
            ImageLabel.overall.is_not(None),
            ImageLabel.rank.is_not(None),
        )
    )
    return select(Assignment.id).where(
        Assignment.id.in_(assignment_ids), or_(flagged, Assignment.id.in_(image_labelled))
    )


def unassign(session: Session, actor: User, prompt_ids: list[int], user_ids: list[int], force: bool) -> int:
    """Remove the listed users' assignments of the listed prompts; returns how many went."""
    prompt_ids, user_ids = storable_ids(prompt_ids), storable_ids(user_ids)
    chosen = select(Assignment.id).where(Assignment.prompt_id.in_(prompt_ids), Assignment.user_id.in_(user_ids))
    ids = list(session.scalars(chosen))
    labelled = len(list(session.scalars(_labelled(ids)))) if ids else 0
    if labelled and not force:
        raise HasLabels(f"{labelled} of these assignments hold labels; tick 'even with labels' to remove them")
    if ids:
        session.execute(delete(Assignment).where(Assignment.id.in_(ids)))
        record(session, actor, "unassign", f"prompts {prompt_ids} from users {user_ids}: {len(ids)} assignments")
    session.commit()
    return len(ids)


def delete_prompts(session: Session, actor: User, media_root: Path, prompt_ids: list[int], force: bool) -> int:
    """Delete prompts with their images (rows and files) and assignments; returns how many."""
    prompt_ids = storable_ids(prompt_ids)
    prompts = list(session.scalars(select(Prompt).where(Prompt.id.in_(prompt_ids))))
    ids = [prompt.id for prompt in prompts]
    if not ids:
        return 0
    assignments = select(Assignment.id).where(Assignment.prompt_id.in_(ids))
    labelled = len(list(session.scalars(_labelled(assignments))))
    if labelled and not force:
        raise HasLabels(f"{labelled} assignments of these prompts hold labels; tick 'even with labels' to delete")
    files = [media_root / path for path in session.scalars(select(Image.media_path).where(Image.prompt_id.in_(ids)))]
    external = [prompt.external_id for prompt in prompts]
    session.execute(delete(Prompt).where(Prompt.id.in_(ids)))  # images, assignments, labels cascade
    record(session, actor, "delete_prompts", f"{external} ({len(files)} images{', forced' if force else ''})")
    session.commit()
    remove_media_files(files, media_root)
    return len(ids)


@dataclass(frozen=True)
class PromptPage:
    prompts: list[Prompt]
    page: int
    pages: int
    total: int
    search: str


def clean_search(text: str) -> str:
    """The search text without control characters (PostgreSQL refuses NUL), length bounded."""
    return "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cs"))[:MAX_SEARCH_LENGTH].strip()


def prompt_page(session: Session, page: int, search: str = "") -> PromptPage:
    """One page of prompts (id order), optionally those whose id or text contains `search`."""
    query = select(Prompt)
    if search:
        query = query.where(
            or_(Prompt.external_id.contains(search, autoescape=True), Prompt.text.contains(search, autoescape=True))
        )
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(page, 1), pages)
    prompts = session.scalars(
        query.order_by(Prompt.id)
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
        .options(
            selectinload(Prompt.images),
            selectinload(Prompt.assignments).selectinload(Assignment.user),
        )
    ).all()
    return PromptPage(list(prompts), page, pages, total, search)


def progress_by_user(session: Session) -> dict[int, dict[str, int]]:
    """Assigned and completed counts per user, counted by the database."""
    rows = session.execute(
        select(
            Assignment.user_id,
            func.count(Assignment.id),
            func.count(Assignment.completed_at),
        ).group_by(Assignment.user_id)
    )
    return {user_id: {"assigned": assigned, "completed": completed} for user_id, assigned, completed in rows}
