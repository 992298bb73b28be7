"""The admin's pages: import, accounts, assignments, progress and agreement."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from .accounts import create_user
from .agreement import agreement_report
from .deps import current_admin, db_session, flash, redirect, render
from .importer import import_path
from .labels import assign
from .models import ROLES, Assignment, Prompt, User

router = APIRouter(prefix="/admin")


def assignment_status(assignment: Assignment) -> str:
    if assignment.completed_at is None:
        return "in progress"
    return "dropped" if assignment.dropped else "completed"


@router.get("")
def admin_page(
    request: Request, admin: User = Depends(current_admin), session: Session = Depends(db_session)
):
    prompts = session.scalars(
        select(Prompt)
        .order_by(Prompt.id)
        .options(
            selectinload(Prompt.images),
            selectinload(Prompt.assignments).selectinload(Assignment.user),
        )
    ).all()
    annotators = session.scalars(
        select(User).where(User.role == "annotator").order_by(User.username)
    ).all()
    progress = {user.id: {"assigned": 0, "completed": 0} for user in annotators}
    for prompt in prompts:
        for assignment in prompt.assignments:
            counts = progress.setdefault(assignment.user_id, {"assigned": 0, "completed": 0})
            counts["assigned"] += 1
            counts["completed"] += assignment.completed_at is not None
    return render(
        request,
        "admin.html",
        user=admin,
        prompts=prompts,
        annotators=annotators,
        progress=progress,
        agreement=agreement_report(session),
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
    flash(request, f"Created {created} assignments.")
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
        create_user(session, username.strip(), password, role)
    except ValueError as error:
        flash(request, f"Could not create the account: {error}")
    else:
        flash(request, f"Created {role} {username.strip()}.")
    return redirect("/admin")
