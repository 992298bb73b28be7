"""``--engine local``: one process scores, DataLoader workers read and decode whole shards.

Worker ``i`` of ``W`` reads shards ``i, i + W, ...`` start to end and yields decoded batches;
the main process scores each batch on its device and hands the results to the shard writer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from imreward.batch.decode import DecodePlan, Decoder, decoded_batches
from imreward.data.shards import Shard


class ShardStream(IterableDataset):
    """Decoded batches of this worker's share of ``shards``."""

    def __init__(self, shards: list[Shard], plan: DecodePlan, batch_size: int, source_columns: tuple[str, ...]) -> None:
        self.shards, self.plan, self.batch_size, self.source_columns = shards, plan, batch_size, source_columns

    def __iter__(self) -> Iterator[dict]:
        worker = get_worker_info()
        mine = self.shards if worker is None else self.shards[worker.id::worker.num_workers]
        yield from decoded_batches(mine, Decoder(self.plan), self.batch_size, self.source_columns)


def _as_is(batch: dict) -> dict:
    return batch


def run_local(shards: list[Shard], score: Callable[[dict], dict], plan: DecodePlan, batch_size: int,
              num_workers: int, source_columns: tuple[str, ...] = ()) -> Iterator[dict]:
    """Scored batches of ``shards`` (``score`` is ``BatchScorer.score``)."""
    workers = min(num_workers, len(shards))
    loader = DataLoader(ShardStream(shards, plan, batch_size, source_columns), batch_size=None, num_workers=workers,
                        collate_fn=_as_is, prefetch_factor=4 if workers else None)
    for batch in loader:
        yield score(batch)
