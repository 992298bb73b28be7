"""Turn rows of (prompt, image, rank) into ``PromptRecord``s, dropping what cannot train, and pick
the reader for a DATA argument (an ImageRewardDB folder or parquet file, or an original-layout JSON)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from imreward.data.records import ImageSource, PromptRecord, ranked_pairs

logger = logging.getLogger("imreward.data")


@dataclass
class DataStats:
    """What a reader kept and skipped."""

    prompts: int = 0
    images: int = 0
    pairs: int = 0
    missing_images: int = 0
    empty_images: int = 0
    prompts_without_pairs: int = 0

    def describe(self, name: str) -> str:
        return (f"{name}: {self.prompts} prompts, {self.images} images, {self.pairs} pairs; skipped "
                f"{self.empty_images} zero-byte and {self.missing_images} missing images, "
                f"{self.prompts_without_pairs} prompts without a ranked pair")


@dataclass
class RawImage:
    """One image row before filtering: its source, rank and size in bytes (None = not found)."""

    source: ImageSource
    rank: int
    size: int | None


def build_records(groups: dict[str, tuple[str, list[RawImage]]]) -> tuple[list[PromptRecord], DataStats]:
    """Records from ``{prompt_id: (prompt, images)}``, without missing or zero-byte images and
    without prompts left with no pair of different ranks."""
    stats = DataStats()
    records = []
    for prompt_id, (prompt, images) in groups.items():
        usable = []
        for image in images:
            if image.size is None:
                stats.missing_images += 1
            elif image.size == 0:
                stats.empty_images += 1
            else:
                usable.append(image)
        ranks = tuple(image.rank for image in usable)
        pairs = ranked_pairs(ranks)
        if not pairs:
            stats.prompts_without_pairs += 1
            continue
        records.append(PromptRecord(str(prompt_id), prompt, tuple(image.source for image in usable), ranks))
        stats.prompts += 1
        stats.images += len(usable)
        stats.pairs += len(pairs)
    return records, stats


def load_preference_data(path: str | Path, split: str = "train",
                         image_root: str | Path | None = None) -> tuple[list[PromptRecord], DataStats]:
    """Read a DATA argument.

    Args:
        path: an ImageRewardDB folder (reads ``metadata-{split}.parquet``), a ``.parquet`` file, or
            a JSON file in the original layout.
        split: which metadata file to read from a folder.
        image_root: for JSON, the folder image paths are relative to (default: the JSON's folder).
    Raises:
        FileNotFoundError: no such data; ValueError: malformed data or no usable pair.
    """
    from imreward.data.imagerewarddb import read_imagerewarddb
    from imreward.data.json_layout import read_json_layout

    path = Path(path)
    if path.suffix == ".json":
        records, stats = read_json_layout(path, image_root)
    elif path.is_dir() or path.suffix == ".parquet":
        records, stats = read_imagerewarddb(path, split)
    else:
        raise FileNotFoundError(f"{path}: expected an ImageRewardDB folder, a metadata .parquet or a .json file")
    logger.info(stats.describe(f"{path} [{split}]"))
    if not records:
        raise ValueError(f"{path} [{split}] holds no prompt with two differently ranked usable images "
                         f"({stats.describe('data')})")
    return records, stats
