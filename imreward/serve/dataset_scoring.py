"""``imreward score-dataset``: batched scoring of large image sets, resumable and sharded by torchrun.

Rows are decoded in ``torch.utils.data.DataLoader`` worker processes and scored in batches, by one
model or several in the same pass: each image is decoded once, preprocessed once per distinct
preprocessing, and scored by every model into its own column. Results
go to parquet part files in ``<output>.parts/``, each written to a temporary name and renamed
when complete, so a crash loses at most the rows not yet committed; a restarted run skips every
key already in a part. Under torchrun each rank scores the rows with ``key % WORLD_SIZE == RANK``
into its own parts; after a barrier rank 0 merges all parts into the output (sorted by key,
each key once) and removes the parts folder.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import uuid
from collections.abc import Callable, Hashable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from imreward.image_io import DEFAULT_MAX_PIXELS, WEB_FORMATS, load_image
from imreward.scoring import RewardScorer, Scorer, batch_images
from imreward.serve.dataset_inputs import ScoringRow, image_source, read_rows

BARRIER_TIMEOUT = timedelta(hours=12)
ROW_FIELDS = ("key", "prompt", "image", "error")
PIL_IMAGE = "pil"  # the preprocessing slot of scorers without ``pil_preprocess``: the decoded image itself


def score_columns(names: list[str]) -> list[str]:
    """The result's score columns: ``score`` for one model, ``score_<name>`` for each of several."""
    return ["score"] if len(names) == 1 else [f"score_{name}" for name in names]


def result_schema(columns: list[str]) -> pa.Schema:
    return pa.schema([("key", pa.int64()), ("prompt", pa.string()), ("image", pa.string()),
                      *[(column, pa.float64()) for column in columns], ("error", pa.string())])


def preprocessing_slots(models: dict[str, Scorer]) -> tuple[dict[Hashable, Callable | None], dict[str, Hashable]]:
    """The distinct PIL preprocessings of ``models`` and which one each model uses.

    Scorers whose ``pil_preprocess`` has the same ``cache_key`` (the preprocessors of
    ``imreward.preprocess``: kind, sizes, mean and std) share one tensor per image, and so do scorers
    whose ``pil_preprocess`` is a ``functools.partial`` of the same function and (hashable) arguments
    (HPSv3's patches); a scorer without ``pil_preprocess`` (only the ``Scorer`` protocol) gets the
    decoded image.
    """
    slots: dict[Hashable, Callable | None] = {}
    slot_of: dict[str, Hashable] = {}
    for name, model in models.items():
        preprocess = getattr(model, "pil_preprocess", None)
        if preprocess is None:
            slot = PIL_IMAGE
        else:
            slot = getattr(preprocess, "cache_key", None) or _partial_key(preprocess) or id(preprocess)
        slots.setdefault(slot, preprocess)
        slot_of[name] = slot
    return slots, slot_of


def _partial_key(preprocess: Callable) -> Hashable | None:
    """(function, arguments) of a ``functools.partial`` with hashable arguments, else None."""
    if not isinstance(preprocess, functools.partial):
        return None
    key = (preprocess.func, preprocess.args, tuple(sorted(preprocess.keywords.items())))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def stacked_slots(models: dict[str, Scorer], slot_of: dict[str, Hashable]) -> frozenset:
    """The slots whose pixels the DataLoader workers stack into one tensor: those whose every model
    batches by stacking (no ``collate_images`` of its own). The others reach the models as lists,
    batched by each model's ``collate_images`` (HPSv3's images vary in size)."""
    stacking = {name for name, model in models.items()
                if getattr(type(model), "collate_images", RewardScorer.collate_images) is RewardScorer.collate_images}
    return frozenset(slot for slot in set(slot_of.values()) - {PIL_IMAGE}
                     if all(name in stacking for name, other in slot_of.items() if other == slot))


class DecodingDataset(Dataset):
    """Row -> (key, {slot: pixels [3, S, S] or the PIL image}, error message or None), run in DataLoader
    workers. Each image is decoded once, then preprocessed once per distinct preprocessing slot."""

    def __init__(self, rows: list[ScoringRow], preprocessors: dict[Hashable, Callable | None], max_pixels: int,
                 formats: frozenset[str] = WEB_FORMATS) -> None:
        self.rows, self.preprocessors, self.max_pixels, self.formats = rows, preprocessors, max_pixels, formats

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[int, dict[Hashable, torch.Tensor | Image.Image], str | None]:
        row = self.rows[index]
        try:
            image = load_image(image_source(row.image), self.max_pixels, self.formats)
        except Exception as error:  # a bad image fails its own row (Pillow raises many types)
            return row.key, {}, self._message(row, error)
        prepared, errors = {}, []
        for slot, preprocess in self.preprocessors.items():
            try:
                prepared[slot] = image if preprocess is None else preprocess(image)
            except Exception as error:
                errors.append(self._message(row, error))
        return row.key, prepared, "; ".join(errors) or None

    @staticmethod
    def _message(row: ScoringRow, error: Exception) -> str:
        message = str(error)
        return message if row.image in message else f"{row.image}: {message}"


def collate_decoded(items: list[tuple[int, dict, str | None]], stacked: frozenset = frozenset()) -> dict:
    """Keys, errors and per slot: the positions of the rows it holds and their pixels, stacked
    [V, 3, S, S] for the ``stacked`` slots, else a list (of PIL images for the ``PIL_IMAGE`` slot)."""
    batch: dict = {"keys": [key for key, _, _ in items], "errors": [error for _, _, error in items], "slots": {}}
    for slot in dict.fromkeys(slot for _, prepared, _ in items for slot in prepared):
        positions = [i for i, (_, prepared, _) in enumerate(items) if slot in prepared]
        values = [items[i][1][slot] for i in positions]
        batch["slots"][slot] = (positions, torch.stack(values) if slot in stacked else values)
    return batch


class PartWriter:
    """Buffers result rows and commits them as parquet part files (write, fsync, atomic rename)."""

    def __init__(self, folder: Path, rank: int, rows_per_part: int, schema: pa.Schema) -> None:
        self.folder, self.rank, self.rows_per_part, self.schema = folder, rank, rows_per_part, schema
        self.buffer: list[dict] = []
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, rows: list[dict]) -> None:
        self.buffer.extend(rows)
        if len(self.buffer) >= self.rows_per_part:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        name = f"part-{self.rank:05d}-{uuid.uuid4().hex[:12]}.parquet"
        temporary = self.folder / f".{name}.tmp"
        pq.write_table(pa.Table.from_pylist(self.buffer, schema=self.schema), temporary)
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, self.folder / name)
        directory = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self.buffer = []


def parts_folder(output: Path) -> Path:
    return output.with_name(output.name + ".parts")


def committed_keys(folder: Path, columns: list[str]) -> set[int]:
    """Keys already in committed part files (temporary files of a crashed run are ignored).

    Raises:
        SystemExit: the parts hold other score columns (an earlier run with other models).
    """
    keys: set[int] = set()
    for part in sorted(folder.glob("part-*.parquet")):
        found = [name for name in pq.read_schema(part).names if name not in ROW_FIELDS]
        if found != columns:
            raise SystemExit(f"{folder} holds the scores of an earlier run with columns {found}, not {columns}: "
                             "rerun with the same --model list, or delete the folder to start again")
        keys.update(pq.read_table(part, columns=["key"]).column("key").to_pylist())
    return keys


def score_rows(models: dict[str, Scorer], rows: list[ScoringRow], writer: PartWriter, batch_size: int,
               num_workers: int, progress: bool = True, formats: frozenset[str] = WEB_FORMATS) -> int:
    """Score ``rows`` with every model into ``writer`` (one column per model, named as ``score_columns``
    says), decoding each image once (only the encoded ``formats`` are opened); returns how many rows
    failed to load or score for some model."""
    by_key = {row.key: row for row in rows}
    slots, slot_of = preprocessing_slots(models)
    stacked = stacked_slots(models, slot_of)
    columns = dict(zip(models, score_columns(list(models))))
    max_pixels = min(getattr(model, "max_pixels", DEFAULT_MAX_PIXELS) for model in models.values())
    on_gpu = any(_device_type(model) == "cuda" for model in models.values())
    loader = DataLoader(DecodingDataset(rows, slots, max_pixels, formats), batch_size=batch_size,
                        num_workers=num_workers, collate_fn=functools.partial(collate_decoded, stacked=stacked),
                        pin_memory=on_gpu,
                        prefetch_factor=4 if num_workers else None)
    failed = 0
    with tqdm(total=len(rows), unit="img", desc="scoring", disable=not progress, smoothing=0.1) as bar:
        for batch in loader:
            results = [{"key": key, "prompt": by_key[key].prompt, "image": by_key[key].image, "error": error,
                        **dict.fromkeys(columns.values())} for key, error in zip(batch["keys"], batch["errors"])]
            for name, model in models.items():
                slot = slot_of[name]
                positions, inputs = batch["slots"].get(slot, ([], None))
                if positions:
                    prompts = [results[i]["prompt"] for i in positions]
                    if slot != PIL_IMAGE and slot not in stacked:
                        inputs = batch_images(model, inputs)
                    record = functools.partial(_record_error, results, positions, name)
                    for position, value in zip(positions, _scores(model, inputs, prompts, slot == PIL_IMAGE, record)):
                        results[position][columns[name]] = value
            failed += sum(result["error"] is not None for result in results)
            writer.add(results)
            bar.update(len(batch["keys"]))
    writer.flush()
    return failed


def _record_error(results: list[dict], positions: list[int], name: str, index: int, error: Exception) -> None:
    """Add a model's failure on the ``index``-th of ``positions`` to that row's error."""
    result = results[positions[index]]
    message = f"{name}: {type(error).__name__}: {error}"
    result["error"] = message if result["error"] is None else f"{result['error']}; {message}"


def _scores(model: Scorer, inputs, prompts: list[str], decoded: bool, on_error: Callable) -> list[float | None]:
    """Scores of batched preprocessed pixels (a ``RewardScorer``), or of ``decoded`` PIL images through
    ``score_batch``, whose failed items (a judge's unreadable answer) are None and go to ``on_error``."""
    if decoded:
        return model.score_batch(prompts, inputs, batch_size=len(inputs), on_error=on_error)
    return model.score_preprocessed(inputs, model.encode_prompts(prompts)).tolist()


def _device_type(model: Scorer) -> str:
    device = getattr(model, "device", None)
    return torch.device(device).type if device is not None else "cpu"


def merge_parts(folder: Path, output: Path, expected_rows: int, schema: pa.Schema) -> bool:
    """Write every committed row, once per key and sorted by key, to ``output`` (.parquet or .jsonl).

    Returns False (and writes nothing) while rows are missing.
    """
    parts = sorted(folder.glob("part-*.parquet"))
    table = pa.concat_tables([pq.read_table(part) for part in parts]) if parts else schema.empty_table()
    table = table.sort_by("key")
    keys = table.column("key").to_numpy()
    if len(keys) > 1:
        table = table.take(np.concatenate([[0], np.flatnonzero(np.diff(keys)) + 1]))
    if table.num_rows != expected_rows:
        print(f"{expected_rows - table.num_rows} of {expected_rows} rows are not scored yet; "
              f"rerun to finish (parts stay in {folder})", file=sys.stderr)
        return False
    temporary = output.with_name(f".{output.name}.tmp")
    if output.suffix.lower() == ".jsonl":
        with open(temporary, "w", encoding="utf-8") as stream:
            for row in table.to_pylist():
                stream.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        pq.write_table(table, temporary)
    os.replace(temporary, output)
    for part in parts:
        part.unlink()
    for leftover in folder.glob(".part-*.tmp"):
        leftover.unlink()
    folder.rmdir()
    return True


def _distributed_rank() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the variables torchrun sets; (0, 1, 0) without it."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def score_dataset_command(args: argparse.Namespace, models: dict[str, str]) -> int:
    """Run ``imreward score-dataset``; ``models`` maps each result name to the scorer spec to load."""
    from imreward.cli import image_formats_from_args, load_model_from_args

    rank, world, local_rank = _distributed_rank()
    if args.output.suffix.lower() not in (".parquet", ".jsonl"):
        raise SystemExit(f"{args.output}: the output must end in .parquet or .jsonl")
    folder = parts_folder(args.output)
    if args.output.exists() and not folder.exists():
        raise SystemExit(f"{args.output} already exists and is complete; delete it to score again")
    formats = image_formats_from_args(args)
    try:
        rows = read_rows(args.input, args.layout, args.split)
    except ValueError as error:
        raise SystemExit(f"imreward score-dataset: {error}") from error
    synchronized = world > 1 and "MASTER_ADDR" in os.environ
    if synchronized:
        torch.distributed.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    if args.device is None and world > 1 and torch.cuda.is_available():
        args = argparse.Namespace(**{**vars(args), "device": f"cuda:{local_rank}"})
    scorers = {name: load_model_from_args(args, spec) for name, spec in models.items()}
    columns = score_columns(list(scorers))
    done = committed_keys(folder, columns) if folder.exists() else set()
    todo = [row for row in rows if row.key % world == rank and row.key not in done]
    workers = args.num_workers if args.num_workers is not None else max(1, (os.cpu_count() or 2) // world - 1)
    if rank == 0 and done:
        print(f"resuming: {len(done)} of {len(rows)} rows already scored", file=sys.stderr)
    writer = PartWriter(folder, rank, args.rows_per_part, result_schema(columns))
    failed = score_rows(scorers, todo, writer, args.batch_size, workers, progress=not args.quiet and rank == 0,
                        formats=formats)
    if failed:
        print(f"rank {rank}: {failed} images could not be loaded or scored (score null, see the error column)",
              file=sys.stderr)
    if synchronized:
        torch.distributed.barrier()
    complete = True
    if rank == 0 and not args.no_merge:
        complete = merge_parts(folder, args.output, len(rows), result_schema(columns))
        if complete:
            print(f"wrote {len(rows)} rows to {args.output}", file=sys.stderr)
    if synchronized:
        torch.distributed.destroy_process_group()
    return 0 if complete else 1
