"""The annotator's pages: assignment list, the three stages, autosave API and media."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from . import labels as label_service
from .deps import RowId, current_user, db_session, flash, redirect, render
from .models import CATEGORIES, ISSUE_FLAGS, PROMPT_FLAGS, RATING_FIELDS, Assignment, Image, User
from .security import resolve_media_path

router = APIRouter()

STAGE_TEMPLATES = {"prompt": "stage_prompt.html", "rate": "stage_rate.html", "rank": "stage_rank.html"}


@router.get("/")
def dashboard(
    request: Request, user: User = Depends(current_user), session: Session = Depends(db_session)
):
    if user.is_admin:
        return redirect("/admin")
    assignments = session.scalars(
        select(Assignment)
        .where(Assignment.user_id == user.id)
        .order_by(Assignment.id)
        .options(selectinload(Assignment.prompt), selectinload(Assignment.image_labels))
    ).all()
    rows = [(a, label_service.next_stage(a)) for a in assignments]
    return render(request, "dashboard.html", user=user, rows=rows)


def _assignment(assignment_id: int, user: User, session: Session) -> Assignment:
    try:
        return label_service.owned_assignment(session, assignment_id, user)
    except LookupError:
        raise HTTPException(status_code=404, detail="no such assignment") from None
    except label_service.AccessDenied:
        raise HTTPException(status_code=403, detail="not your assignment") from None


@router.get("/assignments/{assignment_id}")
def resume(assignment_id: RowId, user=Depends(current_user), session=Depends(db_session)):
    """Send the annotator to where they stopped."""
    assignment = _assignment(assignment_id, user, session)
    stage = label_service.next_stage(assignment)
    if stage is None:
        stage = "prompt" if assignment.dropped else "rank"
    return redirect(f"/assignments/{assignment_id}/{stage}")


@router.get("/assignments/{assignment_id}/{stage}")
def stage_page(
    request: Request,
    assignment_id: RowId,
    stage: str,
    user: User = Depends(current_user),
    session: Session = Depends(db_session),
):
    if stage not in STAGE_TEMPLATES:
        raise HTTPException(status_code=404, detail="no such stage")
    assignment = _assignment(assignment_id, user, session)
    if stage != "prompt" and not label_service.stage_done(assignment, "prompt"):
        return redirect(f"/assignments/{assignment_id}/prompt")
    if stage == "rank" and not label_service.stage_done(assignment, "rate"):
        return redirect(f"/assignments/{assignment_id}/rate")
    image_labels = sorted(assignment.image_labels, key=lambda label: label.image.position)
    return render(
        request,
        STAGE_TEMPLATES[stage],
        user=user,
        assignment=assignment,
        image_labels=image_labels,
        categories=CATEGORIES,
        prompt_flags=PROMPT_FLAGS,
        issue_flags=ISSUE_FLAGS,
        rating_fields=RATING_FIELDS,
        contradictions=label_service.contradictions(image_labels),
        can_complete=label_service.next_stage(assignment) is None,
    )


def _saved(assignment: Assignment, session: Session) -> dict:
    session.expire_all()
    fresh = session.get(Assignment, assignment.id)
    return {
        "ok": True,
        "next_stage": label_service.next_stage(fresh),
        "contradictions": [c.message for c in label_service.contradictions(fresh.image_labels)],
    }


@router.post("/api/assignments/{assignment_id}/prompt")
def save_prompt_label(
    assignment_id: RowId,
    field: str = Body(...),
    value: str | bool | None = Body(...),
    user: User = Depends(current_user),
    session: Session = Depends(db_session),
):
    assignment = _assignment(assignment_id, user, session)
    label_service.save_prompt_label(session, assignment, field, value)
    return _saved(assignment, session)


@router.post("/api/assignments/{assignment_id}/images/{image_id}")
def save_image_label(
    assignment_id: RowId,
    image_id: RowId,
    field: str = Body(...),
    value: bool | int | None = Body(...),
    user: User = Depends(current_user),
    session: Session = Depends(db_session),
):
    assignment = _assignment(assignment_id, user, session)
    label_service.save_image_label(session, assignment, image_id, field, value)
    return _saved(assignment, session)


@router.post("/assignments/{assignment_id}/complete")
def complete(
    request: Request,
    assignment_id: RowId,
    user: User = Depends(current_user),
    session: Session = Depends(db_session),
):
    assignment = _assignment(assignment_id, user, session)
    try:
        label_service.complete(session, assignment)
    except label_service.InvalidLabel as error:
        flash(request, f"Not finished yet: {error}.")
        return redirect(f"/assignments/{assignment_id}")
    flash(request, f"Prompt {assignment.prompt.external_id} completed.")
    return redirect("/")


@router.get("/media/{requested:path}")
def media(
    request: Request,
    requested: str,
    user: User = Depends(current_user),
    session: Session = Depends(db_session),
):
    """Serve an image from the media root to an admin or an annotator assigned to it."""
    path = resolve_media_path(request.app.state.media_root, requested)
    if path is None:
        raise HTTPException(status_code=404, detail="no such file")
    relative = path.relative_to(request.app.state.media_root.resolve()).as_posix()
    query = select(Image.id).where(Image.media_path == relative)
    if not user.is_admin:
        query = query.join(Assignment, Assignment.prompt_id == Image.prompt_id).where(
            Assignment.user_id == user.id
        )
    if session.scalar(query.limit(1)) is None:
        raise HTTPException(status_code=404, detail="no such file")
    return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})
