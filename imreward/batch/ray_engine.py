"""``--engine ray``: Ray Data reads and decodes shards in CPU tasks and scores in a pool of actors.

The job is Ray Data's batch-inference recipe::

    ray.data.from_items(shards)                      # one item (and one block) per input shard
      .flat_map(decode_shard)                        # CPU tasks: read a shard, decode, preprocess, stream rows
      .map_batches(ImRewardScorer, batch_size=B,     # actors: the models, loaded once per actor
                   compute=ActorPoolStrategy(size=N), num_gpus=g)
      -> the driver writes each shard's file when its last row is in (``imreward.batch.outputs``)

Ray retries the tasks and restarts the actors of failed workers; the shard writer keeps each row
once (a retried task's rows replace the first attempt's). Only results (keys, scores, errors)
reach the driver.

``ImRewardScorer`` is also the building block for users' own Ray Data pipelines::

    ds = ray.data.read_parquet("s3://bucket/images/")   # columns "image" (bytes) and "prompt"
    ds = ds.map_batches(ImRewardScorer, fn_constructor_kwargs={"models": ["ImageReward-v1.0"]},
                        concurrency=4, num_gpus=1, batch_size=128)
    ds.write_parquet("s3://bucket/scores/")              # the input columns + score + error
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from imreward.batch.decode import DecodePlan, Decoder, decoded_batches
from imreward.batch.scoring import BatchScorer
from imreward.data.records import ImageSource
from imreward.data.shards import Shard, ShardRow
from imreward.image_io import WEB_FORMATS

DECODE_CHUNK = 16  # rows a decoding task prepares at a time


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide the Ray engine runs.

    Attributes:
        actors: scoring actors (each loads the models once).
        gpus_per_actor: GPUs each actor reserves; a fraction (0.5) puts several actors on one GPU.
        address: an existing cluster (``auto``, ``ray://host:10001``); None starts a local Ray
            (or uses the one this process is already connected to).
        cpus_per_actor: CPUs each actor reserves.
    """

    actors: int = 1
    gpus_per_actor: float = 0.0
    address: str | None = None
    cpus_per_actor: float = 1.0


def _models_dict(models: str | list[str] | dict[str, str]) -> dict[str, str]:
    from imreward.cli import model_specs

    if isinstance(models, dict):
        return dict(models)
    return model_specs([models] if isinstance(models, str) else list(models))


class ImRewardScorer:
    """A Ray Data callable class: loads the scorers once, then scores batches.

    Args:
        models: one scorer spec, a list (``[NAME=]MODEL`` each) or {result name: spec}; one model
            writes column ``score``, several ``score_NAME``.
        device, dtype: where and in what precision to run (default: CUDA when the actor has a GPU).
        prompt_column, image_column: the columns of a user's batch: prompts, and images as encoded
            bytes, ``{"bytes", "path"}`` structs or HxWxC uint8 arrays (``ray.data.read_images``).
        image_formats: encoded formats accepted (default: PNG, JPEG, WebP).
        load_options: more ``imreward.load_scorer`` options (``download_root``, ...).

    A batch gains the score columns and ``error`` (None, or why that row has no score). Batches
    from ``score_shards``'s own pipeline (decoded already) are scored as they are.
    """

    def __init__(self, models: str | list[str] | dict[str, str] = "ImageReward-v1.0", device: str | None = None,
                 dtype: str | None = None, prompt_column: str = "prompt", image_column: str = "image",
                 image_formats: frozenset[str] = WEB_FORMATS, **load_options) -> None:
        import imreward

        loaded = {}
        for name, spec in _models_dict(models).items():
            scorer = imreward.load_scorer(spec, device=device, dtype=dtype, **load_options)
            loaded[name] = scorer.eval() if hasattr(scorer, "eval") else scorer
        self.scorer = BatchScorer(loaded, frozenset(image_formats))
        self.decoder = Decoder(self.scorer.plan)
        self.prompt_column, self.image_column = prompt_column, image_column

    def __call__(self, batch: dict) -> dict:
        if "shard" in batch and "reason" in batch:
            return _to_numpy(self.scorer.score(batch))
        prompts = [str(prompt) if prompt is not None else None for prompt in batch[self.prompt_column]]
        rows = [self._row(position, prompt, image)
                for position, (prompt, image) in enumerate(zip(prompts, batch[self.image_column]))]
        decoded = self.decoder.batch([("batch", position, False, row) for position, row in enumerate(rows)])
        scored = self.scorer.score(decoded)
        columns = [*self.scorer.columns.values(), "error"]
        return {**batch, **_to_numpy({column: scored[column] for column in columns})}

    def _row(self, position: int, prompt: str | None, image) -> ShardRow:
        if isinstance(image, dict):
            image = image.get("bytes")
        where = f"row {position}"
        if prompt is None:
            return ShardRow(where, None, None, error=f"{where}: no prompt", reason="no_prompt")
        if image is None or (isinstance(image, (bytes, bytearray)) and not image):
            return ShardRow(where, prompt, None, error=f"{where}: no image", reason="no_image")
        if isinstance(image, np.ndarray):  # decoded pixels (read_images): load_image takes them as they are
            return ShardRow(where, prompt, ImageSource(where, data=image))
        return ShardRow(where, prompt, ImageSource(where, data=bytes(image)))


def _to_numpy(columns: dict) -> dict:
    """Lists as numpy arrays (floats with NaN for None would lose the None: kept as objects)."""
    return {name: value if isinstance(value, np.ndarray) else np.array(value, dtype=object)
            for name, value in columns.items()}


def decode_shard(item: dict, plan: DecodePlan, source_columns: tuple[str, ...]) -> Iterator[dict]:
    """Ray task (``flat_map``): the decoded rows of the shard ``item["shard"]``, streamed."""
    for batch in decoded_batches([item["shard"]], Decoder(plan), DECODE_CHUNK, source_columns):
        for position in range(len(batch["key"])):
            yield {name: column[position] for name, column in batch.items()}


def run_ray(shards: list[Shard], models: dict[str, str], load_options: dict, plan: DecodePlan, batch_size: int,
            options: RayOptions, source_columns: tuple[str, ...] = ()) -> Iterator[dict]:
    """Scored batches of ``shards``, as they come out of the actors."""
    try:
        import ray
    except ImportError as error:
        raise ImportError("the ray engine needs Ray Data: pip install 'imreward[ray]'") from error

    if not ray.is_initialized():
        local = {}
        if options.address is None:  # a Ray of our own: the actors' CPUs plus at least one for decoding
            local["num_cpus"] = max(os.cpu_count() or 1, math.ceil(options.actors * options.cpus_per_actor) + 1)
        ray.init(address=options.address, log_to_driver=False, configure_logging=False, **local)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    dataset = ray.data.from_items([{"shard": shard} for shard in shards],
                                  override_num_blocks=min(len(shards), 1000))
    dataset = dataset.flat_map(decode_shard, num_cpus=1, fn_kwargs={"plan": plan, "source_columns": source_columns})
    dataset = dataset.map_batches(ImRewardScorer, batch_size=batch_size,
                                  compute=ray.data.ActorPoolStrategy(size=options.actors),
                                  num_gpus=options.gpus_per_actor, num_cpus=options.cpus_per_actor,
                                  fn_constructor_kwargs={"models": models, **load_options})
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        yield {name: column if name.startswith("score") else _missing_as_none(column) for name, column in batch.items()}


def _missing_as_none(column: np.ndarray) -> np.ndarray | list:
    """Ray's numpy batches carry None as NaN: among strings (an object array), and as a float array
    when a block's column held only None. Back to None."""
    if column.dtype.kind == "f" and np.isnan(column).all():
        return [None] * len(column)
    if column.dtype != object:
        return column
    return [None if isinstance(value, (float, np.floating)) and np.isnan(value) else value for value in column]
