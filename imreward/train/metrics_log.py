"""Metrics to a JSON-lines file and TensorBoard (main process only). On resume, records after the
checkpoint's step are dropped from both, so a resumed log reads like an uninterrupted one; a last
line torn by a crash is dropped too (``imreward.jsonl_log``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from imreward.jsonl_log import append_jsonl_log, read_jsonl_log, rewrite_jsonl_log

logger = logging.getLogger("imreward.train")
METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    def __init__(self, output_dir: Path, enabled: bool, tensorboard: bool, resume_step: int | None) -> None:
        self.enabled = enabled
        self.path = output_dir / METRICS_FILE
        self.writer = None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            rewrite_jsonl_log(self.path, [record for record in read_jsonl_log(self.path)
                                          if record.get("step", 0) <= resume_step])
        elif resume_step is None:
            self.path.write_text("")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                logger.warning("tensorboard is not installed; metrics go to %s only", self.path)
            else:
                purge = resume_step + 1 if resume_step is not None else None
                self.writer = SummaryWriter(str(output_dir / "tensorboard"), purge_step=purge)

    def write(self, split: str, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        append_jsonl_log(self.path, {"split": split, "step": step, **metrics})
        if self.writer is not None:
            for name, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{split}/{name}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(output_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl``."""
    path = Path(output_dir) / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such metrics log")
    return read_jsonl_log(path)
