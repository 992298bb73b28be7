"""The public preference benchmarks by name, and preference accuracy under each tie rule.

A benchmark is a dataset id and split (read with ``imreward.data`` under the evaluation policy).
Papers count ties differently, so every table names its rule:

- ``drop`` (the default for every benchmark): pairs the humans tie are left out; a pair the model
  scores equal counts as wrong. Accuracy = agreeing pairs / compared pairs, pooled over prompts.
- ``paper``: each benchmark's own paper's rule (``Benchmark.paper_rule``):
  - ``imagereward-test`` (Xu et al. 2023): as ``drop`` (only pairs with different ranks are compared).
  - ``hpdv2-test`` (Wu et al. 2023, HPSv2's ``evaluate_rank``): per prompt, 1 - discordant pairs /
    all pairs, where a human tie is not discordant; averaged over prompts. (HPSv2 ranks the scores
    with ``argsort``, which breaks exactly equal scores by position; here they are not discordant.)
  - ``pickapic-*`` (Kirstain et al. 2023): human ties are kept; agreement (both prefer the same
    image, or both tie) earns 1, a tie on exactly one side earns 0.5, the opposite choice 0. The
    paper tunes a probability margin under which PickScore calls a tie; here only exactly equal
    scores are a model tie.

The 95% interval is a percentile bootstrap over prompts (``imreward.eval.metrics.ratio_interval``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imreward.eval.metrics import ratio_interval

TIE_RULES = ("drop", "paper")


@dataclass(frozen=True)
class Benchmark:
    name: str
    dataset: str  # hub id (imreward.data.hub_datasets) or a local copy of that layout
    split: str
    paper: str  # whose rule "paper" applies
    paper_rule: str  # "drop", "concordance" or "half-credit"
    paper_average: str = "pairs"  # "pairs" (pooled) or "prompts" (mean of per-prompt accuracies)


BENCHMARKS = {
    "imagereward-test": Benchmark("imagereward-test", "THUDM/ImageRewardDB", "test",
                                  "ImageReward (Xu et al. 2023)", "drop"),
    "hpdv2-test": Benchmark("hpdv2-test", "ymhao/HPDv2", "test", "HPSv2 (Wu et al. 2023)", "concordance",
                            "prompts"),
    "pickapic-test": Benchmark("pickapic-test", "yuvalkirstain/pickapic_v2", "test",
                               "Pick-a-Pic (Kirstain et al. 2023)", "half-credit"),
    "pickapic-test-unique": Benchmark("pickapic-test-unique", "yuvalkirstain/pickapic_v2", "test_unique",
                                      "Pick-a-Pic (Kirstain et al. 2023)", "half-credit"),
}

RULE_TEXT = {
    "drop": "human ties dropped, model ties wrong; pooled over pairs",
    "concordance": "all pairs; a tie on either side is not discordant; mean over prompts",
    "half-credit": "human ties kept; 1 agree, 0.5 one-sided tie, 0 opposite; pooled over pairs",
}


def resolve_benchmarks(names: Sequence[str]) -> list[Benchmark]:
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        raise ValueError(f"unknown benchmarks {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    return [BENCHMARKS[name] for name in names]


def rule_of(benchmark: Benchmark, tie_rule: str) -> tuple[str, str]:
    """(rule, average) a benchmark is scored with under ``tie_rule``."""
    if tie_rule not in TIE_RULES:
        raise ValueError(f"tie rule must be one of {TIE_RULES}, got {tie_rule!r}")
    return (benchmark.paper_rule, benchmark.paper_average) if tie_rule == "paper" else ("drop", "pairs")


def pair_credits(ranks: Sequence[int], scores: Sequence[float], rule: str) -> tuple[float, int]:
    """(credit earned, pairs counted) of one prompt; lower rank = preferred, higher score = preferred."""
    ranks, scores = np.asarray(ranks, dtype=float), np.asarray(scores, dtype=float)
    upper = np.triu(np.ones((ranks.size, ranks.size), dtype=bool), k=1)
    human = np.sign(ranks[None, :] - ranks[:, None])[upper]  # +1: image i preferred over j
    model = np.sign(scores[:, None] - scores[None, :])[upper]
    if rule == "drop":
        compared = human != 0
        return float((model[compared] == human[compared]).sum()), int(compared.sum())
    if rule == "concordance":
        return float((human * model >= 0).sum()), int(human.size)
    if rule == "half-credit":
        credit = np.where(human == model, 1.0, np.where((human == 0) | (model == 0), 0.5, 0.0))
        return float(credit.sum()), int(human.size)
    raise ValueError(f"unknown rule {rule!r}")


@dataclass(frozen=True)
class Accuracy:
    value: float
    low: float
    high: float
    pairs: int
    prompts: int


def benchmark_accuracy(rankings: Sequence[Sequence[int]], scores: Sequence[Sequence[float]], rule: str,
                       average: str = "pairs", n_resamples: int = 1000, confidence: float = 0.95,
                       seed: int = 0) -> Accuracy:
    """Accuracy over prompts with its bootstrap interval (resampling prompts)."""
    terms = [pair_credits(ranks, values, rule) for ranks, values in zip(rankings, scores, strict=True)]
    terms = [(credit, count) for credit, count in terms if count]
    if not terms:
        return Accuracy(float("nan"), float("nan"), float("nan"), 0, 0)
    credits = np.array([credit for credit, _ in terms])
    counts = np.array([count for _, count in terms], dtype=float)
    if average == "prompts":
        credits, counts = credits / counts, np.ones_like(counts)
    low, high = ratio_interval(credits, counts, n_resamples, confidence, seed)
    pairs = sum(count for _, count in terms)
    return Accuracy(float(credits.sum() / counts.sum()), low, high, pairs, len(terms))
