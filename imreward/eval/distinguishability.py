"""Distinguishability (ImageReward paper, Sec. 5): per prompt, how often a metric orders two images
from different generators as humans did.

Human labels file (``--human-labels``): a JSON list, or JSON lines, of one record per prompt::

    {"id": "12", "ranking": {"sd-1.4/12_0.png": 1, "dalle-2/12_1.png": 2, "vqgan/12_0.jpg": 2}}

``id`` is the prompt id of ``benchmark-prompts.json``; ``ranking`` maps ``<generator>/<file name>``
(the image's path under the generations folder) to its human rank, 1 = best, equal ranks = a tie.
Only pairs of images from different generators with different human ranks count; a pair the
metric scores equal counts as wrong (as in ``imreward eval``). Per metric: the pooled share of
agreeing pairs with a bootstrap interval over prompts, and the share per prompt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


from imreward.eval.metrics import pair_counts, ratio_interval


def read_human_labels(path: str | Path) -> dict[str, dict[str, float]]:
    """{prompt id: {"<generator>/<file>": human rank}} from a JSON list or JSON-lines file."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        stripped = text.lstrip()
        records = json.loads(text) if stripped.startswith("[") else [json.loads(line) for line in text.splitlines()
                                                                     if line.strip()]
        labels = {str(record["id"]): {str(name): float(rank) for name, rank in record["ranking"].items()}
                  for record in records}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{path}: expected records {{\"id\": prompt id, \"ranking\": {{\"<generator>/<file>\": "
                         f"rank}}}} as a JSON list or JSON lines ({error!r})") from error
    for prompt_id, ranking in labels.items():
        if bad := [name for name in ranking if name.count("/") != 1]:
            raise ValueError(f"{path}: prompt {prompt_id}: image {bad[0]!r} is not named <generator>/<file name>")
    return labels


def distinguishability(labels: Mapping[str, Mapping[str, float]], scores: Mapping[str, float],
                       n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Agreement of one metric's per-image ``scores`` ({"<generator>/<file>": score}) with ``labels``.

    Images without a score (missing or unreadable) are left out; prompts with no pair left are skipped.
    """
    rankings, values, sources, ids = [], [], [], []
    for prompt_id, ranking in labels.items():
        names = [name for name in ranking if name in scores]
        if len(names) >= 2:
            rankings.append([ranking[name] for name in names])
            values.append([scores[name] for name in names])
            sources.append([name.split("/")[0] for name in names])
            ids.append(prompt_id)
    if not rankings:
        return {"value": float("nan"), "low": float("nan"), "high": float("nan"), "pairs": 0, "prompts": 0,
                "per_prompt": {}}
    correct, total = pair_counts(rankings, values, sources)
    kept = total > 0
    low, high = ratio_interval(correct[kept].astype(float), total[kept].astype(float), n_resamples, 0.95, seed)
    return {"value": float(correct.sum() / total.sum()) if total.sum() else float("nan"), "low": low, "high": high,
            "pairs": int(total.sum()), "prompts": int(kept.sum()),
            "per_prompt": {prompt_id: float(c / t) for prompt_id, c, t, k in zip(ids, correct, total, kept) if k}}
