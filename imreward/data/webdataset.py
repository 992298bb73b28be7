"""WebDataset tar shards in img2dataset's layout, read as a stream (nothing unpacked, nothing indexed).

A sample is the run of consecutive members sharing a key: the member's path up to the first dot of
its file name (``00000/000000012.jpg`` and ``00000/000000012.txt`` are sample ``00000/000000012``),
as WebDataset defines it. img2dataset writes ``{key}.jpg`` (or ``.png``/``.webp``), ``{key}.txt``
(the caption) and ``{key}.json`` (url, size, caption and any extra columns). The prompt is the
``txt`` member by default, or another member (``prompt_field="caption"``) or a key of the JSON
member (``prompt_field="json:caption"``).

Bad samples become rows with an error (no image member, no prompt), never a stop; a tar that ends
mid-member gives its samples read so far and one error row naming the last member read.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imreward.data.records import ImageSource
from imreward.data.shards import ShardOptions, ShardRow

DEFAULT_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
DEFAULT_PROMPT_FIELD = "txt"


def is_tar(path: Path) -> bool:
    return path.name.endswith((".tar", ".tar.gz", ".tgz"))


def split_member_name(name: str) -> tuple[str, str]:
    """``"dir/000012.seg.jpg"`` -> (``"dir/000012"``, ``"seg.jpg"``): the sample key and the field."""
    folder, _, file_name = name.rpartition("/")
    stem, _, extension = file_name.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension.lower()


@dataclass(frozen=True)
class WebDatasetShard:
    """One tar file of samples (see the module doc)."""

    path: str
    name: str
    options: ShardOptions = ShardOptions()

    def rows(self) -> Iterator[ShardRow]:
        sample_key, members, last_member = None, {}, None
        try:
            with tarfile.open(self.path, mode="r|*") as archive:
                for member in archive:
                    if not member.isfile():
                        continue
                    key, extension = split_member_name(member.name)
                    if key != sample_key and sample_key is not None:
                        yield self._row(sample_key, members)
                        members = {}
                    sample_key = key
                    members[extension] = (member.name, archive.extractfile(member).read())
                    last_member = member.name
        except (tarfile.TarError, OSError, EOFError) as error:
            where = f"after member {last_member}" if last_member else "at its start"
            if sample_key is not None:
                yield self._row(sample_key, members)
            yield ShardRow(key=f"{self.name}#unreadable", prompt=None, image=None,
                           error=f"{self.path}: unreadable {where}: {error}", reason="unreadable_shard")
            return
        if sample_key is not None:
            yield self._row(sample_key, members)

    def _row(self, key: str, members: dict[str, tuple[str, bytes]]) -> ShardRow:
        options = self.options
        metadata = self._json(members)
        extensions = options.image_field.split(",") if options.image_field else DEFAULT_IMAGE_EXTENSIONS
        image_extension = next((extension for extension in extensions if extension in members), None)
        image = None
        if image_extension is not None:
            member, data = members[image_extension]
            image = ImageSource(self.path, member, data)
        prompt = self._field(options.prompt_field or DEFAULT_PROMPT_FIELD, members, metadata)
        row_key = self._field(options.key_field, members, metadata) if options.key_field else key
        columns = {column: metadata.get(column) if isinstance(metadata, dict) else None
                   for column in options.source_columns}
        where = f"{self.path}: sample {key}"
        if image is None:
            return ShardRow(str(row_key), prompt, None, columns, f"{where}: no image member "
                            f"({'/'.join(extensions)}; members: {', '.join(sorted(members)) or 'none'})", "no_image")
        if prompt is None:
            return ShardRow(str(row_key), None, image, columns,
                            f"{where}: no prompt ({options.prompt_field or DEFAULT_PROMPT_FIELD})", "no_prompt")
        return ShardRow(str(row_key), prompt, image, columns)

    @staticmethod
    def _json(members: dict[str, tuple[str, bytes]]) -> Any:
        if "json" not in members:
            return None
        try:
            return json.loads(members["json"][1])
        except ValueError:
            return None

    @staticmethod
    def _field(field_name: str, members: dict[str, tuple[str, bytes]], metadata: Any) -> str | None:
        """A member's text, or ``json:KEY`` of the JSON member; None when absent or not text."""
        if field_name.startswith("json:"):
            value = metadata.get(field_name[5:]) if isinstance(metadata, dict) else None
            return value if isinstance(value, str) else (str(value) if value is not None else None)
        if field_name not in members:
            return None
        try:
            return members[field_name][1].decode("utf-8").strip()
        except UnicodeDecodeError:
            return None
