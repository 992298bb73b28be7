"""Turn rows of (prompt, image, rank) into ``PromptRecord``s under a policy for missing images, and
pick the reader for a DATA argument: a hub dataset id (``imreward.data.hub_datasets``), or a local
copy of a published layout (ImageRewardDB, HPD v2 test, Pick-a-Pic v2) or of the original JSON.

The two policies:

- ``"train"``: a missing or zero-byte image is dropped and its prompt kept while it still has a
  pair of differently ranked images.
- ``"eval"``: a prompt with any missing or zero-byte image is skipped whole (and listed in
  ``DataStats.skipped``), so every scorer is compared on complete prompts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imreward.data.records import ImageSource, PromptRecord, ranked_pairs

logger = logging.getLogger("imreward.data")

POLICIES = ("train", "eval")


@dataclass
class DataStats:
    """What a reader kept and skipped."""

    prompts: int = 0
    images: int = 0
    pairs: int = 0
    missing_images: int = 0
    empty_images: int = 0
    prompts_without_pairs: int = 0
    unlabelled: int = 0  # rows the dataset publishes without a human judgement (Pick-a-Pic's has_label false)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # eval policy: one entry per skipped prompt

    def describe(self, name: str) -> str:
        return (f"{name}: {self.prompts} prompts, {self.images} images, {self.pairs} pairs; skipped "
                f"{self.empty_images} zero-byte and {self.missing_images} missing images, "
                f"{self.prompts_without_pairs} prompts without a ranked pair"
                + (f", {self.unlabelled} unlabelled rows" if self.unlabelled else ""))


@dataclass
class RawImage:
    """One image row before filtering: its source, rank and size in bytes (None = not found)."""

    source: ImageSource
    rank: int
    size: int | None


def build_records(groups: dict[str, tuple[str, list[RawImage]]], policy: str = "train",
                  keep_ties: bool = False) -> tuple[list[PromptRecord], DataStats]:
    """Records from ``{prompt_id: (prompt, images)}`` under ``policy`` (see the module doc);
    prompts left without a pair of different ranks are dropped, unless ``keep_ties`` keeps those
    with two or more images all ranked equal (a tie rule may count them)."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    stats = DataStats()
    records = []
    for prompt_id, (prompt, images) in groups.items():
        usable, unusable = [], []
        for image in images:
            if image.size is None:
                stats.missing_images += 1
            elif image.size == 0:
                stats.empty_images += 1
            else:
                usable.append(image)
                continue
            unusable.append(image)
        if unusable and policy == "eval":
            stats.skipped.append({"id": str(prompt_id), "prompt": prompt, "reason": "missing image",
                                  "images": [image.source.describe() for image in unusable]})
            continue
        ranks = tuple(image.rank for image in usable)
        pairs = ranked_pairs(ranks)
        if not pairs and not (keep_ties and len(usable) >= 2):
            stats.prompts_without_pairs += 1
            continue
        records.append(PromptRecord(str(prompt_id), prompt, tuple(image.source for image in usable), ranks))
        stats.prompts += 1
        stats.images += len(usable)
        stats.pairs += len(pairs)
    return records, stats


def detect_layout(path: Path, split: str) -> str:
    """"imagerewarddb", "json", "hpdv2" or "pickapic" for a local file or folder."""
    from imreward.data.hpdv2 import is_hpdv2_folder
    from imreward.data.pickapic import is_pickapic

    if path.suffix == ".parquet":
        return "pickapic" if is_pickapic(path) else "imagerewarddb"
    if path.suffix in (".json", ".jsonl"):
        return "json"
    if path.is_dir():
        if any(path.glob("metadata-*.parquet")):
            return "imagerewarddb"
        if is_pickapic(path):
            return "pickapic"
        if is_hpdv2_folder(path, split):
            return "hpdv2"
    raise FileNotFoundError(f"{path}: expected a hub dataset id ({', '.join(known_dataset_ids())}), an "
                            f"ImageRewardDB folder (metadata-{split}.parquet), an HPD v2 folder ({split}.json), "
                            f"a Pick-a-Pic folder (data/{split}-*.parquet), a .parquet file or a .json file")


def known_dataset_ids() -> list[str]:
    from imreward.data.hub_datasets import HUB_DATASETS

    return list(HUB_DATASETS)


def load_preference_data(path: str | Path, split: str = "train", image_root: str | Path | None = None,
                         policy: str = "train", download: bool = True) -> tuple[list[PromptRecord], DataStats]:
    """Read a DATA argument.

    Args:
        path: a hub dataset id (``THUDM/ImageRewardDB``, ``THUDM/ImageRewardDB:1k``, ``ymhao/HPDv2``,
            ``yuvalkirstain/pickapic_v2``; fetched into the hub cache), or a local copy of one of those
            layouts, a metadata ``.parquet``/``.json``/``.jsonl`` file or a JSON file in the original layout.
        split: which split to read (``train``, ``validation``, ``test``; Pick-a-Pic also ``test_unique``...).
        image_root: for JSON, the folder image paths are relative to (default: the JSON's folder).
        policy: ``"train"`` or ``"eval"`` (see the module doc).
        download: for a hub id, fetch missing files (else the cache must hold them).
    Raises:
        FileNotFoundError: no such data; ValueError: malformed data or no usable pair.
    """
    from imreward.data.hpdv2 import read_hpdv2
    from imreward.data.hub_datasets import fetch_dataset, parse_dataset_id
    from imreward.data.imagerewarddb import read_imagerewarddb
    from imreward.data.json_layout import read_json_layout
    from imreward.data.pickapic import read_pickapic

    name = str(path)
    subset = None
    hub = parse_dataset_id(name) if not Path(name).exists() else None
    if hub is not None:
        path, layout, subset = fetch_dataset(hub, split), hub.layout, hub.subset
    else:
        path = Path(path)
        layout = detect_layout(path, split)
    if layout == "imagerewarddb":
        records, stats = read_imagerewarddb(path, split, policy=policy, image_root=image_root, subset=subset)
    elif layout == "hpdv2":
        records, stats = read_hpdv2(path, split, policy=policy)
    elif layout == "pickapic":
        records, stats = read_pickapic(path, split, policy=policy)
    else:
        records, stats = read_json_layout(path, image_root, policy=policy)
    logger.info(stats.describe(f"{name} [{split}]"))
    if not records:
        raise ValueError(f"{name} [{split}] holds no prompt with two differently ranked usable images "
                         f"({stats.describe('data')})")
    return records, stats
