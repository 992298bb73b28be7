"""A persistent score cache, so re-runs and added scorers only compute what is new.

A score is keyed by (scorer name, resolved image path, file size, modification time in ns,
prompt): an image rewritten in place gets scored again. An image inside an archive (zip, tar,
parquet shard) is keyed by ``archive::member`` with the archive's size and time; inline bytes by
their SHA-256. Stored in SQLite (Python's own sqlite3:
one file, safe to reuse across runs, no server).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from imreward.data.records import ImageSource

ImageKey = tuple[str, int, int]


def image_key(path: str | os.PathLike | ImageSource) -> ImageKey:
    """(resolved path, size in bytes, mtime in ns) of an existing file, or of the archive holding
    an ``ImageSource`` member; (sha256, size, 0) of inline bytes."""
    if isinstance(path, ImageSource):
        if path.data is not None:
            return f"sha256:{hashlib.sha256(path.data).hexdigest()}", len(path.data), 0
        if path.member is not None:
            archive, size, mtime_ns = image_key(path.path)
            return f"{archive}::{path.member}", size, mtime_ns
        path = path.path
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return str(resolved), stat.st_size, stat.st_mtime_ns


class ScoreCache:
    """Scores by (scorer, image, prompt). ``hits`` and ``misses`` count lookups since opening."""

    def __init__(self, path: str | os.PathLike) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(path)
        self.connection = sqlite3.connect(os.fspath(path))
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS scores (scorer TEXT, image TEXT, size INTEGER, mtime_ns INTEGER, "
            "prompt TEXT, score REAL, PRIMARY KEY (scorer, image, size, mtime_ns, prompt))")
        self.hits = 0
        self.misses = 0

    def lookup(self, scorer: str, images: Sequence,
               prompts: Sequence[str]) -> list[float | None]:
        """Cached score per (image, prompt) pair, ``None`` where there is none."""
        found: list[float | None] = []
        for image, prompt in zip(images, prompts, strict=True):
            path, size, mtime_ns = image_key(image)
            row = self.connection.execute(
                "SELECT score FROM scores WHERE scorer=? AND image=? AND size=? AND mtime_ns=? AND prompt=?",
                (scorer, path, size, mtime_ns, prompt)).fetchone()
            found.append(None if row is None else row[0])
        self.hits += sum(score is not None for score in found)
        self.misses += sum(score is None for score in found)
        return found

    def store(self, scorer: str, images: Sequence, prompts: Sequence[str],
              scores: Sequence[float]) -> None:
        rows = [(scorer, *image_key(image), prompt, float(score))
                for image, prompt, score in zip(images, prompts, scores, strict=True)]
        with self.connection:
            self.connection.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?)", rows)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> "ScoreCache":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
