"""Agreement between annotators who ranked the same prompt."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import combinations
from statistics import mean

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from .models import Assignment, ImageLabel


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def pairwise_agreement(ranks_a: list[int], ranks_b: list[int]) -> float:
    """Share of image pairs that two rankings order the same way (ties count as an order)."""
    pairs = list(combinations(range(len(ranks_a)), 2))
    same = sum(
        _sign(ranks_a[i] - ranks_a[j]) == _sign(ranks_b[i] - ranks_b[j]) for i, j in pairs
    )
    return same / len(pairs)


def _average_ranks(ranks: list[int]) -> list[float]:
    """Turn tiered ranks (ties = equal numbers) into ranks 1..n, ties sharing their mean."""
    order = sorted(set(ranks))
    sizes = Counter(ranks)
    start, average = 1, {}
    for tier in order:
        average[tier] = start + (sizes[tier] - 1) / 2
        start += sizes[tier]
    return [average[rank] for rank in ranks]


def kendalls_w(rankings: list[list[int]]) -> float | None:
    """Kendall's coefficient of concordance with the correction for ties.

    `rankings` holds one list of ranks per annotator, all over the same images.
    Returns None when undefined (fewer than two images, or every annotator tied all).
    """
    m, n = len(rankings), len(rankings[0])
    if n < 2:
        return None
    averaged = [_average_ranks(ranks) for ranks in rankings]
    totals = [sum(column) for column in zip(*averaged)]
    mean_total = m * (n + 1) / 2
    spread = sum((total - mean_total) ** 2 for total in totals)
    ties = sum(t**3 - t for ranks in rankings for t in Counter(ranks).values())
    denominator = m**2 * (n**3 - n) - m * ties
    return None if denominator == 0 else 12 * spread / denominator


@dataclass(frozen=True)
class PromptAgreement:
    prompt_external_id: str
    annotators: list[str]
    mean_pairwise: float
    kendalls_w: float | None


@dataclass(frozen=True)
class AgreementReport:
    prompts: list[PromptAgreement]
    annotator_pairs: dict[tuple[str, str], float]

    @property
    def overall_pairwise(self) -> float | None:
        return mean(p.mean_pairwise for p in self.prompts) if self.prompts else None


def completed_rankings(session: Session) -> dict[str, dict[str, list[int]]]:
    """Per prompt external id, each annotator's ranks in image order (completed, kept prompts)."""
    assignments = session.scalars(
        select(Assignment)
        .where(Assignment.completed_at.is_not(None))
        .options(
            selectinload(Assignment.prompt),
            selectinload(Assignment.user),
            selectinload(Assignment.image_labels).selectinload(ImageLabel.image),
        )
    ).all()
    rankings: dict[str, dict[str, list[int]]] = defaultdict(dict)
    for assignment in assignments:
        if assignment.dropped:
            continue
        labels = sorted(assignment.image_labels, key=lambda label: label.image.position)
        rankings[assignment.prompt.external_id][assignment.user.username] = [
            label.rank for label in labels
        ]
    return rankings


def agreement_report(session: Session) -> AgreementReport:
    prompts, by_pair = [], defaultdict(list)
    for external_id, by_user in sorted(completed_rankings(session).items()):
        if len(by_user) < 2:
            continue
        names = sorted(by_user)
        scores = []
        for a, b in combinations(names, 2):
            score = pairwise_agreement(by_user[a], by_user[b])
            scores.append(score)
            by_pair[(a, b)].append(score)
        w = kendalls_w([by_user[name] for name in names]) if len(names) >= 3 else None
        prompts.append(PromptAgreement(external_id, names, mean(scores), w))
    return AgreementReport(prompts, {pair: mean(s) for pair, s in sorted(by_pair.items())})
