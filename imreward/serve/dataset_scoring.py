"""``imreward score-dataset``: batched scoring of large image sets, resumable and sharded by torchrun.

Rows are decoded in ``torch.utils.data.DataLoader`` worker processes and scored in batches. Results
go to parquet part files in ``<output>.parts/``, each written to a temporary name and renamed
when complete, so a crash loses at most the rows not yet committed; a restarted run skips every
key already in a part. Under torchrun each rank scores the rows with ``key % WORLD_SIZE == RANK``
into its own parts; after a barrier rank 0 merges all parts into the output (sorted by key,
each key once) and removes the parts folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from imreward.image_io import WEB_FORMATS, load_image
from imreward.preprocess import PilPreprocessor
from imreward.scoring import RewardScorer
from imreward.serve.dataset_inputs import ScoringRow, image_source, read_rows

RESULT_SCHEMA = pa.schema([("key", pa.int64()), ("prompt", pa.string()), ("image", pa.string()),
                           ("score", pa.float64()), ("error", pa.string())])
BARRIER_TIMEOUT = timedelta(hours=12)


class DecodingDataset(Dataset):
    """Row -> (key, pixels [3, S, S] or None, error message or None), run in DataLoader workers."""

    def __init__(self, rows: list[ScoringRow], preprocess: PilPreprocessor, max_pixels: int,
                 formats: frozenset[str] = WEB_FORMATS) -> None:
        self.rows, self.preprocess, self.max_pixels, self.formats = rows, preprocess, max_pixels, formats

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        row = self.rows[index]
        try:
            return row.key, self.preprocess(load_image(image_source(row.image), self.max_pixels, self.formats)), None
        except Exception as error:  # a bad image fails its own row (Pillow raises many types)
            message = str(error)
            return row.key, None, message if row.image in message else f"{row.image}: {message}"


def collate_decoded(items: list[tuple[int, torch.Tensor | None, str | None]]) -> dict:
    """Keys, the stacked pixels [V, 3, S, S] of the V decodable rows, their positions and the errors."""
    valid = [i for i, (_, pixels, _) in enumerate(items) if pixels is not None]
    return {"keys": [key for key, _, _ in items], "valid": valid, "errors": [error for _, _, error in items],
            "pixels": torch.stack([items[i][1] for i in valid]) if valid else None}


class PartWriter:
    """Buffers result rows and commits them as parquet part files (write, fsync, atomic rename)."""

    def __init__(self, folder: Path, rank: int, rows_per_part: int) -> None:
        self.folder, self.rank, self.rows_per_part = folder, rank, rows_per_part
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
        pq.write_table(pa.Table.from_pylist(self.buffer, schema=RESULT_SCHEMA), temporary)
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


def committed_keys(folder: Path) -> set[int]:
    """Keys already in committed part files (temporary files of a crashed run are ignored)."""
    keys: set[int] = set()
    for part in sorted(folder.glob("part-*.parquet")):
        keys.update(pq.read_table(part, columns=["key"]).column("key").to_pylist())
    return keys


def score_rows(model: RewardScorer, rows: list[ScoringRow], writer: PartWriter, batch_size: int,
               num_workers: int, progress: bool = True) -> int:
    """Score ``rows`` into ``writer``; returns how many rows failed to load."""
    by_key = {row.key: row for row in rows}
    dataset = DecodingDataset(rows, model.pil_preprocess, model.max_pixels, model.image_formats)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_decoded,
                        pin_memory=model.device.type == "cuda", prefetch_factor=4 if num_workers else None)
    failed = 0
    with tqdm(total=len(rows), unit="img", desc="scoring", disable=not progress, smoothing=0.1) as bar:
        for batch in loader:
            scores: list[float | None] = [None] * len(batch["keys"])
            if batch["valid"]:
                prompts = [by_key[batch["keys"][i]].prompt for i in batch["valid"]]
                values = model.score_preprocessed(batch["pixels"], model.encode_prompts(prompts)).tolist()
                for position, value in zip(batch["valid"], values):
                    scores[position] = value
            failed += sum(error is not None for error in batch["errors"])
            writer.add([{"key": key, "prompt": by_key[key].prompt, "image": by_key[key].image, "score": score,
                         "error": error} for key, score, error in zip(batch["keys"], scores, batch["errors"])])
            bar.update(len(batch["keys"]))
    writer.flush()
    return failed


def merge_parts(folder: Path, output: Path, expected_rows: int) -> bool:
    """Write every committed row, once per key and sorted by key, to ``output`` (.parquet or .jsonl).

    Returns False (and writes nothing) while rows are missing.
    """
    parts = sorted(folder.glob("part-*.parquet"))
    table = pa.concat_tables([pq.read_table(part) for part in parts]) if parts else RESULT_SCHEMA.empty_table()
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


def score_dataset_command(args: argparse.Namespace) -> int:
    from imreward.cli import image_formats_from_args, load_model_from_args

    rank, world, local_rank = _distributed_rank()
    if args.output.suffix.lower() not in (".parquet", ".jsonl"):
        raise SystemExit(f"{args.output}: the output must end in .parquet or .jsonl")
    folder = parts_folder(args.output)
    if args.output.exists() and not folder.exists():
        raise SystemExit(f"{args.output} already exists and is complete; delete it to score again")
    formats = image_formats_from_args(args)
    rows = read_rows(args.input, args.layout, args.split)
    synchronized = world > 1 and "MASTER_ADDR" in os.environ
    if synchronized:
        torch.distributed.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    if args.device is None and world > 1 and torch.cuda.is_available():
        args = argparse.Namespace(**{**vars(args), "device": f"cuda:{local_rank}"})
    model = load_model_from_args(args).eval()
    model.image_formats = formats
    done = committed_keys(folder) if folder.exists() else set()
    todo = [row for row in rows if row.key % world == rank and row.key not in done]
    workers = args.num_workers if args.num_workers is not None else max(1, (os.cpu_count() or 2) // world - 1)
    if rank == 0 and done:
        print(f"resuming: {len(done)} of {len(rows)} rows already scored", file=sys.stderr)
    failed = score_rows(model, todo, PartWriter(folder, rank, args.rows_per_part), args.batch_size, workers,
                        progress=not args.quiet and rank == 0)
    if failed:
        print(f"rank {rank}: {failed} images could not be loaded (score null, see the error column)",
              file=sys.stderr)
    if synchronized:
        torch.distributed.barrier()
    complete = True
    if rank == 0 and not args.no_merge:
        complete = merge_parts(folder, args.output, len(rows))
        if complete:
            print(f"wrote {len(rows)} rows to {args.output}", file=sys.stderr)
    if synchronized:
        torch.distributed.destroy_process_group()
    return 0 if complete else 1
