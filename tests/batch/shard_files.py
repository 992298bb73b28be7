"""Small WebDataset and Parquet shards in img2dataset's layouts, with bad members among them."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

PROMPTS = ["a lighthouse at dusk", "two cats", "a bowl of ramen", "an astronaut riding a horse"]
# (shard, row) of the bad samples, the same in both layouts
TRUNCATED_JPEG, NOT_AN_IMAGE, NO_CAPTION, NO_IMAGE = (0, 3), (1, 5), (1, 8), (2, 2)


def image_bytes(seed: int, fmt: str = "JPEG", size: tuple[int, int] = (24, 20)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def samples(shards: int, rows: int) -> list[list[dict]]:
    """Per shard, per row: key, prompt (None: no caption), image bytes (None: no image), format."""
    out = []
    for shard in range(shards):
        rows_of_shard = []
        for row in range(rows):
            seed = shard * rows + row
            fmt = "PNG" if row % 5 == 0 else "JPEG"
            data = image_bytes(seed, fmt)
            if (shard, row) == TRUNCATED_JPEG:
                data = image_bytes(seed, "JPEG")[:60]
            elif (shard, row) == NOT_AN_IMAGE:
                data = b"this is a caption, not an image"
            prompt = None if (shard, row) == NO_CAPTION else PROMPTS[seed % len(PROMPTS)]
            rows_of_shard.append({"key": f"{shard:05d}{row:04d}", "prompt": prompt,
                                  "image": None if (shard, row) == NO_IMAGE else data,
                                  "ext": "png" if fmt == "PNG" else "jpg", "url": f"https://example.com/{seed}"})
        out.append(rows_of_shard)
    return out


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def write_webdataset(folder: Path, shards: int = 3, rows: int = 80) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard, rows_of_shard in enumerate(samples(shards, rows)):
        path = folder / f"{shard:05d}.tar"
        with tarfile.open(path, "w") as archive:
            for sample in rows_of_shard:
                if sample["image"] is not None:
                    _add(archive, f"{sample['key']}.{sample['ext']}", sample["image"])
                if sample["prompt"] is not None:
                    _add(archive, f"{sample['key']}.txt", sample["prompt"].encode())
                metadata = {"url": sample["url"], "key": sample["key"]}
                _add(archive, f"{sample['key']}.json", json.dumps(metadata).encode())
        paths.append(path)
    return paths


def write_parquet(folder: Path, shards: int = 3, rows: int = 80, struct: bool = False) -> list[Path]:
    """The same samples as Parquet files (``struct``: images as the datasets {"bytes", "path"} struct)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard, rows_of_shard in enumerate(samples(shards, rows)):
        images = [sample["image"] for sample in rows_of_shard]
        column = (pa.array([{"bytes": data, "path": None} for data in images],
                           pa.struct([("bytes", pa.binary()), ("path", pa.string())])) if struct
                  else pa.array(images, pa.binary()))
        table = pa.table({"key": [sample["key"] for sample in rows_of_shard], "image": column,
                          "caption": [sample["prompt"] for sample in rows_of_shard],
                          "url": [sample["url"] for sample in rows_of_shard]})
        path = folder / f"{shard:05d}.parquet"
        pq.write_table(table, path, row_group_size=32)
        paths.append(path)
    return paths
