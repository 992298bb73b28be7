"""A persistent score cache, so re-runs and added scorers only compute what is new.

A score is keyed by (scorer, resolved image path, file size, modification time in ns, prompt): an
image rewritten in place gets scored again. The scorer is its spec plus what makes its numbers
(``ScoreCache.scorer_key``): the SHA-256 of its local weight files (or a judge's ``kind:FILE``; a
checkpoint folder retrained in place gets new scores; each file's digest is kept by path, size, inode and times, so an
unchanged file is hashed once), the dtype, the registry entry of a registered name (its hub
repo, revision and preprocessing) and ``CACHE_VERSION`` with the package version. An image inside an archive (zip, tar,
parquet shard) is keyed by ``archive::member`` with the archive's size and time; inline bytes by
their SHA-256. Stored in SQLite (Python's own sqlite3:
one file, safe to reuse across runs, no server).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from imreward.data.records import ImageSource

ImageKey = tuple[str, int, int]
CACHE_VERSION = 2  # bump when scoring code changes the numbers the same weights give
HASH_CHUNK = 16 * 2**20


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


def weight_sources(spec: str) -> tuple[Path, list[Path], str]:
    """The local file or folder a scorer spec's weights come from, its files ([] for a hub model or
    a factory), and a description of the rest of its identity (its registry entry)."""
    from imreward import hub

    candidates = [Path(spec), Path(spec.partition("=")[2]), Path(spec.partition(":")[2])]  # NAME=PATH, kind:FILE
    path = next((candidate for candidate in candidates if str(candidate) != "." and candidate.exists()), Path(spec))
    registered = hub._MODELS.get(spec)
    if not path.exists() and isinstance(registered, Path):
        path = registered
    described = repr(registered) if registered is not None else repr(getattr(hub._SCORERS.get(spec), "source", None))
    if path.is_file():
        return path.parent, [path], described
    if path.is_dir():
        return path, sorted(item for item in path.rglob("*") if item.is_file()), described
    return path, [], described


class ScoreCache:
    """Scores by (scorer, image, prompt). ``hits`` and ``misses`` count lookups since opening.

    Args:
        dtype: the scorers' weights dtype of this run (part of each scorer's key; None: theirs).
    """

    def __init__(self, path: str | os.PathLike, dtype: str | None = None) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(path)
        if dtype == "auto":  # what auto picks differs between CPUs: a cache shared by two machines tells them apart
            from imreward.precision import auto_cpu_dtype, cpu_flags

            dtype = f"auto ({auto_cpu_dtype(cpu_flags())[0]} on the CPU)"
        self.dtype = dtype
        self.connection = sqlite3.connect(os.fspath(path))
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS scores (scorer TEXT, image TEXT, size INTEGER, mtime_ns INTEGER, "
            "prompt TEXT, score REAL, PRIMARY KEY (scorer, image, size, mtime_ns, prompt))")
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS file_digests (path TEXT PRIMARY KEY, stat TEXT, sha256 TEXT)")
        self.hits = 0
        self.misses = 0
        self._scorer_keys: dict[str, str] = {}

    def scorer_key(self, spec: str) -> str:
        """``spec`` plus a digest of its weights' content, the dtype, its registry entry and the
        code version: the scorer column of its scores."""
        if spec not in self._scorer_keys:
            from imreward import __version__

            root, files, described = weight_sources(spec)
            identity = {"weights": [[os.fspath(file.relative_to(root)), self.file_digest(file)] for file in files],
                        "registry": described, "dtype": self.dtype or "default", "imreward": __version__,
                        "cache": CACHE_VERSION}
            digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
            self._scorer_keys[spec] = f"{spec}#{digest}"
        return self._scorer_keys[spec]

    def file_digest(self, path: Path) -> str:
        """SHA-256 of a file, hashed again only when its size, inode or times change."""
        resolved = path.resolve()
        info = resolved.stat()
        stat = f"{info.st_size}:{info.st_ino}:{info.st_mtime_ns}:{info.st_ctime_ns}"
        row = self.connection.execute("SELECT stat, sha256 FROM file_digests WHERE path=?",
                                      (os.fspath(resolved),)).fetchone()
        if row is not None and row[0] == stat:
            return row[1]
        digest = hashlib.sha256()
        with open(resolved, "rb") as stream:
            while chunk := stream.read(HASH_CHUNK):
                digest.update(chunk)
        with self.connection:
            self.connection.execute("INSERT OR REPLACE INTO file_digests VALUES (?, ?, ?)",
                                    (os.fspath(resolved), stat, digest.hexdigest()))
        return digest.hexdigest()

    def lookup(self, scorer: str, images: Sequence,
               prompts: Sequence[str]) -> list[float | None]:
        """Cached score per (image, prompt) pair, ``None`` where there is none."""
        found: list[float | None] = []
        scorer = self.scorer_key(scorer)
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
        scorer = self.scorer_key(scorer)
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
