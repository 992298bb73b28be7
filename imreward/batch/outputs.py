"""Per-shard result files, the run manifest, resuming and merging.

A run writes ``<folder>/<shard name>.parquet`` for each input shard: ``key``, the kept source
columns, one score column per model and ``error``, rows in the shard's order. A file is written
under a temporary name, flushed to disk and renamed when its shard is complete, so a crash loses at
most the shards in flight and a rerun skips every shard whose file is there. On resume each file
is checked (its Parquet footer and columns); a bad one (a truncated copy, say) is moved aside to
``<folder>/_set_aside/`` under its own name and its shard is scored again.

``<folder>/_manifest.json`` records the models (name, scorer spec, weights' SHA-256, dtype,
preprocessing) and the kept columns: a resumed or extended run with anything else is refused, so
one folder never mixes scores of different models.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "_manifest.json"
SET_ASIDE = "_set_aside"


class RunMismatch(ValueError):
    """The output folder holds the results of a run with other models or columns."""


def weights_sha256(model) -> str | None:
    """SHA-256 of a torch module's state (names, dtypes, shapes, bytes); None for other scorers."""
    import torch

    state_dict = getattr(model, "state_dict", None)
    if state_dict is None:
        return None
    digest = hashlib.sha256()
    for name, value in state_dict().items():
        # an int8 layer (imreward.precision) holds its dtype and a tuple of a quantized weight and a bias
        parts = value if isinstance(value, tuple) else (value,)
        for index, tensor in enumerate(parts):
            label = name if len(parts) == 1 else f"{name}.{index}"
            if not isinstance(tensor, torch.Tensor):
                digest.update(f"{label}:{tensor!r}".encode())
                continue
            tensor = tensor.detach().cpu()
            if tensor.is_quantized:
                per_channel = tensor.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
                digest.update(repr(tensor.q_per_channel_scales().tolist() if per_channel else tensor.q_scale()).encode())
                tensor = tensor.int_repr()
            tensor = tensor.contiguous()
            digest.update(f"{label}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def describe_model(name: str, column: str, spec: str, model) -> dict:
    """The manifest entry of one model."""
    from imreward.batch.decode import preprocessing_slots

    parameters = next(iter(getattr(model, "parameters", lambda: iter(()))()), None)
    slot = preprocessing_slots({name: model})[1][name]
    return {"name": name, "column": column, "spec": spec, "class": f"{type(model).__module__}.{type(model).__name__}",
            "weights_sha256": weights_sha256(model), "dtype": str(parameters.dtype) if parameters is not None else None,
            "preprocessing": repr(slot) if not isinstance(slot, int) else type(model.pil_preprocess).__name__}


def run_manifest(models: list[dict], keep_columns: list[str]) -> dict:
    return {"format": 1, "models": models, "keep_columns": keep_columns}


def check_manifest(folder: Path, manifest: dict) -> None:
    """Write ``manifest`` into a new folder, or check it equals the one there.

    Raises:
        RunMismatch: the folder holds results of other models or kept columns.
    """
    path = folder / MANIFEST
    if path.is_file():
        found = json.loads(path.read_text(encoding="utf-8"))
        comparable = ("name", "column", "class", "weights_sha256", "dtype", "preprocessing")
        ours = [{key: model[key] for key in comparable} for model in manifest["models"]]
        theirs = [{key: model.get(key) for key in comparable} for model in found.get("models", [])]
        if ours != theirs or found.get("keep_columns") != manifest["keep_columns"]:
            raise RunMismatch(f"{folder} holds the results of a run with other models or columns "
                              f"({_summary(found)}), not {_summary(manifest)}: rerun with the same --model list, "
                              "dtype and --keep-columns, or write to another folder")
        return
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(manifest, indent=2).encode())


def _summary(manifest: dict) -> str:
    models = ", ".join(f"{model.get('column')}={model.get('spec')} ({model.get('dtype')}, "
                       f"weights {str(model.get('weights_sha256'))[:12]})" for model in manifest.get("models", []))
    return f"{models}; keep {manifest.get('keep_columns')}"


def atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def shard_path(folder: Path, name: str) -> Path:
    return folder / f"{name}.parquet"


def finished_shards(folder: Path, names: list[str], columns: list[str]) -> set[str]:
    """The shards of ``names`` whose result file is complete; bad files are set aside (and reported)."""
    for leftover in folder.glob(".*.parquet.tmp"):
        leftover.unlink()
    finished = set()
    for name in names:
        path = shard_path(folder, name)
        if not path.exists():
            continue
        try:
            found = pq.ParquetFile(path).schema_arrow.names
            problem = None if found == columns else f"columns {found}, expected {columns}"
        except Exception as error:  # pyarrow raises several types for a damaged file
            problem = f"{type(error).__name__}: {error}"
        if problem is None:
            finished.add(name)
            continue
        aside = folder / SET_ASIDE / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}"
        aside.parent.mkdir(exist_ok=True)
        os.replace(path, aside)
        print(f"{path}: unreadable result ({problem}); moved to {aside}, its shard is scored again", file=sys.stderr)
    return finished


TEXT_COLUMNS = ("key", "error", "prompt", "image")


def _plain(value, text: bool):
    """A Python value for Arrow: numpy scalars unwrapped, and a missing value (None, or the NaN that
    Ray's numpy batches carry for one) as None."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if value is None or (isinstance(value, float) and value != value):
        return None
    return str(value) if text else value


class ShardWriter:
    """Collects result rows (in any order, from any batch) and writes each shard's file when all its
    rows are in: a row with ``last`` set tells the shard's row count; a row that comes twice (from a
    retried task) is kept once."""

    def __init__(self, folder: Path, columns: list[str]) -> None:
        self.folder, self.columns = folder, columns
        self.rows: dict[str, dict[int, tuple]] = {}
        self.totals: dict[str, int] = {}
        self.written: set[str] = set()
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, result: dict) -> list[str]:
        """Take a scored batch (``BatchScorer.score``'s columns); returns the shards it completed."""
        values = [result[column if column in ("key", "error") or column.startswith("score") else
                         (column if column in ("prompt", "image") else f"col:{column}")] for column in self.columns]
        touched = set()
        for position, (shard, index, last) in enumerate(zip(result["shard"], result["index"], result["last"])):
            index = int(index)
            if shard in self.written:  # a late copy from a retried task
                continue
            rows = self.rows.setdefault(shard, {})
            if index >= 0:
                rows[index] = tuple(column[position] for column in values)
            if last:
                self.totals[shard] = index + 1
            touched.add(shard)
        completed = [shard for shard in sorted(touched) if len(self.rows[shard]) == self.totals.get(shard, -1)]
        for shard in completed:
            self._write(shard, [self.rows[shard][index] for index in range(self.totals.pop(shard))])
            del self.rows[shard]
            self.written.add(shard)
        return completed

    def _write(self, shard: str, rows: list[tuple]) -> None:
        arrays = {}
        for position, column in enumerate(self.columns):
            values = [_plain(row[position], text=column in TEXT_COLUMNS) for row in rows]
            kind = pa.float64() if column.startswith("score") else pa.string() if column in TEXT_COLUMNS else None
            arrays[column] = pa.array(values, type=kind)
        path = shard_path(self.folder, shard)
        temporary = path.with_name(f".{path.name}.tmp")
        pq.write_table(pa.table(arrays), temporary)
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
        _fsync_folder(self.folder)


def merge_outputs(folder: Path, names: list[str], output: Path) -> int:
    """Concatenate the shards' files (in ``names``' order) into ``output`` (.parquet or .jsonl), one
    shard in memory at a time; returns the rows written."""
    paths = [shard_path(folder, name) for name in names]
    schema = pa.unify_schemas([pq.read_schema(path) for path in paths], promote_options="permissive")
    temporary = output.with_name(f".{output.name}.tmp")
    rows = 0
    if output.suffix.lower() == ".jsonl":
        with open(temporary, "w", encoding="utf-8") as stream:
            for path in paths:
                for row in pq.read_table(path).to_pylist():
                    stream.write(json.dumps(row, ensure_ascii=False) + "\n")
                    rows += 1
    else:
        with pq.ParquetWriter(temporary, schema) as writer:
            for path in paths:
                table = pq.read_table(path)
                writer.write_table(table.cast(schema) if table.schema != schema else table)
                rows += table.num_rows
    os.replace(temporary, output)
    return rows
