"""Agreement between a scorer and human rankings, per prompt and pooled, with bootstrap intervals.

Every function takes ``rankings`` and ``scores``: one list per prompt, of equal length within a
prompt. Human ranks follow the test set: 1 = best, equal numbers are ties. Scores: higher = better.

A pair the model scores equal counts as wrong (as in the original evaluation). For top k and
bottom k, images the model scores equal are ordered at random and a prompt counts with the
probability of a hit, so a scorer that repeats the human ties loses nothing and a constant scorer
gets chance level.
Each metric is a ratio of per-prompt sums, which the bootstrap resamples over prompts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

Groups = Sequence[Sequence[float]]


@dataclass(frozen=True)
class MetricResult:
    """A metric's value over all prompts and its bootstrap confidence interval."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _groups(rankings: Groups, scores: Groups) -> list[tuple[np.ndarray, np.ndarray]]:
    if len(rankings) != len(scores):
        raise ValueError(f"got rankings for {len(rankings)} prompts but scores for {len(scores)}")
    groups = []
    for index, (ranks, values) in enumerate(zip(rankings, scores)):
        ranks, values = np.asarray(ranks, dtype=float), np.asarray(values, dtype=float)
        if ranks.shape != values.shape or ranks.ndim != 1:
            raise ValueError(f"prompt {index}: {ranks.size} ranks but {values.size} scores")
        if not (np.isfinite(ranks).all() and np.isfinite(values).all()):
            raise ValueError(f"prompt {index}: ranks and scores must be finite numbers")
        groups.append((ranks, values))
    if not groups:
        raise ValueError("no prompts to evaluate")
    return groups


def pair_counts(rankings: Groups, scores: Groups,
                sources: Sequence[Sequence[str]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per prompt: (pairs ordered as the humans order them, pairs with different human ranks).

    With ``sources`` (a label per image, e.g. its generator), only pairs of images with different
    labels count.
    """
    correct, total = [], []
    for index, (ranks, values) in enumerate(_groups(rankings, scores)):
        upper = np.triu(np.ones((ranks.size, ranks.size), dtype=bool), k=1)
        if sources is not None:
            labels = np.asarray(sources[index])
            upper &= labels[:, None] != labels[None, :]
        human = np.sign(ranks[None, :] - ranks[:, None])  # +1 where i is ranked better than j
        model = np.sign(values[:, None] - values[None, :])  # +1 where i scores higher than j
        compared = upper & (human != 0)
        correct.append(int((compared & (model == human)).sum()))
        total.append(int(compared.sum()))
    return np.array(correct), np.array(total)


def preference_accuracy(rankings: Groups, scores: Groups) -> float:
    """Share of human-ordered pairs, pooled over prompts, that the scores order the same way."""
    correct, total = pair_counts(rankings, scores)
    if total.sum() == 0:
        raise ValueError("no pair of images has different human ranks")
    return float(correct.sum() / total.sum())


def _chance_in_top_k(values: np.ndarray, target: np.ndarray, k: int) -> float:
    """Probability that a ``target`` image is among the k highest ``values``, ties broken at random."""
    if k >= values.size:
        return float(target.any())
    threshold = np.sort(values)[::-1][k - 1]
    above, boundary = values > threshold, values == threshold
    if (target & above).any():
        return 1.0
    slots, tied, tied_targets = k - int(above.sum()), int(boundary.sum()), int((target & boundary).sum())
    return 1.0 - math.comb(tied - tied_targets, slots) / math.comb(tied, slots)


def _extreme_hits(rankings: Groups, scores: Groups, k: int, best: bool) -> np.ndarray:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    hits = []
    for ranks, values in _groups(rankings, scores):
        if best:
            hits.append(_chance_in_top_k(values, ranks == ranks.min(), k))
        else:
            hits.append(_chance_in_top_k(-values, ranks == ranks.max(), k))
    return np.array(hits)


def recall_at_k(rankings: Groups, scores: Groups, k: int) -> float:
    """Share of prompts where an image with the best human rank is among the model's top k."""
    return float(_extreme_hits(rankings, scores, k, best=True).mean())


def filter_at_k(rankings: Groups, scores: Groups, k: int) -> float:
    """Share of prompts where an image with the worst human rank is among the model's bottom k."""
    return float(_extreme_hits(rankings, scores, k, best=False).mean())


def per_prompt_correlation(rankings: Groups, scores: Groups, method: str) -> np.ndarray:
    """Spearman rho or Kendall tau-b between human preference and scores, one per prompt;
    NaN where either side is constant (the correlation is undefined)."""
    from scipy import stats

    functions = {"spearman": stats.spearmanr, "kendall": stats.kendalltau}
    if method not in functions:
        raise ValueError(f"method must be one of {sorted(functions)}, got {method!r}")
    values = []
    for ranks, model in _groups(rankings, scores):
        constant = np.ptp(ranks) == 0 or np.ptp(model) == 0
        values.append(np.nan if constant else float(functions[method](-ranks, model).statistic))
    return np.array(values)


def spearman_correlation(rankings: Groups, scores: Groups) -> float:
    """Spearman rho per prompt, averaged over the prompts where it is defined."""
    return float(np.nanmean(per_prompt_correlation(rankings, scores, "spearman")))


def kendall_correlation(rankings: Groups, scores: Groups) -> float:
    """Kendall tau-b per prompt, averaged over the prompts where it is defined."""
    return float(np.nanmean(per_prompt_correlation(rankings, scores, "kendall")))


def ratio_interval(numerators: np.ndarray, denominators: np.ndarray, n_resamples: int = 1000,
                   confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of sum(numerators) / sum(denominators), resampling prompts."""
    from scipy import stats

    if numerators.size < 2:
        return float("nan"), float("nan")

    def ratio(num: np.ndarray, den: np.ndarray, axis: int = -1) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return num.sum(axis=axis) / den.sum(axis=axis)

    result = stats.bootstrap((numerators, denominators), ratio, paired=True, vectorized=True,
                             n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                             rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def per_prompt_terms(rankings: Groups, scores: Groups, ks: Sequence[int] = (1, 2, 4)
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(numerator, denominator) per prompt of every metric; each metric is their sums' ratio."""
    ones = np.ones(len(rankings))
    terms = {"accuracy": pair_counts(rankings, scores)}
    for k in ks:
        terms[f"recall@{k}"] = (_extreme_hits(rankings, scores, k, best=True), ones)
    for k in ks:
        terms[f"filter@{k}"] = (_extreme_hits(rankings, scores, k, best=False), ones)
    for method in ("spearman", "kendall"):
        values = per_prompt_correlation(rankings, scores, method)
        defined = np.isfinite(values)
        terms[method] = (np.where(defined, values, 0.0), defined.astype(float))
    return terms


def evaluate(rankings: Groups, scores: Groups, ks: Sequence[int] = (1, 2, 4), n_resamples: int = 1000,
             confidence: float = 0.95, seed: int = 0) -> dict[str, MetricResult]:
    """Every metric with its bootstrap interval: keys ``accuracy``, ``recall@k``, ``filter@k``,
    ``spearman``, ``kendall``."""
    results = {}
    for name, (numerators, denominators) in per_prompt_terms(rankings, scores, ks).items():
        value = float(numerators.sum() / denominators.sum()) if denominators.sum() else float("nan")
        low, high = ratio_interval(numerators, denominators, n_resamples, confidence, seed)
        results[name] = MetricResult(value, low, high)
    return results
