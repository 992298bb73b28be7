"""Scoring a ranked evaluation set with several scorers through the score cache, and the metrics.

Prompts with a missing or unreadable image are skipped for every scorer, so all scorers are
compared on the same prompts (the readers' evaluation policy skips missing images; this module
skips images that fail to decode); the result lists each skipped prompt with the reason. A
prompt whose images all tie (kept by readers for the benchmarks' tie rules) has no pair to
compare and is skipped here too.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imreward.data.records import ImageReader, ImageSource, PromptRecord
from imreward.eval.cache import ScoreCache
from imreward.eval.metrics import evaluate, pair_counts

# Images read and scored per call, so archives' images are never all in memory at once and each
# finished chunk is in the cache (an interrupted run resumes from there).
SCORING_CHUNK = 512


def scoring_input(image: str | os.PathLike | ImageSource, reader: ImageReader) -> str | os.PathLike | bytes:
    """What a scorer reads for an image: a file's path, or the bytes of an archive member."""
    if isinstance(image, ImageSource):
        return image.path if image.member is None and image.data is None else reader.read(image)
    return image


def cached_scores(get_scorer: Callable[[], Any], scorer_name: str, images: Sequence[Path | ImageSource],
                  prompts: Sequence[str],
                  cache: ScoreCache, batch_size: int = 32,
                  progress: bool = False) -> tuple[list[float | None], dict[int, str]]:
    """Scores of (image, prompt) pairs, computing only those not in ``cache``; ``get_scorer()`` is
    called (the model loaded) only when some pair is not cached.

    Returns:
        (one score per pair, ``None`` for images that failed to load; {pair index: error}).
    """
    scores = cache.lookup(scorer_name, images, prompts)
    todo = [i for i, score in enumerate(scores) if score is None]
    errors: dict[int, str] = {}
    reader = ImageReader()
    scorer = get_scorer() if todo else None
    for start in range(0, len(todo), SCORING_CHUNK):
        chunk = todo[start:start + SCORING_CHUNK]

        def record(index: int, error: Exception, chunk: list[int] = chunk) -> None:
            errors[chunk[index]] = f"{type(error).__name__}: {error}"

        inputs = []
        for i in chunk:
            try:
                inputs.append(scoring_input(images[i], reader))
            except (OSError, KeyError, ValueError) as error:
                inputs.append(b"")  # scored as an undecodable image, so on_error reports it
                errors[i] = f"{type(error).__name__}: {error}"
        fresh = scorer.score_batch([prompts[i] for i in chunk], inputs, batch_size=batch_size,
                                   progress=progress, on_error=record)
        done = [(i, value) for i, value in zip(chunk, fresh) if value is not None and i not in errors]
        cache.store(scorer_name, [images[i] for i, _ in done], [prompts[i] for i, _ in done], [v for _, v in done])
        for i, value in done:
            scores[i] = value
    return scores, errors


@dataclass
class EvaluationRun:
    """Everything a report needs: kept prompts, per-scorer scores and metrics, skipped prompts."""

    prompts: list[PromptRecord]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, list[list[float]]] = field(default_factory=dict)
    metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    cache_stats: dict[str, dict[str, int]] = field(default_factory=dict)
    total_prompts: int = 0
    pairs: int = 0
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class PromptScores:
    """Every scorer's scores of a prompt set, through the score cache (``score_prompts``)."""

    scores: dict[str, list[list[float]]]  # spec -> for each kept prompt, its images' scores in order
    kept: list[int]  # indices of the prompts every scorer could score
    failed: dict[int, str]  # index of a prompt with an unreadable image -> the first such error
    cache_stats: dict[str, dict[str, int]]  # spec -> {"hits", "misses"}


def score_prompts(prompts: Sequence[PromptRecord], scorer_specs: Sequence[str], get_scorer: Callable[[str], Any],
                  cache: ScoreCache, batch_size: int = 32, progress: bool = False) -> PromptScores:
    """Score each prompt's images with every scorer (``get_scorer(spec)`` is called at most once per
    spec, and only when some score is not cached); a prompt with an image that fails for any scorer
    is left out for all of them, so every scorer is compared on the same prompts."""
    load = functools.cache(get_scorer)
    images = [image for prompt in prompts for image in prompt.images]
    texts = [prompt.prompt for prompt in prompts for _ in prompt.images]
    owner = [index for index, prompt in enumerate(prompts) for _ in prompt.images]
    flat: dict[str, list[float | None]] = {}
    failed: dict[int, str] = {}
    cache_stats: dict[str, dict[str, int]] = {}
    for spec in scorer_specs:
        hits, misses = cache.hits, cache.misses
        flat[spec], errors = cached_scores(functools.partial(load, spec), spec, images, texts, cache, batch_size,
                                           progress)
        cache_stats[spec] = {"hits": cache.hits - hits, "misses": cache.misses - misses}
        for index, error in errors.items():
            failed.setdefault(owner[index], f"{images[index]}: {error}")
    kept = [index for index in range(len(prompts)) if index not in failed]
    scores = {}
    for spec, values in flat.items():
        grouped: dict[int, list[float]] = {index: [] for index in kept}
        for index, value in zip(owner, values):
            if index not in failed:
                grouped[index].append(value)
        scores[spec] = [grouped[index] for index in kept]
    return PromptScores(scores, kept, dict(sorted(failed.items())), cache_stats)


def run_evaluation(prompts: Sequence[PromptRecord], scorer_specs: Sequence[str], cache_path: str | os.PathLike,
                   device: str | None = None, download_root: str | None = None, batch_size: int = 32,
                   ks: Sequence[int] = (1, 2, 4), n_resamples: int = 1000, confidence: float = 0.95,
                   seed: int = 0, progress: bool = False, scorers: dict[str, Any] | None = None,
                   skipped: Sequence[dict[str, Any]] = (), dtype: str | None = None,
                   threads: int | None = None) -> EvaluationRun:
    """Score every prompt's images with each scorer (cached) and compute the metrics.

    Args:
        prompts: the ranked evaluation set (``imreward.eval.data.read_evaluation_data``).
        scorer_specs: anything ``imreward.load_scorer`` reads (registered names, checkpoint paths,
            ``module:function`` factories, hub repos).
        cache_path: SQLite score cache; created if absent.
        scorers: already-loaded scorers by spec, used instead of loading those specs.
        skipped: prompts the reader skipped (missing images), reported with the run.
        dtype: the scorers' weights dtype (``float32``, ``float16``, ``bfloat16``; default: theirs).
        threads: torch CPU threads (``imreward.threads.set_threads``; default by each scorer's size).
    """
    kept = [prompt for prompt in prompts if prompt.pairs]
    tied = [{"id": prompt.prompt_id, "prompt": prompt.prompt, "reason": "every image tied (no pair)",
             "images": [image.describe() for image in prompt.images]} for prompt in prompts if not prompt.pairs]
    run = EvaluationRun(prompts=kept, skipped=[*skipped, *tied], total_prompts=len(prompts) + len(skipped),
                        settings={"ks": list(ks), "n_resamples": n_resamples, "confidence": confidence, "seed": seed})

    def get_scorer(spec: str) -> Any:
        if scorers and spec in scorers:
            return scorers[spec]
        from imreward.hub import load_scorer
        from imreward.threads import set_threads

        scorer = load_scorer(spec, device=device, dtype=dtype, download_root=download_root)
        set_threads(threads, scorer)
        return scorer

    with ScoreCache(cache_path, dtype) as cache:
        scored = score_prompts(kept, scorer_specs, get_scorer, cache, batch_size, progress)
    run.cache_stats = scored.cache_stats
    for index, error in scored.failed.items():
        run.skipped.append({"id": kept[index].prompt_id, "prompt": kept[index].prompt, "reason": "unreadable image",
                            "images": [error]})
    run.prompts = [kept[index] for index in scored.kept]
    rankings = [list(prompt.ranks) for prompt in run.prompts]
    for spec in scorer_specs:
        run.scores[spec] = scored.scores[spec]
        if rankings:
            results = evaluate(rankings, run.scores[spec], ks, n_resamples, confidence, seed)
            run.metrics[spec] = {name: result.to_dict() for name, result in results.items()}
    if rankings:
        run.pairs = int(pair_counts(rankings, run.scores[scorer_specs[0]])[1].sum()) if scorer_specs else 0
    return run
