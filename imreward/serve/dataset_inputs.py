"""Inputs of ``imreward score-dataset``: the (prompt, image) rows to score, in a fixed order.

Four layouts:

- **folder tree**: every ``.png/.jpg/.jpeg/.webp`` under the folder (sorted paths). Its prompt is
  the sidecar ``<image stem>.txt`` next to it if present, else the nearest ``prompt.txt`` in its
  folder or a parent folder up to the root (e.g. one folder per prompt).
- **manifest**: a ``.jsonl``, ``.csv`` or ``.parquet`` file with columns ``prompt`` and ``image``
  (or ``image_path``); relative paths are relative to the manifest's folder.
- **ImageRewardDB**: a folder with ``metadata-<split>.parquet`` whose rows have ``prompt`` and
  ``image_path`` relative to the folder; images missing on disk are looked up by file name in
  the zip archives under ``images/<split>/`` (the published download).
- **published dataset**: a hub dataset id (``THUDM/ImageRewardDB``, ``ymhao/HPDv2``,
  ``yuvalkirstain/pickapic_v2``; fetched into the hub cache) or a local copy of HPD v2 or Pick-a-Pic,
  read with ``imreward.data``'s readers under the evaluation policy (a prompt with a missing image
  is left out); images inside archives are rows ``"archive::member"``, read where they lie.

Each row's ``key`` is its position in that order: the identity used to resume and to shard.
"""

from __future__ import annotations

import csv
import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from imreward.data.records import ImageReader, ImageSource

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
ZIP_MEMBER_SEPARATOR = "::"


@dataclass(frozen=True)
class ScoringRow:
    key: int
    prompt: str
    image: str  # a file path, or "archive.zip::member"


def read_rows(source: Path, layout: str = "auto", split: str = "train") -> list[ScoringRow]:
    """All rows of ``source`` in their fixed order; raises ValueError naming what is wrong."""
    if layout == "auto":
        layout = detect_layout(source, split)
    readers = {"folder": lambda: _folder_pairs(source),
               "manifest": lambda: _manifest_pairs(source),
               "imagerewarddb": lambda: _imagerewarddb_pairs(source, split),
               "dataset": lambda: _published_pairs(source, split)}
    return [ScoringRow(key, prompt, image) for key, (prompt, image) in enumerate(readers[layout]())]


def detect_layout(source: Path, split: str) -> str:
    from imreward.data.hpdv2 import is_hpdv2_folder
    from imreward.data.hub_datasets import parse_dataset_id
    from imreward.data.pickapic import is_pickapic

    if source.is_file():
        return "manifest"
    if (source / f"metadata-{split}.parquet").is_file():
        return "imagerewarddb"
    if source.is_dir():
        return "dataset" if is_hpdv2_folder(source, split) or is_pickapic(source) else "folder"
    if parse_dataset_id(str(source)) is not None:
        return "dataset"
    raise ValueError(f"{source}: no such file or folder, nor a known hub dataset id")


def _folder_pairs(root: Path) -> list[tuple[str, str]]:
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise ValueError(f"{root}: no {'/'.join(IMAGE_SUFFIXES)} images found")
    pairs = []
    for image in images:
        prompt_file = image.with_suffix(".txt")
        folder = image.parent
        while not prompt_file.is_file() and folder.is_relative_to(root):
            prompt_file, folder = folder / "prompt.txt", folder.parent
        if not prompt_file.is_file():
            raise ValueError(f"{image}: no prompt (add {image.with_suffix('.txt').name} or a prompt.txt)")
        pairs.append((prompt_file.read_text(encoding="utf-8").strip(), str(image)))
    return pairs


def _manifest_pairs(manifest: Path) -> list[tuple[str, str]]:
    suffix = manifest.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        records = pq.read_table(manifest).to_pylist()
    elif suffix == ".csv":
        with open(manifest, encoding="utf-8", newline="") as stream:
            records = list(csv.DictReader(stream))
    elif suffix in (".jsonl", ".json"):
        with open(manifest, encoding="utf-8") as stream:
            records = [json.loads(line) for line in stream if line.strip()]
    else:
        raise ValueError(f"{manifest}: manifests are .jsonl, .csv or .parquet")
    pairs = []
    for number, record in enumerate(records, 1):
        image = record.get("image", record.get("image_path"))
        if not isinstance(record.get("prompt"), str) or not isinstance(image, str):
            raise ValueError(f"{manifest}: row {number} needs a 'prompt' and an 'image' (or 'image_path') string")
        pairs.append((record["prompt"], str(manifest.parent / image)))
    return pairs


def _imagerewarddb_pairs(root: Path, split: str) -> list[tuple[str, str]]:
    import pyarrow.parquet as pq

    table = pq.read_table(root / f"metadata-{split}.parquet", columns=["prompt", "image_path"])
    archives: dict[str, str] | None = None
    pairs = []
    for prompt, relative in zip(table.column("prompt").to_pylist(), table.column("image_path").to_pylist()):
        path = root / relative
        if not path.is_file():
            archives = archives if archives is not None else _zip_index(root / "images" / split)
            if Path(relative).name not in archives:
                raise ValueError(f"{root}: image {relative} is neither on disk nor in images/{split}/*.zip")
            path = archives[Path(relative).name]
        pairs.append((prompt, str(path)))
    return pairs


def _zip_index(folder: Path) -> dict[str, str]:
    """file name -> "archive::member" for every file in the zip archives of ``folder``."""
    index = {}
    for archive in sorted(folder.glob("*.zip")):
        with zipfile.ZipFile(archive) as opened:
            for member in opened.namelist():
                if not member.endswith("/"):
                    index[Path(member).name] = f"{archive}{ZIP_MEMBER_SEPARATOR}{member}"
    return index


def _published_pairs(source: Path, split: str) -> list[tuple[str, str]]:
    from imreward.data.loading import load_preference_data

    records, stats = load_preference_data(str(source), split, policy="eval")
    if stats.skipped:
        print(f"{source} [{split}]: left out {len(stats.skipped)} prompts with missing images", file=sys.stderr)
    return [(record.prompt, image.path if image.member is None else
             f"{image.path}{ZIP_MEMBER_SEPARATOR}{image.member}") for record in records for image in record.images]


_READER = ImageReader()  # archives stay open per process, reopened after a fork


def image_source(image: str) -> str | bytes:
    """What ``imreward.load_image`` reads for a row's image: the path, or the bytes of an archive
    member (zip, tar or parquet cell)."""
    archive, separator, member = image.partition(ZIP_MEMBER_SEPARATOR)
    if not separator:
        return image
    return _READER.read(ImageSource(archive, member))
