"""Preference records: one prompt, its images and their human ranks (lower = better, equal =
tie), and the pairs they give.

An image lives in a file, in a member of an archive, or inline as bytes. Archives are read where
they lie, never unpacked: a zip member (ImageRewardDB ships ``images/{split}/{split}_{n}.zip``),
a cell of a parquet shard (Pick-a-Pic's ``jpg_0``/``jpg_1`` columns; member ``"{row}/{column}"``)
or a member of a ``.tar.gz`` (HPD v2's ``test.tar.gz``, which gzip cannot seek in, so it is read
once per process into a name -> bytes table). ``ImageReader`` opens each archive lazily once
per process, so DataLoader workers never share a handle.
"""

from __future__ import annotations

import bisect
import itertools
import os
import tarfile
import zipfile
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any


@dataclass(frozen=True)
class ImageSource:
    """Where one image's encoded bytes are: ``path`` alone (a file), ``path`` + ``member`` (a zip
    member) or ``data`` (inline bytes; ``path`` then only names it)."""

    path: str
    member: str | None = None
    data: bytes | None = field(default=None, repr=False)

    def describe(self) -> str:
        return f"{self.path}:{self.member}" if self.member else self.path

    @property
    def archive_kind(self) -> str | None:
        """"zip", "parquet" or "tar" for an archive member, None for a file or inline bytes."""
        if self.member is None or self.data is not None:
            return None
        if self.path.endswith(".parquet"):
            return "parquet"
        if self.path.endswith((".tar.gz", ".tgz", ".tar")):
            return "tar"
        return "zip"


@dataclass(frozen=True)
class PromptRecord:
    """One prompt with k ranked images. ``ranks[i]`` is the rank of ``images[i]``; lower is better."""

    prompt_id: str
    prompt: str
    images: tuple[ImageSource, ...]
    ranks: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.images) != len(self.ranks):
            raise ValueError(f"prompt {self.prompt_id!r}: {len(self.images)} images but {len(self.ranks)} ranks")

    @property
    def pairs(self) -> list[tuple[int, int]]:
        return ranked_pairs(self.ranks)


def ranked_pairs(ranks: list[int] | tuple[int, ...]) -> list[tuple[int, int]]:
    """Every (better, worse) pair of image indices whose ranks differ; ties give no pair.

    >>> ranked_pairs([2, 1, 2])
    [(1, 0), (1, 2)]
    """
    pairs = []
    for first, second in combinations(range(len(ranks)), 2):
        if ranks[first] < ranks[second]:
            pairs.append((first, second))
        elif ranks[second] < ranks[first]:
            pairs.append((second, first))
    return pairs


def keep_images(record: PromptRecord, keep: list[int]) -> PromptRecord:
    """The record restricted to the images at indices ``keep`` (in that order)."""
    return PromptRecord(record.prompt_id, record.prompt, tuple(record.images[i] for i in keep),
                        tuple(record.ranks[i] for i in keep))


def parquet_member(row: int, column: str) -> str:
    """The ``member`` naming one binary cell of a parquet shard."""
    return f"{row}/{column}"


class ImageReader:
    """Reads the bytes of ``ImageSource``s; archives stay open per process (fork-safe)."""

    def __init__(self) -> None:
        self._archives: dict[str, zipfile.ZipFile] = {}
        self._tars: dict[str, dict[str, bytes]] = {}
        self._parquet_group: tuple[str, int, dict[str, list]] | None = None
        self._parquet_shards: dict[str, tuple[Any, list[int]]] = {}  # path -> (ParquetFile, row group starts)
        self._pid = os.getpid()

    def read(self, source: ImageSource) -> bytes:
        if source.data is not None:
            return source.data
        if source.member is None:
            with open(source.path, "rb") as stream:
                return stream.read()
        self._check_process()
        kind = source.archive_kind
        if kind == "parquet":
            row, column = source.member.rsplit("/", 1)
            return self._parquet_cell(source.path, int(row), column)
        if kind == "tar":
            members = self._tar(source.path)
            if source.member not in members:
                raise KeyError(f"{source.member} is not in {source.path}")
            return members[source.member]
        if source.path not in self._archives:
            self._archives[source.path] = zipfile.ZipFile(source.path)
        return self._archives[source.path].read(source.member)

    def _check_process(self) -> None:
        if self._pid != os.getpid():  # forked into a worker: the parent's handles are not ours
            self.__init__()

    def _tar(self, path: str) -> dict[str, bytes]:
        if path not in self._tars:
            with tarfile.open(path) as archive:
                self._tars[path] = {member.name: archive.extractfile(member).read()
                                    for member in archive if member.isfile()}
        return self._tars[path]

    def _parquet_shard(self, path: str) -> tuple[Any, list[int]]:
        """The open shard and the first row of each of its row groups (plus the row count at the end)."""
        if path not in self._parquet_shards:
            import pyarrow.parquet as pq

            shard = pq.ParquetFile(path)
            sizes = [shard.metadata.row_group(group).num_rows for group in range(shard.metadata.num_row_groups)]
            self._parquet_shards[path] = shard, [0, *itertools.accumulate(sizes)]
        return self._parquet_shards[path]

    def _parquet_cell(self, path: str, row: int, column: str) -> bytes:
        """One cell, decoding (and keeping) only the row group that holds it: sequential reads
        decode each row group once."""
        shard, starts = self._parquet_shard(path)
        if row >= starts[-1]:
            raise KeyError(f"row {row} is beyond the {starts[-1]} rows of {path}")
        group = bisect.bisect_right(starts, row) - 1
        first = starts[group]
        cached = self._parquet_group
        if cached is None or cached[:2] != (path, group) or column not in cached[2]:
            columns = sorted({column, *(cached[2] if cached and cached[:2] == (path, group) else ())})
            cached = (path, group, shard.read_row_group(group, columns=columns).to_pydict())
            self._parquet_group = cached
        value = cached[2][column][row - first]
        if isinstance(value, dict):  # the datasets Image feature: {"bytes", "path"}
            value = value.get("bytes")
        if not value:
            raise ValueError(f"{path} row {row}: no bytes in column {column!r}")
        return bytes(value)

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()
