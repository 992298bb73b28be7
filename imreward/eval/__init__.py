"""Evaluation of reward models against human rankings (the paper's Table 3) and the generator
benchmark (Table 1). Metrics are pure functions of per-prompt rankings and scores."""

from imreward.eval.metrics import (
    MetricResult,
    evaluate,
    filter_at_k,
    kendall_correlation,
    preference_accuracy,
    recall_at_k,
    spearman_correlation,
)

__all__ = ["MetricResult", "evaluate", "filter_at_k", "kendall_correlation", "preference_accuracy", "recall_at_k",
           "spearman_correlation"]
