"""Readers for human-ranked evaluation data, in the two published layouts.

- test-set layout (``test.json`` of the original project): a JSON list of
  ``{"id", "prompt", "generations": [paths], "ranking": [ranks]}``, 1 = best, ties equal.
- ImageRewardDB layout: one row per image with ``prompt_id``, ``prompt``, ``image_path`` and
  ``rank`` (and other columns, ignored), as JSON list, JSON lines or Parquet.

Image paths are relative to an image root given separately.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAYOUTS = ("auto", "test", "imagerewarddb")


@dataclass(frozen=True)
class RankedPrompt:
    """One prompt, its generated images (resolved paths) and their human ranks (1 = best)."""

    id: str
    prompt: str
    images: tuple[Path, ...]
    ranking: tuple[int, ...]


def _ranked_prompt(id: Any, prompt: Any, images: list, ranking: list, root: Path, where: str) -> RankedPrompt:
    if not isinstance(prompt, str):
        raise ValueError(f"{where}: 'prompt' must be a string")
    if len(images) != len(ranking) or not images:
        raise ValueError(f"{where}: {len(images)} images but {len(ranking)} ranks")
    if not all(isinstance(rank, int) and rank >= 1 for rank in ranking):
        raise ValueError(f"{where}: ranks must be integers >= 1, got {ranking}")
    return RankedPrompt(str(id), prompt, tuple(root / str(image) for image in images), tuple(ranking))


def read_test_layout(records: list[dict], image_root: str | os.PathLike, source: str = "data") -> list[RankedPrompt]:
    root = Path(image_root)
    prompts = []
    for index, record in enumerate(records):
        where = f"{source} entry {index}"
        try:
            prompts.append(_ranked_prompt(record["id"], record["prompt"], list(record["generations"]),
                                          list(record["ranking"]), root, where))
        except (KeyError, TypeError) as error:
            raise ValueError(f"{where}: expected 'id', 'prompt', 'generations' and 'ranking' ({error!r})") from error
    return prompts


def read_imagerewarddb_layout(rows: list[dict], image_root: str | os.PathLike,
                              source: str = "data") -> list[RankedPrompt]:
    """Group per-image rows by ``prompt_id``, in order of first appearance."""
    grouped: dict[str, dict[str, Any]] = {}
    for index, row in enumerate(rows):
        try:
            group = grouped.setdefault(str(row["prompt_id"]), {"prompt": row["prompt"], "images": [], "ranks": []})
            group["images"].append(row["image_path"])
            group["ranks"].append(int(row["rank"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{source} row {index}: expected 'prompt_id', 'prompt', 'image_path' and an "
                             f"integer 'rank' ({error!r})") from error
    root = Path(image_root)
    return [_ranked_prompt(prompt_id, group["prompt"], group["images"], group["ranks"], root,
                           f"{source} prompt_id {prompt_id}") for prompt_id, group in grouped.items()]


def _read_records(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    records = json.loads(text)
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of records")
    return records


def detect_layout(records: list[dict]) -> str:
    first = records[0] if records else {}
    if isinstance(first, dict) and "generations" in first:
        return "test"
    if isinstance(first, dict) and "prompt_id" in first:
        return "imagerewarddb"
    raise ValueError("unknown data layout: expected records with 'generations' (test.json) or 'prompt_id' "
                     "(ImageRewardDB)")


def read_ranked_prompts(path: str | os.PathLike, image_root: str | os.PathLike,
                        layout: str = "auto") -> list[RankedPrompt]:
    """Read a ranked evaluation set (``.json``, ``.jsonl`` or ``.parquet``) in either layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    path = Path(path)
    records = _read_records(path)
    layout = detect_layout(records) if layout == "auto" else layout
    reader = read_test_layout if layout == "test" else read_imagerewarddb_layout
    return reader(records, image_root, str(path))
