"""The original ImageReward training JSON: a list of ``{"id", "prompt", "generations", "ranking"}``
where ``ranking[i]`` is the rank (1 = best) of the image at path ``generations[i]``."""

from __future__ import annotations

import json
from pathlib import Path

from imreward.data.loading import DataStats, RawImage, build_records
from imreward.data.records import ImageSource, PromptRecord

REQUIRED_FIELDS = ("id", "prompt", "generations", "ranking")


def _file_size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def read_json_layout(json_file: str | Path,
                     image_root: str | Path | None = None) -> tuple[list[PromptRecord], DataStats]:
    """Records of an original-layout JSON; image paths are relative to ``image_root``
    (default: the JSON's folder) unless absolute."""
    json_file = Path(json_file)
    root = Path(image_root) if image_root is not None else json_file.parent
    entries = json.loads(json_file.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise ValueError(f"{json_file}: expected a JSON list of prompts")
    groups: dict[str, tuple[str, list[RawImage]]] = {}
    for number, entry in enumerate(entries):
        missing = [name for name in REQUIRED_FIELDS if name not in entry]
        if missing:
            raise ValueError(f"{json_file}: entry {number} lacks {', '.join(missing)}")
        if len(entry["generations"]) != len(entry["ranking"]):
            raise ValueError(f"{json_file}: entry {number} has {len(entry['generations'])} generations "
                             f"but {len(entry['ranking'])} ranks")
        images = [RawImage(ImageSource(str(root / relative)), int(rank), _file_size(root / relative))
                  for relative, rank in zip(entry["generations"], entry["ranking"])]
        key = str(entry["id"])
        if key in groups:
            raise ValueError(f"{json_file}: prompt id {key!r} appears twice")
        groups[key] = (entry["prompt"], images)
    return build_records(groups)
