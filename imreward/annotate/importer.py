"""Load prompts and their generated images from a folder, a manifest or a zip archive.

Accepted sources:
- a folder holding one sub-folder per prompt: `<prompt id>/prompt.txt` plus image files,
  taken in file-name order;
- a `.json` manifest (a list) or `.jsonl` manifest (one object a line) of
  `{"id": str, "prompt": str, "images": [paths relative to the manifest]}`;
  `generations` is accepted for `images`, so a training JSON imports as is;
- a `.zip` archive holding either of the above.

Every image is checked before anything is stored: its header must parse as PNG, JPEG or
WebP (`image_io.WEB_FORMATS`: what browsers show and Pillow parses safely; GIF, TIFF, BMP and
the rest are refused because annotators compare still photographs, and every extra decoder
is attack surface reached by hostile uploads), within the pixel and side limits. Images are
copied into the media root as `prompts/<row id>/<position><suffix of the real format>`; an
import that fails part-way (a bad record, a full disk) removes what it had copied.
Zip archives are extracted under `ImportLimits`, counting the bytes actually written.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from imreward.errors import ImageLoadError
from imreward.image_io import WEB_FORMATS, verify_image

from .models import Image, Prompt

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
STORED_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "MPO": ".jpg", "WEBP": ".webp"}
MAX_EXTERNAL_ID_LENGTH = 128  # the `prompts.external_id` column
MAX_PROMPT_LENGTH = 10_000
COPY_CHUNK = 1024 * 1024
MANIFEST_SUFFIXES = (".json", ".jsonl")
MANIFEST_NAMES = ("manifest.json", "manifest.jsonl")
PROMPT_TEXT_FILE = "prompt.txt"


class InvalidSource(ValueError):
    """The source is not in an accepted layout, or breaks a limit."""


@dataclass(frozen=True)
class ImportLimits:
    """Bounds on what one import may unpack and store."""

    max_members: int = 10_000  # entries in a zip
    max_member_bytes: int = 64 * 1024 * 1024  # uncompressed size of one zip entry
    max_total_bytes: int = 2 * 1024 * 1024 * 1024  # uncompressed size of a whole zip
    max_ratio: float = 200.0  # uncompressed / compressed size of one entry (images barely compress)
    max_pixels: int = 40_000_000  # width x height of one image
    max_side: int = 16_384  # width or height of one image, in pixels


@dataclass(frozen=True)
class PromptSource:
    external_id: str
    text: str
    image_files: tuple[Path, ...]
    image_suffixes: tuple[str, ...]  # of each image's verified format


@dataclass(frozen=True)
class ImportReport:
    imported: list[str]
    skipped_existing: list[str]


def read_folder(folder: Path, limits: ImportLimits) -> list[PromptSource]:
    sources = []
    for prompt_dir in sorted(path for path in folder.iterdir() if path.is_dir()):
        text_file = prompt_dir / PROMPT_TEXT_FILE
        if not text_file.is_file():
            raise InvalidSource(f"{prompt_dir} has no {PROMPT_TEXT_FILE}")
        images = sorted(p for p in prompt_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        text = _read_text(text_file).strip()
        sources.append(_checked(prompt_dir.name, text, images, limits))
    return sources


def _read_text(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidSource(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") from None


def read_manifest(manifest: Path, limits: ImportLimits) -> list[PromptSource]:
    content = _read_text(manifest)
    try:
        if manifest.suffix == ".jsonl":
            records = [json.loads(line) for line in content.splitlines() if line.strip()]
        else:
            records = json.loads(content)
    except json.JSONDecodeError as error:
        raise InvalidSource(f"{manifest} is not valid JSON: {error}") from None
    if not isinstance(records, list):
        raise InvalidSource(f"{manifest} must hold a list of prompt records")
    base = manifest.parent.resolve()
    sources = []
    for record in records:
        if not isinstance(record, dict):
            raise InvalidSource(f"record must be an object: {record!r}")
        images = record.get("images", record.get("generations"))
        if "id" not in record or "prompt" not in record or not images:
            raise InvalidSource(f"record needs id, prompt and images: {str(record)[:200]}")
        if not isinstance(images, list) or not all(isinstance(image, str) for image in images):
            raise InvalidSource(f"record {str(record['id'])[:200]!r}: images must be a list of paths")
        files = [_inside(base, image) for image in images]
        sources.append(_checked(str(record["id"]), str(record["prompt"]), files, limits))
    return sources


def read_source(source: Path, limits: ImportLimits) -> list[PromptSource]:
    """Read a folder or a manifest file (not a zip; see `import_path`)."""
    if source.is_file() and source.suffix in MANIFEST_SUFFIXES:
        return read_manifest(source, limits)
    if source.is_dir():
        manifests = [source / name for name in MANIFEST_NAMES if (source / name).is_file()]
        return read_manifest(manifests[0], limits) if manifests else read_folder(source, limits)
    raise InvalidSource(f"{source} is neither a prompt folder, a manifest nor a zip archive")


def _inside(base: Path, relative: str) -> Path:
    if "\0" in relative:
        raise InvalidSource(f"image path {relative[:200]!r} holds a NUL byte")
    path = (base / relative).resolve()
    if not path.is_relative_to(base):
        raise InvalidSource(f"image path {relative!r} leaves the manifest folder")
    return path


def _checked(external_id: str, text: str, images: list[Path], limits: ImportLimits) -> PromptSource:
    shown = repr(external_id[:MAX_EXTERNAL_ID_LENGTH])
    if not 0 < len(external_id) <= MAX_EXTERNAL_ID_LENGTH or _has_control(external_id):
        raise InvalidSource(
            f"prompt id {shown} must be 1 to {MAX_EXTERNAL_ID_LENGTH} characters without control characters"
        )
    if not text:
        raise InvalidSource(f"prompt {shown} has no text")
    if len(text) > MAX_PROMPT_LENGTH or "\0" in text or _has_control(text, allowed="\n\t"):
        raise InvalidSource(f"prompt {shown}: text over {MAX_PROMPT_LENGTH} characters or with control characters")
    if len(images) < 2:
        raise InvalidSource(f"prompt {shown} needs at least two images to rank")
    suffixes = tuple(_verified_suffix(shown, image, limits) for image in images)
    return PromptSource(external_id, text, tuple(images), suffixes)


def _has_control(text: str, allowed: str = "") -> bool:
    """Control or unpaired surrogate characters (PostgreSQL refuses NUL; none belongs in an id)."""
    return any(unicodedata.category(c) in ("Cc", "Cs") and c not in allowed for c in text)


def _verified_suffix(prompt: str, image: Path, limits: ImportLimits) -> str:
    """Check that `image` is a PNG, JPEG or WebP within the limits; returns its stored suffix."""
    if image.suffix.lower() not in IMAGE_SUFFIXES or not image.is_file():
        raise InvalidSource(f"prompt {prompt}: {image.name} is not an image file")
    try:
        header = verify_image(image, WEB_FORMATS, limits.max_pixels)
    except ImageLoadError as error:
        raise InvalidSource(f"prompt {prompt}: {image.name} refused: {error}") from None
    if max(header.width, header.height) > limits.max_side:
        raise InvalidSource(
            f"prompt {prompt}: {image.name} is {header.width}x{header.height} pixels; "
            f"the largest side allowed is {limits.max_side}"
        )
    return STORED_SUFFIX[header.format]


def extract_zip(archive: Path, target: Path, limits: ImportLimits) -> Path:
    """Extract a zip under `limits`, refusing members that would land outside `target`.

    Declared sizes are checked first, then every member is streamed while counting the bytes
    actually written, so a member that lies about its size cannot get past the limits.
    """
    target = target.resolve()
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [info for info in zipped.infolist() if not info.is_dir()]
            _check_declared(members, limits)
            written = 0
            for info in members:
                destination = (target / info.filename).resolve()
                if not destination.is_relative_to(target) or "\0" in info.filename:
                    raise InvalidSource(f"zip member {info.filename[:200]!r} leaves the archive folder")
                destination.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(info) as source, destination.open("wb") as out:
                    written += _copy_bounded(source, out, info, limits, limits.max_total_bytes - written)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as error:
        raise InvalidSource(f"{archive.name} is not a readable zip archive: {error}") from None
    entries = [p for p in target.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    only_folder = len(entries) == 1 and entries[0].is_dir()
    return entries[0] if only_folder and not _looks_like_prompt_folder(entries[0]) else target


def _check_declared(members: list[zipfile.ZipInfo], limits: ImportLimits) -> None:
    if len(members) > limits.max_members:
        raise InvalidSource(f"zip holds {len(members)} files; at most {limits.max_members} are accepted")
    if sum(info.file_size for info in members) > limits.max_total_bytes:
        raise InvalidSource(f"zip unpacks to more than {limits.max_total_bytes} bytes")
    for info in members:
        _check_member_size(info, info.file_size, limits)


def _check_member_size(info: zipfile.ZipInfo, size: int, limits: ImportLimits) -> None:
    if size > limits.max_member_bytes:
        raise InvalidSource(f"zip member {info.filename!r} unpacks to more than {limits.max_member_bytes} bytes")
    if size > limits.max_ratio * max(info.compress_size, 1):
        raise InvalidSource(
            f"zip member {info.filename!r} expands more than {limits.max_ratio:g} times (a zip bomb?)"
        )


def _copy_bounded(source, out, info: zipfile.ZipInfo, limits: ImportLimits, total_left: int) -> int:
    """Copy one member, stopping as soon as it passes a limit; returns the bytes written."""
    written = 0
    while chunk := source.read(COPY_CHUNK):
        written += len(chunk)
        _check_member_size(info, written, limits)
        if written > total_left:
            raise InvalidSource(f"zip unpacks to more than {limits.max_total_bytes} bytes")
        out.write(chunk)
    return written


def _looks_like_prompt_folder(folder: Path) -> bool:
    return (folder / PROMPT_TEXT_FILE).is_file()


def store(session: Session, media_root: Path, sources: list[PromptSource]) -> ImportReport:
    """Add new prompts with copies of their images; prompts already known are skipped.

    All or nothing: if anything fails (a full disk, the database), the copied files are
    removed and the transaction is rolled back.
    """
    known = set(session.scalars(select(Prompt.external_id)))
    report = ImportReport(imported=[], skipped_existing=[])
    copied: list[Path] = []
    try:
        for source in sources:
            if source.external_id in known:
                report.skipped_existing.append(source.external_id)
                continue
            prompt = Prompt(external_id=source.external_id, text=source.text)
            session.add(prompt)
            session.flush()
            for position, (image_file, suffix) in enumerate(zip(source.image_files, source.image_suffixes)):
                relative = Path("prompts", str(prompt.id), f"{position}{suffix}")
                (media_root / relative).parent.mkdir(parents=True, exist_ok=True)
                copied.append(media_root / relative)
                shutil.copyfile(image_file, media_root / relative)
                session.add(Image(prompt=prompt, position=position, media_path=relative.as_posix()))
            known.add(source.external_id)
            report.imported.append(source.external_id)
        session.commit()
    except BaseException:
        session.rollback()
        remove_media_files(copied, media_root)
        raise
    return report


def remove_media_files(files: list[Path], media_root: Path) -> None:
    """Delete `files` and the folders they leave empty, up to the media root."""
    for file in files:
        file.unlink(missing_ok=True)
        folder = file.parent
        while folder != media_root and folder.is_relative_to(media_root):
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone)
                break
            folder = folder.parent


def import_path(
    session: Session, media_root: Path, source: Path, limits: ImportLimits = ImportLimits()
) -> ImportReport:
    """Import a folder, manifest or zip archive into the database and media root."""
    if source.suffix.lower() == ".zip":
        with tempfile.TemporaryDirectory() as scratch:
            extracted = extract_zip(source, Path(scratch), limits)
            return store(session, media_root, read_source(extracted, limits))
    return store(session, media_root, read_source(source, limits))
