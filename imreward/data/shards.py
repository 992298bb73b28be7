"""Every input of batch scoring as a list of shards of rows, each shard read on its own and streamed.

A *shard* is a picklable description of part of an input (a tar file, a Parquet file, a slice of a
folder or manifest) whose ``rows()`` yields ``ShardRow``s one at a time, so a run holds one shard's
rows at most, whatever the input's size. A shard's ``name`` is unique in its input and names its
result file; a row's ``key`` comes from its source (WebDataset ``__key__``, an id column, a relative
path), never from its position in the input.

Inputs (``open_shards``):

- WebDataset tar shards in img2dataset's layout (``data/webdataset.py``): a folder of ``.tar``
  files, a glob (``data/*.tar``), brace notation (``data/{00000..00999}.tar``) or a list of them;
- Parquet files with an image-bytes column (``data/parquet_shards.py``), listed the same ways;
- a folder tree of images, a manifest (``.jsonl``/``.csv``/``.parquet`` with a path column), an
  ImageRewardDB folder, or a published dataset by hub id or local copy (``data/row_shards.py``).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from imreward.data.records import ImageSource

LAYOUTS = ("auto", "webdataset", "parquet", "folder", "manifest", "imagerewarddb", "dataset")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class ShardReadError(ValueError):
    """An input that cannot be read as shards (nothing matches, an unknown layout, a bad option)."""


@dataclass(frozen=True)
class ShardRow:
    """One row of a shard.

    ``image`` is where its encoded bytes are (a file, an archive member, or inline bytes), or None
    when the row has none; ``error`` then says why (and ``reason`` names the kind, for summaries).
    ``columns`` holds the source columns a run may carry into its results (``keep_columns``).
    """

    key: str
    prompt: str | None
    image: ImageSource | None
    columns: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    reason: str | None = None


class Shard(Protocol):
    name: str

    def rows(self) -> Iterator[ShardRow]: ...


@dataclass(frozen=True)
class ShardOptions:
    """How rows are read from the sources.

    Attributes:
        prompt_field: WebDataset: the member extension holding the prompt (``txt``) or ``json:KEY``;
            Parquet and manifests: the prompt column. None: each layout's default.
        image_field: WebDataset: image member extensions (``jpg,png``); Parquet: the image column;
            manifests: the path column. None: each layout's default.
        key_field: the column (or ``json:KEY``) holding each row's key; None: each layout's default.
        keep_columns: source columns to read along (``prompt`` and ``image`` are always available).
        rows_per_shard: how many rows one shard of a folder, manifest or published dataset holds.
        split: the split of an ImageRewardDB folder or published dataset.
        allow_outside_root: read files (symlinks, manifest paths) that resolve outside the
            input's folder; refused by default.
    """

    prompt_field: str | None = None
    image_field: str | None = None
    key_field: str | None = None
    keep_columns: tuple[str, ...] = ()
    rows_per_shard: int = 10_000
    split: str = "train"
    allow_outside_root: bool = False

    @property
    def source_columns(self) -> tuple[str, ...]:
        """The kept columns that come from the source (not the row's own prompt or image)."""
        return tuple(column for column in self.keep_columns if column not in ("prompt", "image", "key"))


def expand_paths(sources: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Paths named by ``sources``: each a path, a glob or brace notation (``{000..099}``, ``{a,b}``),
    in the order given (each pattern's matches sorted)."""
    from braceexpand import braceexpand

    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    paths: list[Path] = []
    for source in sources:
        for pattern in braceexpand(str(source)):
            if glob.has_magic(pattern):
                matches = sorted(glob.glob(pattern))
                if not matches:
                    raise ShardReadError(f"{pattern}: no file matches")
                paths.extend(Path(match) for match in matches)
            else:
                paths.append(Path(pattern))
    return paths


def shard_names(paths: list[Path]) -> list[str]:
    """Unique names for shard files: their stems, or their paths below the common folder when stems repeat."""
    stems = [_stem(path) for path in paths]
    if len(set(stems)) == len(stems):
        return stems
    common = Path(os.path.commonpath([str(path.resolve().parent) for path in paths]))
    return [str(path.resolve().relative_to(common).with_name(stem)).replace(os.sep, "__")
            for path, stem in zip(paths, stems)]


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".tar.gz", ".tgz", ".tar", ".parquet"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def inside_root(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether ``path``, symlinks resolved, lies in ``root``."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


def open_shards(source: str | os.PathLike | Sequence[str | os.PathLike], layout: str = "auto",
                options: ShardOptions = ShardOptions()) -> list[Shard]:
    """The shards of ``source`` (see the module doc), in a fixed order; reads no row yet.

    Raises:
        ShardReadError: nothing to read, or the layout does not fit.
    """
    from imreward.data import row_shards
    from imreward.data.parquet_shards import ParquetShard, is_image_parquet
    from imreward.data.webdataset import WebDatasetShard, is_tar

    if layout not in LAYOUTS:
        raise ShardReadError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if layout in ("auto", "dataset") and len(sources) == 1 and not Path(sources[0]).exists():
        if row_shards.is_dataset_id(str(sources[0])):
            return row_shards.dataset_shards(str(sources[0]), options)
    paths = expand_paths(sources)
    for path in paths:
        if not path.exists():
            raise ShardReadError(f"{path}: no such file or folder" +
                                 ("" if len(sources) > 1 else ", nor a known hub dataset id"))
    if layout == "auto":
        layout = detect_shard_layout(paths, options)
    if layout in ("webdataset", "parquet"):
        suffix = (lambda p: is_tar(p)) if layout == "webdataset" else (lambda p: p.suffix == ".parquet")
        files = [found for path in paths for found in (sorted(p for p in path.rglob("*") if suffix(p) and p.is_file())
                                                       if path.is_dir() else [path])]
        if not files:
            raise ShardReadError(f"{', '.join(map(str, paths))}: no {layout} shards found")
        kind = WebDatasetShard if layout == "webdataset" else ParquetShard
        if layout == "parquet":
            for file in files[:1]:
                is_image_parquet(file, options, strict=True)
        return [kind(str(file), name, options) for file, name in zip(files, shard_names(files))]
    if len(paths) != 1:
        raise ShardReadError(f"the {layout} layout takes one input, not {len(paths)}")
    readers = {"folder": row_shards.folder_shards, "manifest": row_shards.manifest_shards,
               "imagerewarddb": row_shards.imagerewarddb_shards, "dataset": row_shards.local_dataset_shards}
    return readers[layout](paths[0], options)


def detect_shard_layout(paths: list[Path], options: ShardOptions = ShardOptions()) -> str:
    """The layout of existing ``paths`` (see ``LAYOUTS``)."""
    split = options.split
    from imreward.data.hpdv2 import is_hpdv2_folder
    from imreward.data.parquet_shards import is_image_parquet
    from imreward.data.pickapic import is_pickapic
    from imreward.data.webdataset import is_tar

    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        if (folder / f"metadata-{split}.parquet").is_file():
            return "imagerewarddb"
        if is_hpdv2_folder(folder, split) or is_pickapic(folder):
            return "dataset"
    files = [file for path in paths for file in ([path] if path.is_file() else _shard_files(path))]
    if files and all(is_tar(file) for file in files):
        return "webdataset"
    if files and all(file.suffix == ".parquet" for file in files) and not any(map(is_pickapic, paths)):
        if all(path.is_dir() for path in paths) or is_image_parquet(files[0], options):
            return "parquet"
    if len(paths) == 1:
        return "manifest" if paths[0].is_file() else "folder"
    raise ShardReadError(f"{len(paths)} inputs that are not all WebDataset tars nor all Parquet shards")


def _shard_files(folder: Path) -> list[Path]:
    """The tar or Parquet files at the top of ``folder`` (empty when it holds images or other files)."""
    from imreward.data.webdataset import is_tar

    if any(folder.glob("metadata-*.parquet")):
        return []
    children = [child for child in folder.iterdir() if child.is_file() and not child.name.startswith(".")]
    shards = [child for child in children if is_tar(child) or child.suffix == ".parquet"]
    return shards if shards and not any(child.suffix.lower() in IMAGE_SUFFIXES for child in children) else []
