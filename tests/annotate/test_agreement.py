import pytest

from imreward.annotate.agreement import agreement_report, kendalls_w, pairwise_agreement

from annotate.annotate_helpers import complete_assignment


def test_pairwise_agreement_counts_pairs_ordered_alike():
    assert pairwise_agreement([1, 2, 3], [1, 2, 3]) == 1.0
    assert pairwise_agreement([1, 2, 3], [3, 2, 1]) == 0.0
    assert pairwise_agreement([1, 2, 3], [1, 3, 2]) == pytest.approx(2 / 3)
    # A tie disagrees with a strict order of the same pair.
    assert pairwise_agreement([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / 3)


def test_kendalls_w_without_ties():
    assert kendalls_w([[1, 2, 3]] * 4) == pytest.approx(1.0)
    assert kendalls_w([[1, 2], [2, 1]]) == pytest.approx(0.0)
    # Rank sums 3, 7, 8 around a mean of 6: S = 14, W = 12 * 14 / (3² · (3³ - 3)).
    assert kendalls_w([[1, 2, 3], [1, 2, 3], [1, 3, 2]]) == pytest.approx(168 / 216)


def test_kendalls_w_corrects_for_ties():
    # Tied ranks become 1.5, 1.5, 3: S = 15.5, tie term 2³ - 2 = 6, W = 12·15.5 / (216 - 3·6).
    assert kendalls_w([[1, 1, 2], [1, 2, 3], [1, 2, 3]]) == pytest.approx(186 / 198)
    assert kendalls_w([[1, 1], [1, 1], [1, 1]]) is None


def test_report_covers_prompts_ranked_by_several_annotators(platform):
    platform.assign(["p1"], ["alice", "bob", "carol"])
    platform.assign(["p2"], ["alice", "bob"])
    complete_assignment(platform, "alice", "p1", "Animals", [1, 2, 3], [7, 5, 3])
    complete_assignment(platform, "bob", "p1", "Animals", [1, 2, 3], [7, 5, 3])
    complete_assignment(platform, "carol", "p1", "Animals", [1, 3, 2], [7, 3, 5])
    complete_assignment(platform, "alice", "p2", "Arts", [1, 2, 3], [7, 5, 3])
    complete_assignment(platform, "bob", "p2", "Arts", [3, 2, 1], [3, 5, 7])

    with platform.sessions() as session:
        report = agreement_report(session)

    by_prompt = {row.prompt_external_id: row for row in report.prompts}
    assert by_prompt["p1"].annotators == ["alice", "bob", "carol"]
    assert by_prompt["p1"].mean_pairwise == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert by_prompt["p1"].kendalls_w == pytest.approx(168 / 216)
    assert by_prompt["p2"].mean_pairwise == 0.0
    assert by_prompt["p2"].kendalls_w is None  # two annotators: pairwise agreement only
    assert report.annotator_pairs[("alice", "bob")] == pytest.approx(0.5)
