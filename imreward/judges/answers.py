"""How a judge's answer becomes a score: a number in its text, UnifiedReward's "Final Score", the
probability of "Yes" among the first answer token's alternatives, or a pairwise verdict.

An answer that yields no score raises ``JudgeAnswerError`` holding the raw answer, never a default.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from imreward.errors import JudgeAnswerError

FINAL_SCORE = "Final Score:"
# UnifiedReward-2.0's pointwise sub-scores, as its alignment/coherence/style question asks for them.
SUB_SCORE = re.compile(r"(Alignment|Coherence|Style) Score \(1-5\):\s*(-?\d+(?:\.\d+)?)")
PAIRWISE_VERDICTS = {"Image 1 is better": 1, "Image 2 is better": 2, "Both images are equally good": 0}


@dataclass(frozen=True)
class Judgement:
    """One judged item: its score, the answer text, and what else the answer reported
    (``p_yes``/``p_no`` for the logprob rules, ``alignment``/``coherence``/``style`` sub-scores)."""

    score: float
    text: str
    details: dict[str, float] = field(default_factory=dict)


def number_in(text: str, pattern: str) -> float:
    """The first match of ``pattern`` in ``text`` as a float (its group 1 when it has groups)."""
    match = re.search(pattern, text)
    if match is None:
        raise JudgeAnswerError(f"no match of {pattern!r} in the answer", text)
    value = match.group(1) if match.re.groups else match.group(0)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise JudgeAnswerError(f"{value!r} (matched by {pattern!r}) is not a number", text) from None


def final_score(text: str) -> float:
    """UnifiedReward's reading of an answer: the first run of digits after the last "Final Score:"
    (the whole answer when it has none), as its scripts do (``split('Final Score:')[-1]`` then
    ``re.findall(r"\\d+")[0]``); so "Final Score: 3.5" reads 3. Where they fall back to 0, this raises."""
    digits = re.findall(r"\d+", text.split(FINAL_SCORE)[-1].strip())
    if not digits:
        raise JudgeAnswerError("no number after 'Final Score:'", text)
    return float(digits[0])


def sub_scores(text: str) -> dict[str, float]:
    """UnifiedReward-2.0's "Alignment/Coherence/Style Score (1-5): X" lines, keyed in lower case
    (the last of each, when repeated); empty when the answer has none."""
    return {name.lower(): float(value) for name, value in SUB_SCORE.findall(text)}


def pairwise_verdict(text: str) -> int:
    """1 or 2 for the image UnifiedReward's pairwise answer prefers, 0 for "equally good"; the
    verdict named last counts, as the conclusion closes the answer."""
    found = [(text.rfind(phrase), verdict) for phrase, verdict in PAIRWISE_VERDICTS.items() if phrase in text]
    if not found:
        raise JudgeAnswerError("no verdict ('Image 1 is better.', 'Image 2 is better.' or 'Both images are "
                               "equally good.') in the answer", text)
    return max(found)[1]


def yes_no_probabilities(top_logprobs: list[dict], yes_word: str = "yes", no_word: str = "no") -> tuple[float, float]:
    """(P(yes), P(no)) summed over the alternatives of one token whose text, stripped and lower-cased,
    is the word; an OpenAI ``top_logprobs`` entry is ``{"token": str, "logprob": float, ...}``."""
    p_yes = p_no = 0.0
    for alternative in top_logprobs:
        word = str(alternative.get("token", "")).strip().lower()
        logprob = alternative.get("logprob")
        if not isinstance(logprob, (int, float)) or math.isnan(logprob):
            continue
        if word == yes_word.lower():
            p_yes += math.exp(logprob)
        elif word == no_word.lower():
            p_no += math.exp(logprob)
    return p_yes, p_no


def judgement_from_logprobs(top_logprobs: list[dict], text: str, normalized: bool, yes_word: str = "yes",
                            no_word: str = "no") -> Judgement:
    """P(Yes) / (P(Yes) + P(No)) when ``normalized``, else P(Yes), from the first token's alternatives."""
    p_yes, p_no = yes_no_probabilities(top_logprobs, yes_word, no_word)
    tokens = ", ".join(f"{a.get('token')!r}: {a.get('logprob')}" for a in top_logprobs[:20])
    if p_yes + p_no == 0.0 and (normalized or not top_logprobs):
        raise JudgeAnswerError(f"neither {yes_word!r} nor {no_word!r} among the first token's top logprobs "
                               f"({tokens or 'none returned'})", text)
    score = p_yes / (p_yes + p_no) if normalized else p_yes
    return Judgement(score, text, {"p_yes": p_yes, "p_no": p_no})
