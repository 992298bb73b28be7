"""The ImageRewardDB layout as published on the hub, read directly with pyarrow and zipfile.

A folder holds ``metadata-{train,validation,test}.parquet`` (one row per image: ``image_path`` or
``image``, ``prompt_id``, ``prompt``, ``rank``, ratings...) and the images, either as files at
``image_path`` or inside ``images/{split}/{split}_{n}.zip``: the row ``images/train/train_7/x.webp``
is the member ``x.webp`` of ``images/train/train_7.zip``. The same rows as a JSON list or JSON
lines file are read too.

Subsets: the dataset card offers the train split at 1K, 2K, 4K and 8K prompts (validation and
test are the same for all). The dataset's own loading script (``ImageRewardDB.py`` on the hub)
defines them by archive, not by prompt count: the subset ``{n}k`` is the rows whose images are in
``train_1.zip`` ... ``train_{4n}.zip`` (``part_ids = {"train": 4 * num_k}``). ``subset="1k"`` keeps
exactly those rows, and a hub download then fetches only those archives.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path, PurePosixPath

from imreward.data.loading import DataStats, RawImage, build_records
from imreward.data.records import ImageSource, PromptRecord

SPLITS = ("train", "validation", "test")
# Train archives per subset, as the dataset's loading script counts them (4 per thousand prompts).
SUBSETS = {"1k": 4, "2k": 8, "4k": 16, "8k": 32}
_ARCHIVE_NUMBER = re.compile(r"(?:^|/)train_(\d+)(?:/|$)")


def metadata_file(path: str | Path, split: str) -> Path:
    """``path`` itself if it is a parquet file, else ``path/metadata-{split}.parquet``."""
    path = Path(path)
    if path.suffix in (".parquet", ".json", ".jsonl"):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such metadata file")
        return path
    candidate = path / f"metadata-{split}.parquet"
    if not candidate.is_file():
        present = sorted(p.name for p in path.glob("metadata-*.parquet")) if path.is_dir() else []
        raise FileNotFoundError(f"{candidate} not found (present: {', '.join(present) or 'none'}); pass the "
                                "folder of an ImageRewardDB-layout dataset or a metadata .parquet file")
    return candidate


class ZipIndex:
    """Sizes of the members of the zips next to a metadata file, looked up by the row's image_path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._members: dict[str, dict[str, tuple[str, int]] | None] = {}

    def find(self, image_path: str) -> tuple[ImageSource, int] | None:
        relative = PurePosixPath(image_path)
        archive = self.root / f"{relative.parent}.zip"
        members = self._load(archive)
        if members is None:
            return None
        for key in (str(relative), f"{relative.parent.name}/{relative.name}", relative.name):
            if key in members:
                member, size = members[key]
                return ImageSource(str(archive), member), size
        return None

    def _load(self, archive: Path) -> dict[str, tuple[str, int]] | None:
        key = str(archive)
        if key not in self._members:
            if not archive.is_file():
                self._members[key] = None
            else:
                with zipfile.ZipFile(archive) as opened:
                    infos = [info for info in opened.infolist() if not info.is_dir()]
                members = {info.filename: (info.filename, info.file_size) for info in infos}
                for info in infos:  # also by file name alone, for zips without the folder prefix
                    members.setdefault(PurePosixPath(info.filename).name, (info.filename, info.file_size))
                self._members[key] = members
        return self._members[key]


def _inline_image(value: object, name: str) -> tuple[ImageSource, int]:
    data = value.get("bytes") if isinstance(value, dict) else value
    data = bytes(data) if data is not None else b""
    return ImageSource(name, data=data), len(data)


def _json_rows(metadata: Path) -> list[dict]:
    text = metadata.read_text(encoding="utf-8")
    if metadata.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = json.loads(text)
    if not isinstance(rows, list):
        raise ValueError(f"{metadata}: expected a JSON list of rows")
    return rows


def read_metadata(metadata: Path, subset: str | None = None) -> tuple[dict[str, list], str]:
    """The columns a reader needs ({name: values}) and which image column there is, keeping the
    rows whose images are in the subset's train archives when a subset is given."""
    if metadata.suffix == ".parquet":
        import pyarrow.parquet as pq

        columns = set(pq.read_schema(metadata).names)
    else:
        rows = _json_rows(metadata)
        columns = set().union(*(row.keys() for row in rows)) if rows else set()
    for required in ("prompt_id", "prompt", "rank"):
        if required not in columns:
            raise ValueError(f"{metadata} has no {required!r} column (columns: {', '.join(sorted(columns))})")
    image_column = "image_path" if "image_path" in columns else "image" if "image" in columns else None
    if image_column is None:
        raise ValueError(f"{metadata} has neither an 'image_path' nor an 'image' column")
    names = ["prompt_id", "prompt", "rank", image_column]
    if metadata.suffix == ".parquet":
        table = pq.read_table(metadata, columns=names).to_pydict()
    else:
        try:
            table = {name: [row[name] for row in rows] for name in names}
        except (KeyError, TypeError) as error:
            raise ValueError(f"{metadata}: every row needs {', '.join(names)} ({error!r})") from error
    if subset is not None:
        if subset not in SUBSETS:
            raise ValueError(f"unknown ImageRewardDB subset {subset!r}; choose one of {', '.join(SUBSETS)}")
        if image_column != "image_path":
            raise ValueError(f"{metadata}: the subset {subset} is defined by the train archives its images are "
                             "in, but these rows have no 'image_path' column")
        archives = SUBSETS[subset]
        rows = [i for i, path in enumerate(table["image_path"]) if _in_archives(str(path), archives)]
        table = {name: [values[i] for i in rows] for name, values in table.items()}
    return table, image_column


def _in_archives(image_path: str, archives: int) -> bool:
    """Whether the row's image is in ``train_1`` ... ``train_{archives}`` (``images/train/train_7/x.webp``)."""
    match = _ARCHIVE_NUMBER.search(str(PurePosixPath(image_path).parent))
    return match is not None and 1 <= int(match.group(1)) <= archives


def archives_for(image_paths: list[str]) -> list[str]:
    """The repo paths of the zips holding these ``image_path`` rows, in order of first use."""
    return list(dict.fromkeys(f"{PurePosixPath(path).parent}.zip" for path in image_paths))


def read_imagerewarddb(path: str | Path, split: str = "train", policy: str = "train",
                       image_root: str | Path | None = None,
                       subset: str | None = None) -> tuple[list[PromptRecord], DataStats]:
    """Records of one split (of ``subset``, for train) under ``policy`` (``imreward.data.loading``);
    ``image_path`` rows are relative to ``image_root`` (default: the metadata's folder)."""
    metadata = metadata_file(path, split)
    root = Path(image_root) if image_root is not None else metadata.parent
    table, image_column = read_metadata(metadata, subset if split == "train" else None)
    zips = ZipIndex(root)
    groups: dict[str, tuple[str, list[RawImage]]] = {}
    for row, (prompt_id, prompt, rank, image) in enumerate(
            zip(table["prompt_id"], table["prompt"], table["rank"], table[image_column])):
        rank = _rank(rank, metadata, row)
        if image_column == "image":
            source, size = _inline_image(image, f"{metadata.name}[{row}]")
        elif (root / image).is_file():
            source, size = ImageSource(str(root / image)), (root / image).stat().st_size
        else:
            found = zips.find(image)
            source, size = found if found else (ImageSource(str(root / image)), None)
        groups.setdefault(str(prompt_id), (prompt, []))[1].append(RawImage(source, rank, size))
    return build_records(groups, policy)


def _rank(value: object, metadata: Path, row: int) -> int:
    try:
        rank = int(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{metadata} row {row}: rank must be an integer, got {value!r}") from error
    if rank < 1:
        raise ValueError(f"{metadata} row {row}: ranks must be integers >= 1 (1 = best), got {rank}")
    return rank
