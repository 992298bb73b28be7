"""The original ImageReward training JSON: a list of ``{"id", "prompt", "generations", "ranking"}``
where ``ranking[i]`` is the rank (1 = best) of the image at path ``generations[i]`` (the original
project's ``test.json`` has this layout). A JSON file of ImageRewardDB rows (``prompt_id``,
``prompt``, ``image_path``, ``rank``) goes to that reader instead."""

from __future__ import annotations

import json
from pathlib import Path

from imreward.data.loading import DataStats, RawImage, build_records
from imreward.data.records import ImageSource, PromptRecord

REQUIRED_FIELDS = ("id", "prompt", "generations", "ranking")


def _file_size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def read_json_layout(json_file: str | Path, image_root: str | Path | None = None,
                     policy: str = "train") -> tuple[list[PromptRecord], DataStats]:
    """Records of an original-layout JSON under ``policy`` (``imreward.data.loading``); image
    paths are relative to ``image_root`` (default: the JSON's folder) unless absolute."""
    from imreward.data.imagerewarddb import read_imagerewarddb

    json_file = Path(json_file)
    root = Path(image_root) if image_root is not None else json_file.parent
    if json_file.suffix == ".jsonl":
        return read_imagerewarddb(json_file, policy=policy, image_root=root)
    entries = json.loads(json_file.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise ValueError(f"{json_file}: expected a JSON list of prompts")
    if entries and isinstance(entries[0], dict) and "prompt_id" in entries[0]:
        return read_imagerewarddb(json_file, policy=policy, image_root=root)
    groups: dict[str, tuple[str, list[RawImage]]] = {}
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"{json_file}: entry {number} is not an object")
        missing = [name for name in REQUIRED_FIELDS if name not in entry]
        if missing:
            raise ValueError(f"{json_file}: entry {number} lacks {', '.join(missing)}")
        if len(entry["generations"]) != len(entry["ranking"]):
            raise ValueError(f"{json_file}: entry {number}: {len(entry['generations'])} generations "
                             f"but {len(entry['ranking'])} ranks")
        if not all(isinstance(rank, int) and rank >= 1 for rank in entry["ranking"]):
            raise ValueError(f"{json_file}: entry {number}: ranks must be integers >= 1, got {entry['ranking']}")
        images = [RawImage(ImageSource(str(root / relative)), int(rank), _file_size(root / relative))
                  for relative, rank in zip(entry["generations"], entry["ranking"])]
        key = str(entry["id"])
        if key in groups:
            raise ValueError(f"{json_file}: prompt id {key!r} appears twice")
        groups[key] = (entry["prompt"], images)
    return build_records(groups, policy)
