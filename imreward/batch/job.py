"""``score_shards``: score every row of a sharded input into one result file per shard.

One code path for both engines: the input's shards (``imreward.data.shards``) are checked against
the output folder (finished shards skipped, damaged files set aside, other models refused), the
rest are read, decoded and scored by the engine, and each shard's file is written when its last
row is in (``imreward.batch.outputs``). A JSON summary ends the run (``_summary.json``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from imreward.batch.outputs import (ShardWriter, atomic_write, check_manifest, describe_model, finished_shards,
                                    merge_outputs, run_manifest)
from imreward.batch.progress import Progress
from imreward.batch.ray_engine import RayOptions
from imreward.batch.scoring import BatchScorer
from imreward.data.shards import ShardOptions, ShardReadError, open_shards
from imreward.image_io import WEB_FORMATS

ENGINES = ("local", "ray")
MERGED_SUFFIXES = (".parquet", ".jsonl")
SUMMARY = "_summary.json"


def output_locations(output: str | os.PathLike, merge: str | os.PathLike | None = None) -> tuple[Path, Path | None]:
    """(shard folder, merged file or None): a folder ``output`` holds the shard files; a ``.parquet``
    or ``.jsonl`` ``output`` is the merged file, its shards in ``<output>.shards/``."""
    output = Path(output)
    if output.suffix.lower() in MERGED_SUFFIXES:
        return output.with_name(output.name + ".shards"), output
    if merge is not None and Path(merge).suffix.lower() not in MERGED_SUFFIXES:
        raise ValueError(f"{merge}: the merged file must end in .parquet or .jsonl")
    return output, Path(merge) if merge is not None else None


def score_shards(source: str | os.PathLike | Sequence[str | os.PathLike], output: str | os.PathLike,
                 models: str | Sequence[str] | dict = "ImageReward-v1.0", *, engine: str = "local",
                 layout: str = "auto", reading: ShardOptions = ShardOptions(keep_columns=("prompt",)),
                 batch_size: int = 64, num_workers: int | None = None, device: str | None = None,
                 dtype: str | None = None, image_formats: frozenset[str] = WEB_FORMATS,
                 ray: RayOptions = RayOptions(), merge: str | os.PathLike | None = None, progress: bool = True,
                 load_options: dict | None = None) -> Path:
    """Score ``source`` (tar/Parquet shards, a folder, manifest, ImageRewardDB or hub dataset; see
    ``imreward.data.shards.open_shards``) with ``models`` into per-shard Parquet files.

    Args:
        output: the folder of shard files, or a ``.parquet``/``.jsonl`` file to merge them into.
        models: a scorer spec, a list of ``[NAME=]MODEL`` specs, or {name: spec or loaded scorer}
            (loaded scorers only with the local engine).
        engine: ``"local"`` (DataLoader decode workers, this process scores) or ``"ray"``.
        reading: prompt/image/key fields, kept columns, rows per shard, split, root policy.
        num_workers: local engine decoding processes (default: the CPU count minus one).
        ray: actors, GPUs per actor, cluster address (``engine="ray"``).
        merge: also concatenate the shard files into this ``.parquet``/``.jsonl`` once all are done.
        load_options: more ``imreward.load_scorer`` options (``download_root``, ...).
    Returns:
        The merged file when there is one and every shard is done, else the shard folder.
    Raises:
        ShardReadError: the input cannot be read; RunMismatch: the folder holds other models' scores.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    folder, merged = output_locations(output, merge)
    shards = open_shards(source, layout, reading)
    names = [shard.name for shard in shards]
    if len(set(names)) != len(names):
        raise ShardReadError("two input shards have the same name; give shards distinct file names")
    specs, scorers = _load(models, engine, device, dtype, load_options or {})
    precision = {name: getattr(model, "precision", None) for name, model in scorers.items()}  # for the summary
    scorer = BatchScorer(scorers, frozenset(image_formats))
    columns = ["key", *reading.keep_columns, *scorer.columns.values(), "error"]
    check_manifest(folder, run_manifest([describe_model(name, scorer.columns[name], specs.get(name, repr(model)),
                                                        model) for name, model in scorers.items()],
                                        list(reading.keep_columns)))
    done = finished_shards(folder, names, columns)
    todo = [shard for shard in shards if shard.name not in done]
    if done and progress:
        print(f"resuming: {len(done)} of {len(shards)} shards already scored", file=sys.stderr)
    meter = Progress(len(shards), len(done), show=progress)
    writer = ShardWriter(folder, columns)
    if todo:
        if engine == "local":
            from imreward.batch.local_engine import run_local

            workers = num_workers if num_workers is not None else max(1, (os.cpu_count() or 2) - 1)
            results = run_local(todo, scorer.score, scorer.plan, batch_size, workers, reading.source_columns)
        else:
            from imreward.batch.ray_engine import run_ray

            plan = scorer.plan
            del scorers, scorer  # the actors load their own copies
            results = run_ray(todo, specs, {"device": device, "dtype": dtype, "image_formats": image_formats,
                                            **(load_options or {})}, plan, batch_size, ray, reading.source_columns)
        for result in results:
            meter.update(result, writer.add(result))
    complete = meter.done == len(todo)
    target = folder
    if complete and merged is not None:
        rows = merge_outputs(folder, names, merged)
        target = merged
        if progress:
            print(f"wrote {rows} rows to {merged}", file=sys.stderr)
    summary = meter.summary(engine=engine, output=str(target), complete=complete, precision=precision)
    atomic_write(folder / SUMMARY, json.dumps(summary, indent=2).encode())
    return target


def _load(models, engine: str, device: str | None, dtype: str | None, load_options: dict) -> tuple[dict, dict]:
    """({name: spec}, {name: loaded scorer}); with Ray the driver's copies load on the CPU (for the
    manifest: weights' hash, dtype, preprocessing)."""
    import imreward
    from imreward.cli import model_specs

    if isinstance(models, dict):
        entries = dict(models)
    else:
        entries = model_specs([models] if isinstance(models, str) else list(models))
    specs = {name: value for name, value in entries.items() if isinstance(value, str)}
    if engine == "ray" and len(specs) != len(entries):
        raise ValueError("the ray engine loads models by spec (registry name, folder, hub repo), not loaded objects")
    loaded = {}
    for name, value in entries.items():
        if isinstance(value, str):
            where = "cpu" if engine == "ray" else device
            value = imreward.load_scorer(value, device=where, dtype=dtype, **load_options)
            value = value.eval() if hasattr(value, "eval") else value
        loaded[name] = value
    return specs, loaded
