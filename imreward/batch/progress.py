"""Progress of a batch-scoring run and its JSON summary: rows/s, failed rows by reason, shards
done/total and (tqdm's) estimated time left from the shards this run has finished."""

from __future__ import annotations

import sys
import time
from collections import Counter

from tqdm.auto import tqdm


class Progress:
    def __init__(self, total_shards: int, skipped_shards: int, show: bool = True) -> None:
        self.total, self.skipped = total_shards, skipped_shards
        self.done = 0
        self.rows = 0
        self.failed: Counter[str] = Counter()
        self.started = time.monotonic()
        self.first: tuple[float, int] | None = None  # (seconds, rows) when the first batch was scored
        self.bar = tqdm(total=total_shards, initial=skipped_shards, unit="shard", desc="scoring", disable=not show,
                        file=sys.stderr, smoothing=0.1)

    def update(self, result: dict, completed: list[str]) -> None:
        """Count a scored batch and the shards it completed."""
        real = [index >= 0 for index in result["index"]]
        self.rows += int(sum(real))
        if self.first is None:
            self.first = (self.seconds, self.rows)
        self.failed.update(reason for reason, counted in zip(result["reason"], real) if reason and counted)
        self.done += len(completed)
        self.bar.update(len(completed))
        self.bar.set_postfix(rows_per_s=round(self.rows_per_s), failed=sum(self.failed.values()), refresh=False)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    @property
    def rows_per_s(self) -> float:
        return self.rows / max(self.seconds, 1e-9)

    def summary(self, **extra) -> dict:
        """The run's numbers; ``startup_seconds`` is the time to the first scored batch (Ray, actors,
        models) and ``warm_rows_per_s`` the rate after it."""
        self.bar.close()
        startup, early_rows = self.first or (self.seconds, self.rows)
        warm = (self.rows - early_rows) / (self.seconds - startup) if self.seconds > startup else None
        return {"shards_total": self.total, "shards_skipped": self.skipped, "shards_done": self.done,
                "shards_left": self.total - self.skipped - self.done, "rows": self.rows,
                "failed": sum(self.failed.values()), "failed_by_reason": dict(sorted(self.failed.items())),
                "seconds": round(self.seconds, 2), "rows_per_s": round(self.rows_per_s, 1),
                "startup_seconds": round(startup, 2), "warm_rows_per_s": round(warm, 1) if warm else None, **extra}
