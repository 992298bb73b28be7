"""Load prompts and their generated images from a folder, a manifest or a zip archive.

Accepted sources:
- a folder holding one sub-folder per prompt: `<prompt id>/prompt.txt` plus image files,
  taken in file-name order;
- a `.json` manifest (a list) or `.jsonl` manifest (one object a line) of
  `{"id": str, "prompt": str, "images": [paths relative to the manifest]}`;
  `generations` is accepted for `images`, so a training JSON imports as is;
- a `.zip` archive holding either of the above.

Images are copied into the media root as `prompts/<row id>/<position><suffix>`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Image, Prompt

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
MANIFEST_SUFFIXES = (".json", ".jsonl")
MANIFEST_NAMES = ("manifest.json", "manifest.jsonl")
PROMPT_TEXT_FILE = "prompt.txt"


class InvalidSource(ValueError):
    """The source is not in an accepted layout."""


@dataclass(frozen=True)
class PromptSource:
    external_id: str
    text: str
    image_files: tuple[Path, ...]


@dataclass(frozen=True)
class ImportReport:
    imported: list[str]
    skipped_existing: list[str]


def read_folder(folder: Path) -> list[PromptSource]:
    sources = []
    for prompt_dir in sorted(path for path in folder.iterdir() if path.is_dir()):
        text_file = prompt_dir / PROMPT_TEXT_FILE
        if not text_file.is_file():
            raise InvalidSource(f"{prompt_dir} has no {PROMPT_TEXT_FILE}")
        images = sorted(p for p in prompt_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        sources.append(_checked(prompt_dir.name, text_file.read_text("utf-8").strip(), images))
    return sources


def read_manifest(manifest: Path) -> list[PromptSource]:
    content = manifest.read_text("utf-8")
    if manifest.suffix == ".jsonl":
        records = [json.loads(line) for line in content.splitlines() if line.strip()]
    else:
        records = json.loads(content)
    if not isinstance(records, list):
        raise InvalidSource(f"{manifest} must hold a list of prompt records")
    base = manifest.parent.resolve()
    sources = []
    for record in records:
        if not isinstance(record, dict):
            raise InvalidSource(f"record must be an object: {record!r}")
        images = record.get("images", record.get("generations"))
        if "id" not in record or "prompt" not in record or not images:
            raise InvalidSource(f"record needs id, prompt and images: {record!r}")
        files = [_inside(base, image) for image in images]
        sources.append(_checked(str(record["id"]), str(record["prompt"]), files))
    return sources


def read_source(source: Path) -> list[PromptSource]:
    """Read a folder or a manifest file (not a zip; see `import_path`)."""
    if source.is_file() and source.suffix in MANIFEST_SUFFIXES:
        return read_manifest(source)
    if source.is_dir():
        manifests = [source / name for name in MANIFEST_NAMES if (source / name).is_file()]
        return read_manifest(manifests[0]) if manifests else read_folder(source)
    raise InvalidSource(f"{source} is neither a prompt folder, a manifest nor a zip archive")


def _inside(base: Path, relative: str) -> Path:
    path = (base / relative).resolve()
    if not path.is_relative_to(base):
        raise InvalidSource(f"image path {relative!r} leaves the manifest folder")
    return path


def _checked(external_id: str, text: str, images: list[Path]) -> PromptSource:
    if not text:
        raise InvalidSource(f"prompt {external_id!r} has no text")
    if len(images) < 2:
        raise InvalidSource(f"prompt {external_id!r} needs at least two images to rank")
    for image in images:
        if image.suffix.lower() not in IMAGE_SUFFIXES or not image.is_file():
            raise InvalidSource(f"prompt {external_id!r}: {image.name} is not an image file")
    return PromptSource(external_id, text, tuple(images))


def extract_zip(archive: Path, target: Path) -> Path:
    """Extract a zip, refusing members that would land outside `target`."""
    target = target.resolve()
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.namelist():
            if not (target / member).resolve().is_relative_to(target):
                raise InvalidSource(f"zip member {member!r} leaves the archive folder")
        zipped.extractall(target)
    entries = [p for p in target.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    only_folder = len(entries) == 1 and entries[0].is_dir()
    return entries[0] if only_folder and not _looks_like_prompt_folder(entries[0]) else target


def _looks_like_prompt_folder(folder: Path) -> bool:
    return (folder / PROMPT_TEXT_FILE).is_file()


def store(session: Session, media_root: Path, sources: list[PromptSource]) -> ImportReport:
    """Add new prompts with copies of their images; prompts already known are skipped."""
    known = set(session.scalars(select(Prompt.external_id)))
    report = ImportReport(imported=[], skipped_existing=[])
    for source in sources:
        if source.external_id in known:
            report.skipped_existing.append(source.external_id)
            continue
        prompt = Prompt(external_id=source.external_id, text=source.text)
        session.add(prompt)
        session.flush()
        for position, image_file in enumerate(source.image_files):
            relative = Path("prompts", str(prompt.id), f"{position}{image_file.suffix.lower()}")
            (media_root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image_file, media_root / relative)
            session.add(Image(prompt=prompt, position=position, media_path=relative.as_posix()))
        known.add(source.external_id)
        report.imported.append(source.external_id)
    session.commit()
    return report


def import_path(session: Session, media_root: Path, source: Path) -> ImportReport:
    """Import a folder, manifest or zip archive into the database and media root."""
    if source.suffix.lower() == ".zip":
        with tempfile.TemporaryDirectory() as scratch:
            return store(session, media_root, read_source(extract_zip(source, Path(scratch))))
    return store(session, media_root, read_source(source))
