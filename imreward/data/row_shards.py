"""Folders, manifests, ImageRewardDB and the published preference datasets as shards of rows.

- **folder tree**: every ``.png/.jpg/.jpeg/.webp`` under the folder, one shard per folder (split
  every ``rows_per_shard`` images); the prompt is the sidecar ``<image stem>.txt`` or the nearest
  ``prompt.txt`` in its folder or a parent up to the root; the key is the path below the root.
  Symlinks that resolve outside the root are refused (a row error) unless ``allow_outside_root``.
- **manifest**: ``.jsonl``, ``.csv`` or ``.parquet`` rows with ``prompt`` and ``image`` (or
  ``image_path``) columns, in shards of ``rows_per_shard`` rows; paths are relative to the
  manifest's folder and may not leave it unless ``allow_outside_root``; the key is the ``key`` or
  ``id`` column, else the image path as written.
- **ImageRewardDB**: ``metadata-<split>.parquet`` (``prompt``, ``image_path`` relative to the
  folder); images missing on disk are read from the zip archives under ``images/<split>/`` (the
  published download), where they lie. The key is ``image_path``.
- **published dataset**: a hub dataset id or a local copy of HPD v2 or Pick-a-Pic, read with
  ``imreward.data.loading`` under the evaluation policy; the key is the image's location below the
  dataset's folder (``data/test-0.parquet:0/jpg_0``).
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import os
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from imreward.data.records import ImageSource
from imreward.data.shards import IMAGE_SUFFIXES, ShardOptions, ShardReadError, ShardRow, inside_root


def _chunks(count: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def _outside(path: Path, root: Path, options: ShardOptions) -> str | None:
    """The error for a path that leaves ``root`` (None when it stays inside or that is allowed)."""
    if options.allow_outside_root or inside_root(path, root):
        return None
    return f"{path}: resolves to {os.path.realpath(path)}, outside {root} (allow with --allow-outside-root)"


# ---- folder tree -------------------------------------------------------------------------------------------------

def _images_in(folder: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(folder)
                  if entry.name.lower().endswith(IMAGE_SUFFIXES) and entry.is_file())


def folder_shards(root: Path, options: ShardOptions) -> list[FolderShard]:
    shards = []
    for folder, folders, _ in os.walk(root, followlinks=options.allow_outside_root):
        folders.sort()
        relative = Path(folder).relative_to(root).as_posix()
        count = len(_images_in(Path(folder)))
        base = "root" if relative == "." else relative.replace("/", "__")
        for number, (start, stop) in enumerate(_chunks(count, options.rows_per_shard)):
            shards.append(FolderShard(str(root), relative, start, stop, f"{base}-{number:05d}", options))
    if not shards:
        raise ShardReadError(f"{root}: no {'/'.join(IMAGE_SUFFIXES)} images found")
    return shards


@dataclass(frozen=True)
class FolderShard:
    root: str
    folder: str
    start: int
    stop: int
    name: str
    options: ShardOptions = ShardOptions()

    def rows(self) -> Iterator[ShardRow]:
        root = Path(self.root)
        folder = root / self.folder
        for file_name in _images_in(folder)[self.start:self.stop]:
            image = folder / file_name
            key = (image.relative_to(root)).as_posix()
            outside = _outside(image, root, self.options)
            if outside:
                yield ShardRow(key, None, None, error=outside, reason="outside_root")
                continue
            prompt = self._prompt(image, root)
            if prompt is None:
                yield ShardRow(key, None, ImageSource(str(image)), error=f"{image}: no prompt (add "
                               f"{image.with_suffix('.txt').name} or a prompt.txt)", reason="no_prompt")
                continue
            yield ShardRow(key, prompt, ImageSource(str(image)), {})

    def _prompt(self, image: Path, root: Path) -> str | None:
        candidate, folder = image.with_suffix(".txt"), image.parent
        while not candidate.is_file() and folder.is_relative_to(root):
            candidate, folder = folder / "prompt.txt", folder.parent
        if not candidate.is_file() or _outside(candidate, root, self.options):
            return None
        return candidate.read_text(encoding="utf-8").strip()


# ---- manifest ----------------------------------------------------------------------------------------------------

def _manifest_records(manifest: Path) -> Iterator[dict | None]:
    """The manifest's records, streamed (None for a line that is no JSON object)."""
    suffix = manifest.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(manifest).iter_batches(batch_size=4096):
            yield from batch.to_pylist()
    elif suffix == ".csv":
        with open(manifest, encoding="utf-8", newline="") as stream:
            yield from csv.DictReader(stream)
    elif suffix in (".jsonl", ".json"):
        with open(manifest, encoding="utf-8") as stream:
            for line in stream:
                if line.strip():
                    try:
                        record = json.loads(line)
                    except ValueError:
                        record = None
                    yield record if isinstance(record, dict) else None
    else:
        raise ShardReadError(f"{manifest}: manifests are .jsonl, .csv or .parquet")


def manifest_shards(manifest: Path, options: ShardOptions) -> list[ManifestShard]:
    if manifest.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        count = pq.ParquetFile(manifest).metadata.num_rows
    else:
        count = sum(1 for _ in _manifest_records(manifest))
    if not count:
        raise ShardReadError(f"{manifest}: the manifest is empty")
    return [ManifestShard(str(manifest), start, stop, f"{manifest.stem}-{number:05d}", options)
            for number, (start, stop) in enumerate(_chunks(count, options.rows_per_shard))]


@dataclass(frozen=True)
class ManifestShard:
    path: str
    start: int
    stop: int
    name: str
    options: ShardOptions = ShardOptions()

    def rows(self) -> Iterator[ShardRow]:
        manifest = Path(self.path)
        records = itertools.islice(_manifest_records(manifest), self.start, self.stop)
        for number, record in enumerate(records, self.start + 1):
            yield self._row(manifest, number, record or {})

    def _row(self, manifest: Path, number: int, record: dict) -> ShardRow:
        options = self.options
        image = record.get(options.image_field or "image", record.get("image_path"))
        prompt = record.get(options.prompt_field or "prompt")
        key = record.get(options.key_field) if options.key_field else record.get("key", record.get("id"))
        key = str(key if key is not None else image if isinstance(image, str) else f"{manifest.name}:{number}")
        columns = {column: record.get(column) for column in options.source_columns}
        if not isinstance(prompt, str) or not isinstance(image, str):
            return ShardRow(key, None, None, columns, f"{manifest}: row {number} needs a 'prompt' and an 'image' "
                                                      "(or 'image_path') string", "bad_manifest_row")
        path = manifest.parent / image
        outside = _outside(path, manifest.parent, options)
        if outside:
            return ShardRow(key, prompt, None, columns, f"{manifest}: row {number}: {outside}", "outside_root")
        return ShardRow(key, prompt, ImageSource(str(path)), columns)


# ---- ImageRewardDB -----------------------------------------------------------------------------------------------

def imagerewarddb_shards(root: Path, options: ShardOptions) -> list[ImageRewardDBShard]:
    import pyarrow.parquet as pq

    count = pq.ParquetFile(root / f"metadata-{options.split}.parquet").metadata.num_rows
    return [ImageRewardDBShard(str(root), start, stop, f"{options.split}-{number:05d}", options)
            for number, (start, stop) in enumerate(_chunks(count, options.rows_per_shard))]


@functools.lru_cache(maxsize=4)
def _zip_index(folder: str) -> dict[str, tuple[str, str]]:
    """file name -> (archive, member) for every file in the zip archives of ``folder``."""
    index = {}
    for archive in sorted(Path(folder).glob("*.zip")):
        with zipfile.ZipFile(archive) as opened:
            for member in opened.namelist():
                if not member.endswith("/"):
                    index[Path(member).name] = (str(archive), member)
    return index


@dataclass(frozen=True)
class ImageRewardDBShard:
    root: str
    start: int
    stop: int
    name: str
    options: ShardOptions = ShardOptions()

    def rows(self) -> Iterator[ShardRow]:
        import pyarrow.parquet as pq

        root, split = Path(self.root), self.options.split
        table = pq.read_table(root / f"metadata-{split}.parquet", columns=["prompt", "image_path"])
        table = table.slice(self.start, self.stop - self.start)
        for prompt, relative in zip(table.column("prompt").to_pylist(), table.column("image_path").to_pylist()):
            path = root / relative
            outside = _outside(path, root, self.options)
            if outside:
                yield ShardRow(relative, prompt, None, error=outside, reason="outside_root")
            elif path.is_file():
                yield ShardRow(relative, prompt, ImageSource(str(path)))
            elif Path(relative).name in (archives := _zip_index(str(root / "images" / split))):
                yield ShardRow(relative, prompt, ImageSource(*archives[Path(relative).name]))
            else:
                yield ShardRow(relative, prompt, None, error=f"{root}: image {relative} is neither on disk nor in "
                                                             f"images/{split}/*.zip", reason="missing_image")


# ---- published datasets -----------------------------------------------------------------------------------------

def is_dataset_id(name: str) -> bool:
    from imreward.data.hub_datasets import parse_dataset_id

    return parse_dataset_id(name) is not None


def dataset_shards(source: str, options: ShardOptions) -> list[RecordsShard]:
    """A published dataset's (prompt, image) rows under the evaluation policy, in shards."""
    from imreward.data.loading import load_preference_data

    records, stats = load_preference_data(source, options.split, policy="eval")
    if stats.skipped:
        print(f"{source} [{options.split}]: left out {len(stats.skipped)} prompts with missing images", file=sys.stderr)
    images = [(record.prompt, image) for record in records for image in record.images]
    root = os.path.commonpath([os.path.dirname(image.path) for _, image in images])
    rows = [ShardRow(os.path.relpath(image.path, root).replace(os.sep, "/") + (f":{image.member}" if image.member
                     else ""), prompt, image) for prompt, image in images]
    base = Path(source).name or "dataset"
    return [RecordsShard(f"{base}-{options.split}-{number:05d}", tuple(rows[start:stop]))
            for number, (start, stop) in enumerate(_chunks(len(rows), options.rows_per_shard))]


def local_dataset_shards(root: Path, options: ShardOptions) -> list[RecordsShard]:
    return dataset_shards(str(root), options)


@dataclass(frozen=True)
class RecordsShard:
    """Rows already in memory (the published datasets, read whole by their readers)."""

    name: str
    held_rows: tuple[ShardRow, ...]

    def rows(self) -> Iterator[ShardRow]:
        yield from self.held_rows
