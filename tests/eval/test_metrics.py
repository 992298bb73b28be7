import json
import math
from pathlib import Path

import numpy as np
import pytest

from imreward.eval.metrics import (
    evaluate,
    filter_at_k,
    kendall_correlation,
    pair_counts,
    preference_accuracy,
    ratio_interval,
    recall_at_k,
    spearman_correlation,
)

TEST_JSON = Path("/work/shared/reference-data/test.json")


# ---- hand-worked cases ------------------------------------------------------------------------

def test_preference_accuracy_counts_human_ties_out_and_model_ties_wrong():
    # prompt 1: pairs with different human ranks are (0,1) (0,2) (0,3) (1,3) (2,3); (1,2) is a human tie.
    # (1,3) is a model tie (0.5 vs 0.5): wrong. The other four are ordered as the humans order them.
    # prompt 2: one pair, ordered the wrong way.
    rankings = [[1, 2, 2, 3], [2, 1]]
    scores = [[0.9, 0.5, 0.7, 0.5], [0.3, 0.1]]
    correct, total = pair_counts(rankings, scores)
    assert correct.tolist() == [4, 0]
    assert total.tolist() == [5, 1]
    assert preference_accuracy(rankings, scores) == pytest.approx(4 / 6)


def test_recall_at_k_with_human_ties_model_ties_and_large_k():
    # best human rank 1 is shared by images 0 and 1; the model puts image 2 (rank 2) on top
    assert recall_at_k([[1, 1, 2, 3]], [[0.5, 0.5, 0.9, 0.1]], 1) == 0.0
    # top 2 = image 2 plus one of the tied images 0/1, both of which are best: a sure hit
    assert recall_at_k([[1, 1, 2, 3]], [[0.5, 0.5, 0.9, 0.1]], 2) == 1.0
    # the best image ties with two others for the one remaining top-2 slot: chance 1/3
    assert recall_at_k([[1, 2, 3, 4]], [[0.2, 0.2, 0.2, 0.9]], 2) == pytest.approx(1 / 3)
    # k beyond the list length takes every image
    assert recall_at_k([[1, 2, 3]], [[0.1, 0.2, 0.3]], 5) == 1.0
    # averaged over prompts: hit (1.0) and miss (0.0)
    assert recall_at_k([[1, 2], [1, 2]], [[0.9, 0.1], [0.1, 0.9]], 1) == 0.5


def test_filter_at_k_with_human_ties_model_ties_and_large_k():
    # worst human rank 3 is shared by images 2 and 3; the model's lowest is image 1 (rank 2)
    assert filter_at_k([[1, 2, 3, 3]], [[0.9, 0.1, 0.5, 0.2]], 1) == 0.0
    assert filter_at_k([[1, 2, 3, 3]], [[0.9, 0.1, 0.5, 0.2]], 2) == 1.0
    # the worst image ties with another for the lowest score: chance 1/2
    assert filter_at_k([[1, 2, 3]], [[0.5, 0.2, 0.2]], 1) == pytest.approx(0.5)
    assert filter_at_k([[1, 2, 3]], [[0.5, 0.2, 0.2]], 7) == 1.0


def test_spearman_per_prompt_averaged_skipping_undefined_prompts():
    # prompt 1: preference ranks (3, 2, 1) vs score ranks (3, 1, 2), d = (0, 1, -1): rho = 1 - 6*2/(3*8) = 0.5
    # prompt 2: reversed, rho = -1; prompt 3: constant scores, undefined and left out
    rankings = [[1, 2, 3], [1, 2], [1, 2, 3]]
    scores = [[3.0, 1.0, 2.0], [0.0, 1.0], [0.4, 0.4, 0.4]]
    assert spearman_correlation(rankings, scores) == pytest.approx((0.5 - 1.0) / 2)


def test_kendall_tau_b_with_human_ties():
    # (1,2,3) vs scores (3,1,2): 2 concordant, 1 discordant pair -> tau = 1/3
    assert kendall_correlation([[1, 2, 3]], [[3.0, 1.0, 2.0]]) == pytest.approx(1 / 3)
    # human tie between images 0 and 1: tau-b = (2 - 0) / sqrt((3 - 1) * (3 - 0))
    assert kendall_correlation([[1, 1, 2]], [[0.3, 0.2, 0.1]]) == pytest.approx(2 / math.sqrt(6))


@pytest.mark.parametrize("function", [preference_accuracy, spearman_correlation, kendall_correlation])
def test_bad_inputs_raise(function):
    with pytest.raises(ValueError, match="2 ranks but 3 scores"):
        function([[1, 2]], [[0.1, 0.2, 0.3]])
    with pytest.raises(ValueError, match="prompts"):
        function([[1, 2]], [[0.1, 0.2], [0.3, 0.4]])
    with pytest.raises(ValueError, match="finite"):
        function([[1, 2]], [[0.1, float("nan")]])


def test_k_must_be_positive_and_accuracy_needs_a_pair():
    with pytest.raises(ValueError, match="k must be at least 1"):
        recall_at_k([[1, 2]], [[0.1, 0.2]], 0)
    with pytest.raises(ValueError, match="different human ranks"):
        preference_accuracy([[1, 1]], [[0.1, 0.2]])


# ---- synthetic data with a known true ordering --------------------------------------------------

def synthetic_set(prompts: int = 300, seed: int = 1):
    """Human ranks from a hidden quality (rounded, so some images tie)."""
    rng = np.random.default_rng(seed)
    quality = [rng.normal(size=rng.integers(4, 9)) for _ in range(prompts)]
    rankings = []
    for q in quality:
        levels = np.round(q * 2) / 2
        rankings.append([int((levels > level).sum()) + 1 for level in levels])
    return quality, rankings, rng


def test_known_ordering_gives_one_and_zero_and_random_is_chance():
    quality, rankings, rng = synthetic_set()
    following = evaluate(rankings, [list(q) for q in quality], n_resamples=200)
    reverse = evaluate(rankings, [list(-q) for q in quality], n_resamples=200)
    random = evaluate(rankings, [list(rng.random(q.size)) for q in quality], n_resamples=500)
    assert following["accuracy"].value == 1.0
    assert following["recall@1"].value == 1.0 and following["filter@1"].value == 1.0
    assert reverse["accuracy"].value == 0.0
    assert reverse["recall@1"].value == 0.0
    assert following["spearman"].value > 0.9 and reverse["spearman"].value < -0.9
    assert random["accuracy"].low <= 0.5 <= random["accuracy"].high
    assert abs(random["accuracy"].value - 0.5) < 0.05
    assert random["accuracy"].high - random["accuracy"].low < 0.1


def test_bootstrap_interval_brackets_the_value_and_is_reproducible():
    numerators = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 2.0])
    denominators = np.array([5.0, 5.0, 5.0, 5.0, 5.0, 5.0])
    low, high = ratio_interval(numerators, denominators, n_resamples=400, seed=3)
    assert low < numerators.sum() / denominators.sum() < high
    assert (low, high) == ratio_interval(numerators, denominators, n_resamples=400, seed=3)


@pytest.mark.skipif(not TEST_JSON.is_file(), reason="reference test.json not available")
def test_reference_test_set_human_order_gives_accuracy_one_over_6399_pairs():
    records = json.loads(TEST_JSON.read_text())
    rankings = [record["ranking"] for record in records]
    follows_humans = [[-rank for rank in ranking] for ranking in rankings]
    correct, total = pair_counts(rankings, follows_humans)
    assert len(records) == 466
    assert total.sum() == 6399
    assert correct.sum() == 6399
    assert preference_accuracy(rankings, follows_humans) == 1.0
