"""Pick-a-Pic v2 (Kirstain et al. 2023, ``yuvalkirstain/pickapic_v2`` on the hub), read from its
parquet shards without copying an image.

Shards are ``data/{split}-{i:05d}-of-{n:05d}-{hash}.parquet`` for the splits ``train``,
``validation``, ``test``, ``validation_unique`` and ``test_unique`` (the ``_unique`` splits keep
one comparison per prompt). Each row is one comparison: ``caption`` (the prompt), ``jpg_0`` and
``jpg_1`` (the two images' encoded bytes) and ``label_0``/``label_1`` (1/0 or 0/1 for a choice,
0.5/0.5 for a tie) and ``has_label``. A row whose ``has_label`` is false carries no judgement
(its labels are 0/0): it is dropped and counted (``DataStats.unlabelled``), as PickScore's dataset
class drops unlabelled rows (``keep_only_with_label_in_non_train``). A row becomes a two-image
prompt with ranks (1, 2), (2, 1) or (1, 1) for a tie; its images are parquet cells read on demand (``ImageSource`` member ``"{row}/jpg_0"``).
"""

from __future__ import annotations

from pathlib import Path

from imreward.data.loading import DataStats, RawImage, build_records
from imreward.data.records import ImageSource, PromptRecord, parquet_member

SPLITS = ("train", "validation", "test", "validation_unique", "test_unique")
COLUMNS = ("caption", "jpg_0", "jpg_1", "label_0", "label_1")


def shard_pattern(split: str) -> str:
    """The repo path pattern of one split's shards (``test-*`` does not match ``test_unique-*``)."""
    return f"data/{split}-*.parquet"


def split_shards(path: Path, split: str) -> list[Path]:
    if path.suffix == ".parquet":
        return [path]
    return sorted(path.glob(shard_pattern(split))) or sorted(path.glob(f"{split}-*.parquet"))


def is_pickapic(path: Path) -> bool:
    import pyarrow.parquet as pq

    files = [path] if path.suffix == ".parquet" else sorted(path.glob("data/*.parquet"))[:1]
    return bool(files) and set(COLUMNS) <= set(pq.read_schema(files[0]).names)


def _ranks(label_0: float, label_1: float) -> tuple[int, int] | None:
    if label_0 == label_1:
        return (1, 1)
    if {label_0, label_1} == {0.0, 1.0}:
        return (1, 2) if label_0 > label_1 else (2, 1)
    return None


def read_pickapic(path: str | Path, split: str = "test", policy: str = "eval") -> tuple[list[PromptRecord], DataStats]:
    """Records of one split; ``path`` is the dataset folder or a single shard. A human tie stays a
    record with ranks (1, 1): it gives no training pair, and evaluation counts it or not by its
    tie rule (``imreward.eval.benchmarks``)."""
    import pyarrow.parquet as pq

    path = Path(path)
    shards = split_shards(path, split)
    if not shards:
        raise FileNotFoundError(f"{path}: no {shard_pattern(split)} shards (Pick-a-Pic splits: {', '.join(SPLITS)})")
    groups: dict[str, tuple[str, list[RawImage]]] = {}
    total_unlabelled = 0
    for shard in shards:
        names = set(pq.read_schema(shard).names)
        if missing := [column for column in COLUMNS if column not in names]:
            raise ValueError(f"{shard} lacks the Pick-a-Pic columns {', '.join(missing)}")
        labelled = "has_label" in names
        table = pq.read_table(shard, columns=["caption", "label_0", "label_1",
                                              *(["has_label"] if labelled else [])]).to_pydict()
        sizes = _byte_sizes(shard)
        unlabelled = [labelled and not table["has_label"][row] for row in range(len(table["caption"]))]
        total_unlabelled += sum(unlabelled)
        for row, (caption, label_0, label_1) in enumerate(zip(table["caption"], table["label_0"], table["label_1"])):
            if unlabelled[row]:
                continue
            ranks = _ranks(float(label_0), float(label_1))
            if ranks is None:
                raise ValueError(f"{shard} row {row}: labels must be 1/0, 0/1 or 0.5/0.5, got {label_0}/{label_1}")
            images = [RawImage(ImageSource(str(shard), parquet_member(row, column)), rank, sizes[column][row])
                      for column, rank in zip(("jpg_0", "jpg_1"), ranks)]
            groups[f"{shard.name}:{row}"] = (caption, images)
    records, stats = build_records(groups, policy, keep_ties=True)
    stats.unlabelled = total_unlabelled
    return records, stats


def _byte_sizes(shard: Path) -> dict[str, list[int | None]]:
    """Lengths of the image cells (None for null), computed by arrow without decoding images."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(shard, columns=["jpg_0", "jpg_1"])
    return {column: pc.binary_length(table[column]).to_pylist() for column in ("jpg_0", "jpg_1")}
