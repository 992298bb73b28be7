"""Tiny copies of the published preference datasets, written in their exact layouts and schemas,
with gray images whose brightness follows the human preference (brighter = preferred), and a
fake offline hub cache holding them.

- ImageRewardDB: ``metadata-{split}.parquet`` (image_path, prompt_id, prompt, classification,
  image_amount_in_total, rank, overall_rating, image_text_alignment_rating, fidelity_rating;
  strings and int64 as on the hub) + ``images/{split}/{split}_{n}.zip`` whose members are
  ``{split}_{n}/{uuid}.webp`` for the row ``images/{split}/{split}_{n}/{uuid}.webp``.
- HPD v2: ``test.json`` ([{"prompt", "image_path": [...], "rank": [...], "raw_annotations", "user_hash"}])
  + ``test.tar.gz`` with members ``test/{name}``.
- Pick-a-Pic v2: ``data/{split}-00000-of-00001-{hash}.parquet`` with caption (string), jpg_0/jpg_1
  (binary), label_0/label_1 (float64; 0.5/0.5 is a tie) and the other published columns.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def gray_image(level: int, fmt: str = "PNG", size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), level, dtype=np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def write_imagerewarddb(root: Path, split: str = "test", prompts: int = 4, per_zip: int = 2,
                        tie_in_first: bool = True, archive_sizes: tuple[int, ...] | None = None) -> Path:
    """Prompts of 3 images each (ranks 1 best); the first prompt has a tie when ``tie_in_first``.
    ``per_zip`` prompts go in each ``{split}_{n}.zip``, or ``archive_sizes[n - 1]`` when given."""
    if archive_sizes is not None:
        numbers = [n + 1 for n, size in enumerate(archive_sizes) for _ in range(size)]
        prompts = len(numbers)
    else:
        numbers = [index // per_zip + 1 for index in range(prompts)]
    rows, archives = [], {}
    for index in range(prompts):
        archive = f"{split}_{numbers[index]}"
        levels = [200, 120, 40]
        ranks = [1, 1, 2] if tie_in_first and index == 0 else [1, 2, 3]
        for position, (level, rank) in enumerate(zip(levels, ranks)):
            name = f"{index:04d}-{position}-0000-0000-000000000000.webp"
            archives.setdefault(archive, {})[f"{archive}/{name}"] = gray_image(level, "WEBP")
            rows.append({"image_path": f"images/{split}/{archive}/{name}", "prompt_id": f"{split}-{index:06d}",
                         "prompt": f"{split} prompt {index}", "classification": "People",
                         "image_amount_in_total": 3, "rank": rank, "overall_rating": 7 - rank,
                         "image_text_alignment_rating": 7 - rank, "fidelity_rating": 7 - rank})
    root.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("image_path", pa.string()), ("prompt_id", pa.string()), ("prompt", pa.string()),
                        ("classification", pa.string()), ("image_amount_in_total", pa.int64()),
                        ("rank", pa.int64()), ("overall_rating", pa.int64()),
                        ("image_text_alignment_rating", pa.int64()), ("fidelity_rating", pa.int64())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), root / f"metadata-{split}.parquet")
    for archive, members in archives.items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(root / "images" / split / f"{archive}.zip", "w") as opened:
            for member, data in members.items():
                opened.writestr(member, data)
    return root


def write_hpdv2(root: Path, prompts: int = 3, tied: tuple[int, ...] = ()) -> Path:
    """HPD v2 test: 4 images per prompt, rank 0 = preferred (as in HPSv2's evaluation); the prompts
    at ``tied`` have all four images ranked equal."""
    entries, files = [], {}
    for index in range(prompts):
        names = [f"{index:05d}_{k}.jpg" for k in range(4)]
        levels = [60, 220, 140, 20]
        order = sorted(range(4), key=lambda k: -levels[k])
        ranks = [0] * 4 if index in tied else [order.index(k) for k in range(4)]
        for name, level in zip(names, levels):
            files[f"test/{name}"] = gray_image(level, "JPEG")
        entries.append({"prompt": f"hpd prompt {index}", "image_path": names, "rank": ranks,
                        "raw_annotations": [ranks], "user_hash": ["0"]})
    root.mkdir(parents=True, exist_ok=True)
    (root / "test.json").write_text(json.dumps(entries))
    with tarfile.open(root / "test.tar.gz", "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return root


PICKAPIC_SCHEMA = pa.schema([
    ("are_different", pa.bool_()), ("best_image_uid", pa.string()), ("caption", pa.string()),
    ("created_at", pa.timestamp("ns")), ("has_label", pa.bool_()), ("image_0_uid", pa.string()),
    ("image_0_url", pa.string()), ("image_1_uid", pa.string()), ("image_1_url", pa.string()),
    ("jpg_0", pa.binary()), ("jpg_1", pa.binary()), ("label_0", pa.float64()), ("label_1", pa.float64()),
    ("model_0", pa.string()), ("model_1", pa.string()), ("ranking_id", pa.int64()), ("user_id", pa.int64()),
    ("num_example_per_prompt", pa.int64()), ("__index_level_0__", pa.int64())])


def write_pickapic(root: Path, split: str = "test_unique", labels=((1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (1.0, 0.0)),
                   row_group_size: int = 2, unlabelled: tuple[int, ...] = (),
                   tie_levels: tuple[int, int] = (128, 128)) -> Path:
    """One comparison per label pair; the chosen image is the brighter one (a tie: gray levels
    ``tie_levels``). Rows at ``unlabelled`` are published unlabelled: ``has_label`` false, labels 0/0."""
    rows = []
    for index, (label_0, label_1) in enumerate(labels):
        if index in unlabelled:
            label_0 = label_1 = 0.0
        level_0, level_1 = (200, 60) if label_0 > label_1 else (60, 200) if label_1 > label_0 else tie_levels
        rows.append({"are_different": True, "best_image_uid": "", "caption": f"pick prompt {index}",
                     "created_at": None, "has_label": index not in unlabelled, "image_0_uid": f"a{index}", "image_0_url": "",
                     "image_1_uid": f"b{index}", "image_1_url": "", "jpg_0": gray_image(level_0, "JPEG"),
                     "jpg_1": gray_image(level_1, "JPEG"), "label_0": label_0, "label_1": label_1,
                     "model_0": "m0", "model_1": "m1", "ranking_id": index, "user_id": 1,
                     "num_example_per_prompt": 1, "__index_level_0__": index})
    (root / "data").mkdir(parents=True, exist_ok=True)
    path = root / "data" / f"{split}-00000-of-00001-0123456789abcdef.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=PICKAPIC_SCHEMA), path, row_group_size=row_group_size)
    return root


def hub_snapshot(cache: Path, repo_id: str) -> Path:
    """The snapshot folder of ``repo_id`` (a dataset) in a hub cache laid out as huggingface_hub's,
    with ``refs/main`` pointing at it; fill it, then read with ``HF_HUB_OFFLINE=1``."""
    repo = cache / f"datasets--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot
