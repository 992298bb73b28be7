"""Generator benchmark (the paper's Table 1): judge text-to-image generators by several metrics.

Layout: ``ROOT/<generator>/{id}_{k}.{png,jpg,jpeg,webp}`` for the prompts ``[{"id", "prompt"}]`` of
``benchmark-prompts.json``. Metrics: any reward scorers (``imreward.hub.load_scorer`` names, e.g.
``ImageReward-v1.0`` and ``CLIP`` for CLIP score; higher = better) and FID against a reference folder
(lower = better). Per generator and metric: the value with a 95% bootstrap interval (rewards: mean
over images, prompts resampled; FID: a jackknife over halves of the images, see ``imreward.eval.fid``) and its rank.
Per reward metric: the win rate between generators (share of shared prompts on which one
generator's mean is higher, ties count half). With human ranks of the generators: Spearman's rho
between each metric's ranking and the human one. With per-image human labels: distinguishability
(``imreward.eval.distinguishability``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imreward.eval.cache import ScoreCache
from imreward.eval.distinguishability import distinguishability
from imreward.eval.metrics import ratio_interval
from imreward.eval.runner import cached_scores

FID = "FID"
IMAGE_NAME = re.compile(r"^(.+)_(\d+)\.(png|jpe?g|webp)$", re.IGNORECASE)


def read_benchmark_prompts(path: str | Path) -> dict[str, str]:
    """{prompt id: prompt} from a JSON list of ``{"id", "prompt"}``."""
    records = json.loads(Path(path).read_text(encoding="utf-8"))
    try:
        return {str(record["id"]): record["prompt"] for record in records}
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}: expected a JSON list of {{'id', 'prompt'}} ({error!r})") from error


def generator_images(folder: Path, prompt_ids: Sequence[str]) -> dict[str, list[Path]]:
    """{prompt id: its images ``{id}_{k}.{png,jpg,jpeg,webp}`` in k order} for the prompts that have any."""
    pattern = IMAGE_NAME
    found: dict[str, list[tuple[int, Path]]] = {}
    wanted = set(prompt_ids)
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match and match.group(1) in wanted and path.is_file():
            found.setdefault(match.group(1), []).append((int(match.group(2)), path))
    return {prompt_id: [path for _, path in sorted(found[prompt_id])] for prompt_id in prompt_ids if prompt_id in found}


def win_rates(per_prompt: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    """rates[a][b]: share of the prompts both generators have where a's mean reward beats b's (ties 1/2)."""
    rates: dict[str, dict[str, float | None]] = {}
    for a, a_means in per_prompt.items():
        rates[a] = {}
        for b, b_means in per_prompt.items():
            shared = sorted(set(a_means) & set(b_means))
            if a == b or not shared:
                rates[a][b] = None
                continue
            diffs = np.array([a_means[p] - b_means[p] for p in shared])
            rates[a][b] = float(((diffs > 0) + 0.5 * (diffs == 0)).mean())
    return rates



def _reward_metric(name: str, get_scorer: Callable[[], Any], images: dict[str, dict[str, list[Path]]],
                   prompts: Mapping[str, str], cache: ScoreCache, batch_size: int, n_resamples: int, seed: int,
                   progress: bool, errors: list[str]) -> tuple[dict[str, dict], dict[str, dict], dict[str, float]]:
    """Per generator {value, low, high}; per generator {prompt: mean}; per image {"gen/file": score}."""
    summary, per_prompt, per_image = {}, {}, {}
    for generator, by_prompt in images.items():
        paths = [path for group in by_prompt.values() for path in group]
        owner = [prompt_id for prompt_id, group in by_prompt.items() for _ in group]
        scores, failed = cached_scores(get_scorer, name, paths, [prompts[p] for p in owner], cache, batch_size,
                                       progress)
        errors += [f"{paths[i]}: {message}" for i, message in failed.items()]
        grouped: dict[str, list[float]] = {}
        for path, prompt_id, score in zip(paths, owner, scores):
            if score is not None:
                grouped.setdefault(prompt_id, []).append(score)
                per_image[f"{generator}/{path.name}"] = score
        per_prompt[generator] = {p: float(np.mean(values)) for p, values in grouped.items()}
        sums = np.array([sum(values) for values in grouped.values()])
        counts = np.array([len(values) for values in grouped.values()], dtype=float)
        low, high = ratio_interval(sums, counts, n_resamples, 0.95, seed)
        summary[generator] = {"value": float(sums.sum() / counts.sum()) if counts.sum() else float("nan"),
                              "low": low, "high": high, "images": int(counts.sum())}
    return summary, per_prompt, per_image


def _ranking(values: dict[str, dict], higher_is_better: bool) -> list[str]:
    sign = -1 if higher_is_better else 1
    return sorted(values, key=lambda name: (np.isnan(values[name]["value"]), sign * values[name]["value"], name))


def run_benchmark(prompts: dict[str, str], root: str | Path, scorer_names: Sequence[str],
                  get_scorer: Callable[[str], Any], cache_path: str | Path, fid: Any | None = None,
                  human_ranks: Mapping[str, float] | None = None,
                  human_labels: Mapping[str, Mapping[str, float]] | None = None, batch_size: int = 32,
                  n_resamples: int = 1000, fid_resamples: int = 100, seed: int = 0,
                  progress: bool = False, dtype: str | None = None) -> dict[str, Any]:
    """Judge every generator folder under ``root`` by each scorer and by FID (JSON-able result).

    Args:
        get_scorer: scorer name -> loaded scorer; called only for names with uncached scores.
        fid: an ``imreward.eval.fid.ReferenceFid``, or None for no FID.
        human_ranks: {generator: rank}, 1 = best.
        human_labels: per-image human ranks (``imreward.eval.distinguishability.read_human_labels``).
        dtype: the dtype ``get_scorer`` loads weights in (part of the score cache's key).
    """
    from scipy import stats

    if not Path(root).is_dir():
        raise FileNotFoundError(f"generations folder {root} does not exist")
    generators = sorted(path for path in Path(root).iterdir() if path.is_dir())
    if not generators:
        raise ValueError(f"{root} has no generator folders")
    if not scorer_names and fid is None:
        raise ValueError("no metric: give at least one scorer or an FID reference folder")
    images = {folder.name: generator_images(folder, list(prompts)) for folder in generators}
    errors: list[str] = []
    values: dict[str, dict[str, dict]] = {}
    result: dict[str, Any] = {"root": str(root), "prompts": len(prompts), "metrics": [*scorer_names],
                              "higher_is_better": {name: True for name in scorer_names}, "win_rate": {},
                              "distinguishability": {}, "prompt_texts": dict(prompts), "image_scores": {}}
    with ScoreCache(cache_path, dtype) as cache:
        for name in scorer_names:
            load = functools.cache(functools.partial(get_scorer, name))
            values[name], per_prompt, per_image = _reward_metric(name, load, images, prompts, cache, batch_size,
                                                                 n_resamples, seed, progress, errors)
            result["win_rate"][name] = win_rates(per_prompt)
            result["image_scores"][name] = per_image
            if human_labels:
                result["distinguishability"][name] = distinguishability(human_labels, per_image, n_resamples, seed)
    if fid is not None:
        values[FID] = {generator: fid.evaluate([path for group in by_prompt.values() for path in group],
                                               fid_resamples, seed) for generator, by_prompt in images.items()}
        errors += fid.errors
        result["metrics"].append(FID)
        result["higher_is_better"][FID] = False
        from imreward.eval.fid import INTERVAL_METHOD

        result["fid"] = {"reference": str(fid.reference_dir), "reference_images": fid.metric.reference.images,
                         "resamples": fid_resamples, "interval": INTERVAL_METHOD}
    result["rankings"] = {name: _ranking(values[name], result["higher_is_better"][name]) for name in values}
    result["generators"] = {
        generator: {"images": sum(len(group) for group in by_prompt.values()), "prompts": len(by_prompt),
                    "prompts_without_images": len(prompts) - len(by_prompt),
                    **{name: {**values[name][generator], "rank": result["rankings"][name].index(generator) + 1}
                       for name in values}}
        for generator, by_prompt in images.items()}
    if human_ranks:
        result["human_ranks"] = {name: human_ranks[name] for name in images if name in human_ranks}
        shared = list(result["human_ranks"])
        if len(shared) >= 2:
            result["human_spearman"] = {
                name: float(stats.spearmanr([result["generators"][g][name]["rank"] for g in shared],
                                            [human_ranks[g] for g in shared]).statistic) for name in values}
    result["errors"] = errors
    return result
