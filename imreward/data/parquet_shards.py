"""Parquet files whose rows hold the image bytes, read a record batch at a time.

The image column holds encoded bytes, or the Hugging Face ``datasets`` image struct
``{"bytes": ..., "path": ...}``; the prompt column holds text. Defaults: the first of ``image``,
``jpg``, ``png``, ``webp``, ``img`` that exists, and the first of ``prompt``, ``caption``, ``text``;
the key is the ``key`` column (img2dataset's Parquet output has one) or ``id``, else
``"{shard name}/{row number}"``, stable while the file is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from imreward.data.records import ImageSource
from imreward.data.shards import ShardOptions, ShardReadError, ShardRow

IMAGE_COLUMNS = ("image", "jpg", "png", "webp", "img")
PROMPT_COLUMNS = ("prompt", "caption", "text")
KEY_COLUMNS = ("key", "id")
ROWS_PER_READ = 256


def _binary_like(field_type) -> bool:
    import pyarrow as pa

    if pa.types.is_binary(field_type) or pa.types.is_large_binary(field_type):
        return True
    return pa.types.is_struct(field_type) and field_type.get_field_index("bytes") >= 0


def columns_of(path: str | Path, options: ShardOptions) -> tuple[str | None, str | None, str | None]:
    """(image, prompt, key) column names of the Parquet file ``path``; None where none is found."""
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, ValueError) as error:
        raise ShardReadError(f"{path}: not a readable Parquet file ({type(error).__name__}: {error})") from error
    names = schema.names

    def pick(chosen: str | None, candidates: tuple[str, ...]) -> str | None:
        if chosen is not None:
            return chosen if chosen in names else None
        return next((name for name in candidates if name in names), None)

    image = options.image_field if options.image_field in names else None
    if options.image_field is None:
        image = next((name for name in IMAGE_COLUMNS if name in names and _binary_like(schema.field(name).type)), None)
    return image, pick(options.prompt_field, PROMPT_COLUMNS), pick(options.key_field, KEY_COLUMNS)


def is_image_parquet(path: Path, options: ShardOptions, strict: bool = False) -> bool:
    """Whether ``path`` has an image-bytes column and a prompt column (``strict``: raise naming what lacks)."""
    image, prompt, _ = columns_of(path, options)
    if strict and (image is None or prompt is None):
        import pyarrow.parquet as pq

        missing = "an image-bytes column" if image is None else "a prompt column"
        raise ShardReadError(f"{path}: no {missing} ({options.image_field or '/'.join(IMAGE_COLUMNS)} for images, "
                             f"{options.prompt_field or '/'.join(PROMPT_COLUMNS)} for prompts); columns: "
                             f"{', '.join(pq.read_schema(path).names)}")
    return image is not None and prompt is not None


@dataclass(frozen=True)
class ParquetShard:
    """One Parquet file of (image bytes, prompt) rows (see the module doc)."""

    path: str
    name: str
    options: ShardOptions = ShardOptions()

    def rows(self) -> Iterator[ShardRow]:
        read = 0
        try:
            for row in self._read():
                yield row
                read += 1
        except (OSError, ValueError) as error:  # pyarrow's errors for a damaged file are both
            yield ShardRow(f"{self.name}#unreadable", None, None, error=f"{self.path}: unreadable after {read} rows: "
                           f"{type(error).__name__}: {error}", reason="unreadable_shard")

    def _read(self) -> Iterator[ShardRow]:
        import pyarrow.parquet as pq

        image_column, prompt_column, key_column = columns_of(self.path, self.options)
        if image_column is None or prompt_column is None:
            is_image_parquet(Path(self.path), self.options, strict=True)
        kept = [column for column in self.options.source_columns if column not in (image_column, prompt_column)]
        wanted = list(dict.fromkeys([image_column, prompt_column, *([key_column] if key_column else []), *kept]))
        present = set(pq.read_schema(self.path).names)
        number = 0
        for batch in pq.ParquetFile(self.path).iter_batches(batch_size=ROWS_PER_READ,
                                                           columns=[c for c in wanted if c in present]):
            table = batch.to_pydict()
            for offset in range(batch.num_rows):
                key = table[key_column][offset] if key_column else None
                key = f"{self.name}/{number}" if key is None else str(key)
                yield self._row(key, number, table[image_column][offset], table[prompt_column][offset],
                                {column: table[column][offset] if column in table else None for column in kept})
                number += 1

    def _row(self, key: str, number: int, cell, prompt, columns: dict) -> ShardRow:
        if isinstance(cell, dict):  # the datasets Image feature
            cell = cell.get("bytes")
        where = f"{self.path}: row {number} (key {key})"
        if not cell:
            return ShardRow(key, prompt, None, columns, f"{where}: no image bytes", "no_image")
        image = ImageSource(self.path, f"row {number}", bytes(cell))
        if not isinstance(prompt, str):
            return ShardRow(key, None, image, columns, f"{where}: no prompt", "no_prompt")
        return ShardRow(key, prompt, image, columns)
