"""Evaluation data: the shared readers of ``imreward.data`` under the evaluation policy (a prompt
with a missing image is skipped whole, so every scorer sees the same complete prompts).

Any DATA argument of ``imreward.data.load_preference_data`` works: a hub dataset id, a local copy of
ImageRewardDB / HPD v2 / Pick-a-Pic, ImageRewardDB rows as ``.parquet``/``.json``/``.jsonl``, or the
original ``test.json`` layout (``[{"id", "prompt", "generations", "ranking"}]``).
"""

from __future__ import annotations

import os
from typing import Any

from imreward.data.loading import load_preference_data
from imreward.data.records import PromptRecord

def read_evaluation_data(path: str | os.PathLike, image_root: str | os.PathLike | None = None,
                         split: str = "test") -> tuple[list[PromptRecord], list[dict[str, Any]]]:
    """(prompts with all their images present, one record per skipped prompt naming its missing images)."""
    records, stats = load_preference_data(path, split, image_root, policy="eval")
    return records, stats.skipped


def read_ranked_prompts(path: str | os.PathLike, image_root: str | os.PathLike | None = None,
                        split: str = "test") -> list[PromptRecord]:
    """The complete prompts of ``read_evaluation_data``."""
    return read_evaluation_data(path, image_root, split)[0]
