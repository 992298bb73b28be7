"""The ImageRewardDB layout as published on the hub, read directly with pyarrow and zipfile.

A folder holds ``metadata-{train,validation,test}.parquet`` (one row per image: ``image_path`` or
``image``, ``prompt_id``, ``prompt``, ``rank``, ratings...) and the images, either as files at
``image_path`` or inside ``images/{split}/{split}_{n}.zip``: the row ``images/train/train_7/x.webp``
is the member ``x.webp`` of ``images/train/train_7.zip``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from imreward.data.loading import DataStats, RawImage, build_records
from imreward.data.records import ImageSource, PromptRecord

SPLITS = ("train", "validation", "test")


def metadata_file(path: str | Path, split: str) -> Path:
    """``path`` itself if it is a parquet file, else ``path/metadata-{split}.parquet``."""
    path = Path(path)
    if path.suffix == ".parquet":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such metadata file")
        return path
    candidate = path / f"metadata-{split}.parquet"
    if not candidate.is_file():
        present = sorted(p.name for p in path.glob("metadata-*.parquet")) if path.is_dir() else []
        raise FileNotFoundError(f"{candidate} not found (present: {', '.join(present) or 'none'}); pass the "
                                "folder of an ImageRewardDB-layout dataset or a metadata .parquet file")
    return candidate


class ZipIndex:
    """Sizes of the members of the zips next to a metadata file, looked up by the row's image_path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._members: dict[str, dict[str, tuple[str, int]] | None] = {}

    def find(self, image_path: str) -> tuple[ImageSource, int] | None:
        relative = PurePosixPath(image_path)
        archive = self.root / f"{relative.parent}.zip"
        members = self._load(archive)
        if members is None:
            return None
        for key in (str(relative), f"{relative.parent.name}/{relative.name}", relative.name):
            if key in members:
                member, size = members[key]
                return ImageSource(str(archive), member), size
        return None

    def _load(self, archive: Path) -> dict[str, tuple[str, int]] | None:
        key = str(archive)
        if key not in self._members:
            if not archive.is_file():
                self._members[key] = None
            else:
                with zipfile.ZipFile(archive) as opened:
                    infos = [info for info in opened.infolist() if not info.is_dir()]
                members = {info.filename: (info.filename, info.file_size) for info in infos}
                for info in infos:  # also by file name alone, for zips without the folder prefix
                    members.setdefault(PurePosixPath(info.filename).name, (info.filename, info.file_size))
                self._members[key] = members
        return self._members[key]


def _inline_image(value: object, name: str) -> tuple[ImageSource, int]:
    data = value.get("bytes") if isinstance(value, dict) else value
    data = bytes(data) if data is not None else b""
    return ImageSource(name, data=data), len(data)


def read_imagerewarddb(path: str | Path, split: str = "train") -> tuple[list[PromptRecord], DataStats]:
    """Records of one split; images missing or zero-byte are counted in the stats and skipped."""
    import pyarrow.parquet as pq

    metadata = metadata_file(path, split)
    root = metadata.parent
    columns = set(pq.read_schema(metadata).names)
    for required in ("prompt_id", "prompt", "rank"):
        if required not in columns:
            raise ValueError(f"{metadata} has no {required!r} column (columns: {', '.join(sorted(columns))})")
    image_column = "image_path" if "image_path" in columns else "image" if "image" in columns else None
    if image_column is None:
        raise ValueError(f"{metadata} has neither an 'image_path' nor an 'image' column")
    table = pq.read_table(metadata, columns=["prompt_id", "prompt", "rank", image_column]).to_pydict()
    zips = ZipIndex(root)
    groups: dict[str, tuple[str, list[RawImage]]] = {}
    for row, (prompt_id, prompt, rank, image) in enumerate(
            zip(table["prompt_id"], table["prompt"], table["rank"], table[image_column])):
        if image_column == "image":
            source, size = _inline_image(image, f"{metadata.name}[{row}]")
        elif (root / image).is_file():
            source, size = ImageSource(str(root / image)), (root / image).stat().st_size
        else:
            found = zips.find(image)
            source, size = found if found else (ImageSource(str(root / image)), None)
        groups.setdefault(str(prompt_id), (prompt, []))[1].append(RawImage(source, int(rank), size))
    return build_records(groups)
