"""Preference records: one prompt, its images and their human ranks (1 = best), and the pairs they give.

An image lives in a file, in a member of a zip archive (the published ImageRewardDB ships its
images as ``images/{split}/{split}_{n}.zip``) or inline as bytes. ``ImageReader`` reads any of
them, opening each zip lazily once per process so DataLoader workers never share a handle.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from itertools import combinations


@dataclass(frozen=True)
class ImageSource:
    """Where one image's encoded bytes are: ``path`` alone (a file), ``path`` + ``member`` (a zip
    member) or ``data`` (inline bytes; ``path`` then only names it)."""

    path: str
    member: str | None = None
    data: bytes | None = field(default=None, repr=False)

    def describe(self) -> str:
        return f"{self.path}:{self.member}" if self.member else self.path


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


class ImageReader:
    """Reads the bytes of ``ImageSource``s; zip archives stay open per process (fork-safe)."""

    def __init__(self) -> None:
        self._archives: dict[str, zipfile.ZipFile] = {}
        self._pid = os.getpid()

    def read(self, source: ImageSource) -> bytes:
        if source.data is not None:
            return source.data
        if source.member is None:
            with open(source.path, "rb") as stream:
                return stream.read()
        return self._archive(source.path).read(source.member)

    def _archive(self, path: str) -> zipfile.ZipFile:
        if self._pid != os.getpid():  # forked into a worker: the parent's handles are not ours
            self._archives, self._pid = {}, os.getpid()
        if path not in self._archives:
            self._archives[path] = zipfile.ZipFile(path)
        return self._archives[path]

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()
