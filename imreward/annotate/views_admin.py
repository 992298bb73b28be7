"""The admin's pages: import, accounts, assignments, progress, agreement and the audit log."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import admin_actions
from .accounts import create_user
from .agreement import agreement_report
from .deps import current_admin, db_session, flash, redirect, render
from .importer import import_path
from .labels import assign
from .models import ROLES, Assignment, User

router = APIRouter(prefix="/admin")
MAX_PAGE = 10**6


def assignment_status(assignment: Assignment) -> str:
    if assignment.completed_at is None:
        return "in progress"
    return "dropped" if assignment.dropped else "completed"


@router.get("")
def admin_page(
    request: Request,
    page: int = Query(1, ge=1, le=MAX_PAGE),
    q: str = Query("", max_length=admin_actions.MAX_SEARCH_LENGTH),
    admin: User = Depends(current_admin),
    session: Session = Depends(db_session),
):
    listing = admin_actions.prompt_page(session, page, admin_actions.clean_search(q))
    annotators = session.scalars(
        select(User).where(User.role == "annotator").order_by(User.username)
    ).all()
    progress = admin_actions.progress_by_user(session)
    return render(
        request,
        "admin.html",
        user=admin,
        listing=listing,
        page_url=lambda number: "/admin?" + urlencode({"page": number, "q": listing.search}),
        annotators=annotators,
        progress={u.id: progress.get(u.id, {"assigned": 0, "completed": 0}) for u in annotators},
        agreement=agreement_report(session),
        audit=admin_actions.recent_entries(session),
        roles=ROLES,
        status_of=assignment_status,
    )


@router.post("/import")
def import_archive(
    request: Request,
    archive: UploadFile = File(...),
    admin: User = Depends(current_admin),
    session: Session = Depends(db_session),
):
    """Import a zip of prompt folders or of a manifest with its images."""
    with tempfile.TemporaryDirectory() as scratch:
        saved = Path(scratch, "upload.zip")
        with saved.open("wb") as out:
            shutil.copyfileobj(archive.file, out)
        try:
            report = import_path(
                session, request.app.state.media_root, saved, request.app.state.import_limits
            )
        except (ValueError, OSError) as error:
            session.rollback()
            flash(request, f"Import failed: {error}")
            return redirect("/admin")
    admin_actions.record(
        session, admin, "import",
        f"{archive.filename!r}: {len(report.imported)} prompts, {len(report.skipped_existing)} already present",
    )
    session.commit()
    skipped = f"; skipped {len(report.skipped_existing)} already present" if report.skipped_existing else ""
    flash(request, f"Imported {len(report.imported)} prompts{skipped}.")
    return redirect("/admin")


@router.post("/assign")
def assign_prompts(
    request: Request,
    prompt_ids: list[int] = Form(default=[]),
    user_ids: list[int] = Form(default=[]),
    admin: User = Depends(current_admin),
    session: Session = Depends(db_session),
):
    created = assign(session, prompt_ids, user_ids)
    if created:
        admin_actions.record(session, admin, "assign", f"prompts {prompt_ids} to users {user_ids}: {created} new")
        session.commit()
    flash(request, f"Created {created} assignments.")
    return redirect("/admin")


@router.post("/unassign")
def unassign_prompts(
    request: Request,
    prompt_ids: list[int] = Form(default=[]),
    user_ids: list[int] = Form(default=[]),
    force: bool = Form(False),
    admin: User = Depends(current_admin),
    session: Session = Depends(db_session),
):
    try:
        removed = admin_actions.unassign(session, admin, prompt_ids, user_ids, force)
    except admin_actions.HasLabels as error:
        flash(request, f"Nothing unassigned: {error}.")
    else:
        flash(request, f"Removed {removed} assignments.")
    return redirect("/admin")


@router.post("/delete")
def delete_prompts(
    request: Request,
    prompt_ids: list[int] = Form(default=[]),
    force: bool = Form(False),
    admin: User = Depends(current_admin),
    session: Session = Depends(db_session),
):
    try:
        deleted = admin_actions.delete_prompts(
            session, admin, request.app.state.media_root, prompt_ids, force
        )
    except admin_actions.HasLabels as error:
        flash(request, f"Nothing deleted: {error}.")
    else:
        flash(request, f"Deleted {deleted} prompts with their images.")
    return redirect("/admin")


@router.post("/users")
def add_user(
    request: Request,
    username: str = Form(...),
    password: str = Form(...),
    role: str = Form("annotator"),
    admin: User = Depends(current_admin),
    session: Session = Depends(db_session),
):
    try:
        user = create_user(session, username.strip(), password, role)
    except ValueError as error:
        flash(request, f"Could not create the account: {error}")
    else:
        admin_actions.record(session, admin, "create_user", f"{role} {user.username!r}")
        session.commit()
        flash(request, f"Created {role} {user.username}.")
    return redirect("/admin")
