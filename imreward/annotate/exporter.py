"""Export completed annotations in the layouts the trainer reads.

Into one folder it writes the images (`images/<n>/<position><suffix>`), the training JSON
`<split>.json` (`id`, `prompt`, `generations`, `ranking`) and the ImageRewardDB table
`metadata-<split>.parquet` (one row per image), all paths relative to that folder.

Several annotators of one prompt are combined: a prompt is dropped when at least half of
them flagged it; otherwise ratings are averaged, the classification is the most frequent
category, an issue flag is set when any annotator set it, and the rank orders images by
their mean rank (equal means share a rank; ranks are 1, 2, 3... with 1 the best).
A prompt whose labels are incomplete or whose images are missing is left out and named in
the report, so one bad record never stops an export.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from .labels import next_stage
from .models import CATEGORIES, ISSUE_FLAGS, Assignment, ImageLabel, Prompt

DB_RATING_COLUMNS = {
    "overall": "overall_rating",
    "alignment": "image_text_alignment_rating",
    "fidelity": "fidelity_rating",
    "harmlessness": "harmlessness_rating",
}


@dataclass(frozen=True)
class ExportReport:
    exported_prompts: int
    dropped_prompts: int
    images: int
    training_json: Path
    metadata_parquet: Path
    skipped: tuple[str, ...] = ()  # "<prompt id>: <reason>" for each prompt left out


def dense_ranks(scores: list[float]) -> list[int]:
    """Rank scores ascending (lowest = 1); equal scores share a rank."""
    order = {score: rank for rank, score in enumerate(sorted(set(scores)), start=1)}
    return [order[score] for score in scores]


def _classification(assignments: list[Assignment]) -> str:
    counts = Counter(a.category for a in assignments)
    return max(CATEGORIES, key=lambda category: (counts[category], -CATEGORIES.index(category)))


def _image_rows(prompt: Prompt, assignments: list[Assignment]) -> list[dict]:
    """Combined per-image labels of one prompt, in image order."""
    labels_by_image = {image.id: [] for image in prompt.images}
    for assignment in assignments:
        for label in assignment.image_labels:
            labels_by_image[label.image_id].append(label)
    mean_ranks = [mean(label.rank for label in labels_by_image[i.id]) for i in prompt.images]
    rows = []
    for image, rank in zip(prompt.images, dense_ranks(mean_ranks)):
        labels: list[ImageLabel] = labels_by_image[image.id]
        row = {"image": image, "rank": rank}
        for field, column in DB_RATING_COLUMNS.items():
            row[column] = float(mean(getattr(label, field) for label in labels))
        for flag in ISSUE_FLAGS:
            row[f"issue_{flag}"] = any(getattr(label, f"issue_{flag}") for label in labels)
        rows.append(row)
    return rows


def _completed_prompts(session: Session) -> list[tuple[Prompt, list[Assignment]]]:
    prompts = session.scalars(
        select(Prompt)
        .where(Prompt.assignments.any(Assignment.completed_at.is_not(None)))
        .order_by(Prompt.id)
        .options(
            selectinload(Prompt.images),
            selectinload(Prompt.assignments).selectinload(Assignment.image_labels),
        )
    ).all()
    return [(p, [a for a in p.assignments if a.completed_at is not None]) for p in prompts]


def export_dataset(session: Session, media_root: Path, out_dir: Path, split: str = "train"):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir.mkdir(parents=True, exist_ok=True)
    records, table_rows, dropped, skipped = [], [], 0, []
    for prompt, completed in _completed_prompts(session):
        kept = [a for a in completed if not a.dropped]
        if len(kept) * 2 <= len(completed):
            dropped += 1
            continue
        try:
            record, rows = _export_prompt(prompt, kept, media_root, out_dir)
        except (InvalidRecord, OSError) as error:
            skipped.append(f"{prompt.external_id}: {error}")
            continue
        records.append(record)
        table_rows.extend(rows)
    training_json = out_dir / f"{split}.json"
    training_json.write_text(json.dumps(records, indent=1, ensure_ascii=False), "utf-8")
    metadata = out_dir / f"metadata-{split}.parquet"
    pq.write_table(pa.Table.from_pylist(table_rows, schema=_parquet_schema(pa)), metadata)
    return ExportReport(len(records), dropped, len(table_rows), training_json, metadata, tuple(skipped))


class InvalidRecord(ValueError):
    """A prompt's stored labels cannot be exported (incomplete, or not matching its images)."""


def _export_prompt(prompt: Prompt, kept: list[Assignment], media_root: Path, out_dir: Path):
    """The training record and table rows of one prompt, its images copied to `out_dir`."""
    image_ids = {image.id for image in prompt.images}
    for assignment in kept:
        stage = next_stage(assignment)
        if stage is not None:
            raise InvalidRecord(f"annotator {assignment.user_id} has stage {stage!r} unfinished")
        if {label.image_id for label in assignment.image_labels} != image_ids:
            raise InvalidRecord(f"annotator {assignment.user_id}'s labels do not match the images")
    rows = _image_rows(prompt, kept)
    generations, table_rows, copied = [], [], []
    try:
        for row in rows:
            image = row.pop("image")
            relative = Path("images", str(prompt.id), Path(image.media_path).name).as_posix()
            (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            copied.append(out_dir / relative)
            shutil.copyfile(media_root / image.media_path, out_dir / relative)
            generations.append(relative)
            table_rows.append(
                {
                    "image_path": relative,
                    "prompt_id": prompt.external_id,
                    "prompt": prompt.text,
                    "classification": _classification(kept),
                    "image_amount_in_total": len(rows),
                    **row,
                    "annotator_count": len(kept),
                }
            )
    except OSError:
        for path in copied:
            path.unlink(missing_ok=True)
        raise
    record = {
        "id": prompt.external_id,
        "prompt": prompt.text,
        "generations": generations,
        "ranking": [row["rank"] for row in rows],
    }
    return record, table_rows


def _parquet_schema(pa):
    fields = [
        ("image_path", pa.string()),
        ("prompt_id", pa.string()),
        ("prompt", pa.string()),
        ("classification", pa.string()),
        ("image_amount_in_total", pa.int64()),
        ("rank", pa.int64()),
        *[(column, pa.float64()) for column in DB_RATING_COLUMNS.values()],
        *[(f"issue_{flag}", pa.bool_()) for flag in ISSUE_FLAGS],
        ("annotator_count", pa.int64()),
    ]
    return pa.schema(fields)
