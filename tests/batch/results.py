"""Reading and comparing the per-shard results of the batch-scoring tests."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from imreward.data.shards import ShardOptions

SHARDS = ["00000", "00001", "00002"]
READING = ShardOptions(keep_columns=("prompt", "url"))


def shard_rows(folder: Path) -> dict[str, list[dict]]:
    return {name: pq.read_table(folder / f"{name}.parquet").to_pylist() for name in SHARDS}


def assert_same_rows(found: dict[str, list[dict]], expected: dict[str, list[dict]], same_errors: bool = True) -> None:
    """Equal row for row: keys, errors (or only where they are, when the layouts word them differently)
    and scores within 1e-6 (batches of other sizes round differently)."""
    assert list(found) == list(expected)
    for name in expected:
        rows, wanted = found[name], expected[name]
        assert [row["key"] for row in rows] == [row["key"] for row in wanted]
        if same_errors:
            assert [row["error"] for row in rows] == [row["error"] for row in wanted]
        else:
            assert [row["error"] is None for row in rows] == [row["error"] is None for row in wanted]
        assert [row["score"] for row in rows] == pytest.approx([row["score"] for row in wanted], abs=1e-6)
