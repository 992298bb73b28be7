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
  - ``pickapic-*`` (Kirstain et al. 2023; PickScore's ``trainer/scripts/eval_preference_predictor.py``):
    rows without a human label are dropped (``has_label``), human ties are kept; agreement (both
    prefer the same image, or both tie) earns 1, a tie on exactly one side earns 0.5, the opposite
    choice 0; the mean over comparisons. The model ties when its two preference probabilities
    (the softmax of the two scores) differ by at most a threshold: ``0`` by default (only exactly
    equal scores tie), a given one, or ``auto``: the first best of 0, 0.1, ..., 1 on
    ``validation_unique``, as the script tunes it (``imreward.eval.benchmark_table``).

The 95% interval is a percentile bootstrap over prompts (``imreward.eval.metrics.ratio_interval``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imreward.eval.metrics import ratio_interval

TIE_RULES = ("drop", "paper")
# The thresholds PickScore's evaluation script tries on validation_unique, in its order.
TIE_THRESHOLDS = tuple(round(0.1 * step, 1) for step in range(11))


@dataclass(frozen=True)
class Benchmark:
    name: str
    dataset: str  # hub id (imreward.data.hub_datasets) or a local copy of that layout
    split: str
    paper: str  # whose rule "paper" applies
    paper_rule: str  # "drop", "concordance" or "half-credit"
    paper_average: str = "pairs"  # "pairs" (pooled) or "prompts" (mean of per-prompt accuracies)
    tuning_split: str | None = None  # where the paper tunes its model-tie threshold ("auto")
    protocol_source: str = ""  # the code or card whose definition the paper rule follows


PICKSCORE_SCRIPT = "yuvalkirstain/PickScore trainer/scripts/eval_preference_predictor.py"

BENCHMARKS = {
    "imagereward-test": Benchmark("imagereward-test", "THUDM/ImageRewardDB", "test",
                                  "ImageReward (Xu et al. 2023)", "drop",
                                  protocol_source="THUDM/ImageReward test.py"),
    "hpdv2-test": Benchmark("hpdv2-test", "ymhao/HPDv2", "test", "HPSv2 (Wu et al. 2023)", "concordance",
                            "prompts", protocol_source="tgxs002/HPSv2 evaluation.py (evaluate_rank)"),
    "pickapic-test": Benchmark("pickapic-test", "yuvalkirstain/pickapic_v2", "test",
                               "Pick-a-Pic (Kirstain et al. 2023)", "half-credit", tuning_split="validation_unique",
                               protocol_source=PICKSCORE_SCRIPT),
    "pickapic-test-unique": Benchmark("pickapic-test-unique", "yuvalkirstain/pickapic_v2", "test_unique",
                                      "Pick-a-Pic (Kirstain et al. 2023)", "half-credit",
                                      tuning_split="validation_unique", protocol_source=PICKSCORE_SCRIPT),
}

RULE_TEXT = {
    "drop": "human ties dropped, model ties wrong; pooled over pairs",
    "concordance": "all pairs; a tie on either side is not discordant; mean over prompts",
    "half-credit": "unlabelled rows dropped, human ties kept; 1 agree, 0.5 one-sided tie, 0 opposite; model tie "
                   "when its two softmax probabilities differ by at most the threshold; pooled over pairs",
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


def pair_credits(ranks: Sequence[int], scores: Sequence[float], rule: str,
                 tie_threshold: float = 0.0) -> tuple[float, int]:
    """(credit earned, pairs counted) of one prompt; lower rank = preferred, higher score = preferred.
    Under ``half-credit`` the model ties a pair when its softmax probabilities differ by at most
    ``tie_threshold`` (for two scores, |p_i - p_j| = tanh(|s_i - s_j| / 2))."""
    ranks, scores = np.asarray(ranks, dtype=float), np.asarray(scores, dtype=float)
    upper = np.triu(np.ones((ranks.size, ranks.size), dtype=bool), k=1)
    human = np.sign(ranks[None, :] - ranks[:, None])[upper]  # +1: image i preferred over j
    difference = (scores[:, None] - scores[None, :])[upper]
    model = np.sign(difference)
    if rule == "half-credit" and tie_threshold > 0:
        model = np.where(np.tanh(np.abs(difference) / 2) <= tie_threshold, 0.0, model)
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
                       seed: int = 0, tie_threshold: float = 0.0) -> Accuracy:
    """Accuracy over prompts with its bootstrap interval (resampling prompts)."""
    terms = [pair_credits(ranks, values, rule, tie_threshold)
             for ranks, values in zip(rankings, scores, strict=True)]
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


def tune_tie_threshold(rankings: Sequence[Sequence[int]], scores: Sequence[Sequence[float]],
                       thresholds: Sequence[float] = TIE_THRESHOLDS) -> tuple[float, dict[str, float]]:
    """(the threshold with the best half-credit accuracy, the first one on a draw; accuracy of each),
    as PickScore's script picks it on ``validation_unique`` (``np.argmax`` over its list)."""
    accuracies = {}
    for threshold in thresholds:
        terms = [pair_credits(ranks, values, "half-credit", threshold)
                 for ranks, values in zip(rankings, scores, strict=True)]
        counted = sum(count for _, count in terms)
        accuracies[f"{threshold:g}"] = sum(credit for credit, _ in terms) / counted if counted else float("nan")
    if not any(value == value for value in accuracies.values()):
        raise ValueError("no comparison to tune the tie threshold on")
    best = int(np.nanargmax(list(accuracies.values())))
    return float(thresholds[best]), accuracies
