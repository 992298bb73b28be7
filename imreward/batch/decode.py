"""Rows of shards -> decoded, preprocessed batches: the CPU side of batch scoring, run in DataLoader
workers (local engine) or Ray tasks (Ray engine).

Each image is decoded once and preprocessed once per distinct preprocessing *slot* of the models
(scorers whose ``pil_preprocess`` gives the same tensor share a slot). A batch is a dict of equally
long columns, so Ray Data can carry it as a block:

- ``shard``, ``index`` (the row's position in its shard), ``last`` (the shard's final row),
  ``key``, ``prompt``, ``image`` (where the image is, for the results), ``error`` and ``reason``
  (the kind of failure, for summaries), and ``col:NAME`` for each kept source column;
- per slot ``i``: ``pixels:i`` (float32 [B, 3, S, S], zeros where the row has none) with ``ok:i``
  (bool [B]) for slots whose models stack tensors, else ``items:i`` (one object or None per row:
  the PIL image, or the tensors of a scorer with its own ``collate_images``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from imreward.data.records import ImageReader
from imreward.data.shards import Shard, ShardRow
from imreward.image_io import WEB_FORMATS, load_image

PIL_IMAGE = "pil"  # the slot of scorers without ``pil_preprocess``: the decoded image itself
ROW_COLUMNS = ("shard", "index", "last", "key", "prompt", "image", "error", "reason")


def preprocessing_slots(models: dict) -> tuple[dict[Hashable, Callable | None], dict[str, Hashable]]:
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


def stacked_slots(models: dict, slot_of: dict[str, Hashable]) -> frozenset:
    """The slots whose pixels are stacked into one array: those whose every model batches by stacking
    (no ``collate_images`` of its own). The others reach the models as lists, batched by each
    model's ``collate_images`` (HPSv3's images vary in size)."""
    from imreward.scoring import RewardScorer

    stacking = {name for name, model in models.items()
                if getattr(type(model), "collate_images", RewardScorer.collate_images) is RewardScorer.collate_images}
    return frozenset(slot for slot in set(slot_of.values()) - {PIL_IMAGE}
                     if all(name in stacking for name, other in slot_of.items() if other == slot))


@dataclass(frozen=True)
class DecodePlan:
    """What the decoding side needs (picklable, no model): per slot its preprocessing (None: the
    PIL image) and whether it is stacked; the pixel limit and accepted formats."""

    preprocessors: tuple[Callable | None, ...]
    stacked: tuple[bool, ...]
    max_pixels: int
    formats: frozenset[str] = WEB_FORMATS


def failure_reason(message: str) -> str:
    """A short kind for an image's load error message (for the summary's failures by reason)."""
    for reason, markers in (("undecodable", ("cannot decode", "cannot identify")), ("format", ("not accepted",)),
                            ("too_large", ("exceeds the limit", "decompression bomb", "too large")),
                            ("missing_image", ("no such file", "file is empty", "no image data", "cannot read"))):
        if any(marker in message for marker in markers):
            return reason
    return "image_error"


class Decoder:
    """Decodes rows into batches (see the module doc); one per process (archives stay open)."""

    def __init__(self, plan: DecodePlan) -> None:
        self.plan = plan
        self.reader = ImageReader()

    def _prepare(self, row: ShardRow) -> tuple[list, str | None, str | None]:
        """Per slot the prepared input (None where it failed), the error and its reason."""
        if row.error is not None or row.image is None:
            return [None] * len(self.plan.preprocessors), row.error or f"{row.key}: no image", row.reason or "no_image"
        where = row.image.describe()
        try:
            image = load_image(self.reader.read(row.image), self.plan.max_pixels, self.plan.formats)
        except Exception as error:  # a bad image fails its own row (Pillow raises many types)
            message = str(error)
            message = message if where in message else f"{where}: {message}"
            return [None] * len(self.plan.preprocessors), message, failure_reason(message)
        prepared, errors = [], []
        for preprocess in self.plan.preprocessors:
            try:
                prepared.append(image if preprocess is None else preprocess(image))
            except Exception as error:
                prepared.append(None)
                errors.append(f"{where}: {error}")
        return prepared, "; ".join(errors) or None, "preprocess" if errors else None

    def batch(self, items: list[tuple[str, int, bool, ShardRow]], source_columns: Iterable[str] = ()) -> dict:
        """One batch from (shard name, index, last, row) items."""
        prepared = [self._prepare(row) for _, _, _, row in items]
        batch: dict = {"shard": [shard for shard, _, _, _ in items],
                       "index": np.array([index for _, index, _, _ in items], dtype=np.int64),
                       "last": np.array([last for _, _, last, _ in items], dtype=bool),
                       "key": [row.key for _, _, _, row in items], "prompt": [row.prompt for *_, row in items],
                       "image": [row.image.describe() if row.image else None for *_, row in items],
                       "error": [error for _, error, _ in prepared], "reason": [reason for _, _, reason in prepared]}
        for column in source_columns:
            batch[f"col:{column}"] = [row.columns.get(column) for *_, row in items]
        for slot, stacked in enumerate(self.plan.stacked):
            values = [inputs[slot] for inputs, _, _ in prepared]
            if stacked:
                present = [value for value in values if value is not None]
                shape = tuple(present[0].shape) if present else (0,)
                pixels = np.zeros((len(values), *shape), dtype=np.float32)
                for position, value in enumerate(values):
                    if value is not None:
                        pixels[position] = value.numpy()
                batch[f"pixels:{slot}"] = pixels
                batch[f"ok:{slot}"] = np.array([value is not None for value in values], dtype=bool)
            else:
                batch[f"items:{slot}"] = values
        return batch


def shard_items(shard: Shard) -> Iterator[tuple[str, int, bool, ShardRow]]:
    """(shard name, index, last, row) for every row of ``shard``; an empty shard gives one marker
    item with index -1 (nothing to score), so its empty result is still written."""
    previous: ShardRow | None = None
    index = -1
    for index, row in enumerate(shard.rows()):
        if previous is not None:
            yield shard.name, index - 1, False, previous
        previous = row
    if previous is None:
        yield shard.name, -1, True, ShardRow("", None, None, error="empty shard", reason="empty_shard")
    else:
        yield shard.name, index, True, previous


def decoded_batches(shards: Iterable[Shard], decoder: Decoder, batch_size: int,
                    source_columns: tuple[str, ...] = ()) -> Iterator[dict]:
    """Batches of at most ``batch_size`` rows over ``shards`` in order (a batch may span shards)."""
    items: list = []
    for shard in shards:
        for item in shard_items(shard):
            items.append(item)
            if len(items) >= batch_size:
                yield decoder.batch(items, source_columns)
                items = []
    if items:
        yield decoder.batch(items, source_columns)
