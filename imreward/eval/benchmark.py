"""Generator benchmark (the paper's Table 1): score every generator's images for a prompt set.

Layout: ``ROOT/<generator>/{id}_{k}.png`` for the prompts ``[{"id", "prompt"}]`` of
``benchmark-prompts.json``. Per generator: mean reward (with a bootstrap interval over prompts)
and its rank; between generators: the win rate, i.e. the share of shared prompts on which one
generator's mean reward is higher (a tie counts half); with human ranks of the generators, the
Spearman correlation between those and the reward ranking.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imreward.eval.cache import ScoreCache
from imreward.eval.metrics import ratio_interval
from imreward.eval.report import markdown_table
from imreward.eval.runner import cached_scores

BENCHMARK_JSON, BENCHMARK_MARKDOWN, BENCHMARK_FIGURE = "benchmark.json", "benchmark.md", "benchmark.png"


def read_benchmark_prompts(path: str | Path) -> dict[str, str]:
    """{prompt id: prompt} from a JSON list of ``{"id", "prompt"}``."""
    records = json.loads(Path(path).read_text(encoding="utf-8"))
    try:
        return {str(record["id"]): record["prompt"] for record in records}
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}: expected a JSON list of {{'id', 'prompt'}} ({error!r})") from error


def generator_images(folder: Path, prompt_ids: Sequence[str]) -> dict[str, list[Path]]:
    """{prompt id: its images ``{id}_{k}.png`` in k order} for the prompts that have any."""
    pattern = re.compile(r"^(.+)_(\d+)\.png$")
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


def run_benchmark(prompts: dict[str, str], root: str | Path, get_scorer: Callable[[], Any], scorer_name: str,
                  cache_path: str | Path, human_ranks: dict[str, float] | None = None, batch_size: int = 32,
                  n_resamples: int = 1000, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Score every generator folder under ``root`` and compare the generators (JSON-able result)."""
    from scipy import stats

    get_scorer = functools.cache(get_scorer)  # loaded once, and only if some image is not cached
    generators = sorted(path for path in Path(root).iterdir() if path.is_dir())
    if not generators:
        raise ValueError(f"{root} has no generator folders")
    per_prompt: dict[str, dict[str, float]] = {}
    summary: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    with ScoreCache(cache_path) as cache:
        for folder in generators:
            by_prompt = generator_images(folder, list(prompts))
            images = [path for paths in by_prompt.values() for path in paths]
            owner = [prompt_id for prompt_id, paths in by_prompt.items() for _ in paths]
            scores, failed = cached_scores(get_scorer, scorer_name, images, [prompts[p] for p in owner], cache,
                                           batch_size, progress)
            errors += [f"{images[i]}: {message}" for i, message in failed.items()]
            grouped: dict[str, list[float]] = {}
            for prompt_id, score in zip(owner, scores):
                if score is not None:
                    grouped.setdefault(prompt_id, []).append(score)
            per_prompt[folder.name] = {p: float(np.mean(values)) for p, values in grouped.items()}
            sums = np.array([sum(values) for values in grouped.values()])
            counts = np.array([len(values) for values in grouped.values()], dtype=float)
            low, high = ratio_interval(sums, counts, n_resamples, 0.95, seed)
            summary[folder.name] = {"mean": float(sums.sum() / counts.sum()) if counts.sum() else float("nan"),
                                    "low": low, "high": high, "images": int(counts.sum()), "prompts": len(grouped),
                                    "prompts_without_images": len(prompts) - len(by_prompt)}
    order = sorted(summary, key=lambda name: -summary[name]["mean"])
    for rank, name in enumerate(order, 1):
        summary[name]["rank"] = rank
    result = {"scorer": scorer_name, "root": str(root), "prompts": len(prompts), "generators": summary,
              "ranking": order, "win_rate": win_rates(per_prompt), "errors": errors}
    if human_ranks:
        shared = [name for name in order if name in human_ranks]
        if len(shared) >= 2:
            rho = stats.spearmanr([summary[n]["rank"] for n in shared], [human_ranks[n] for n in shared]).statistic
            result["human_spearman"] = {"rho": float(rho), "generators": shared}
    return result


def benchmark_markdown(result: dict[str, Any]) -> str:
    generators = result["generators"]
    lines = ["# Generator benchmark", "",
             f"Scorer `{result['scorer']}` on {result['prompts']} prompts, images under `{result['root']}`.", ""]
    lines += markdown_table(["rank", "generator", "mean reward", "95% CI", "images", "prompts without images"],
                    [[str(generators[n]["rank"]), n, f"{generators[n]['mean']:.4f}",
                      f"{generators[n]['low']:.4f} – {generators[n]['high']:.4f}", str(generators[n]["images"]),
                      str(generators[n]["prompts_without_images"])] for n in result["ranking"]])
    lines += ["", "Win rate of the row generator over the column generator (share of prompts with a higher "
              "mean reward; ties count half):", ""]
    lines += markdown_table(["", *result["ranking"]],
                    [[a] + ["–" if result["win_rate"][a][b] is None else f"{result['win_rate'][a][b]:.2f}"
                            for b in result["ranking"]] for a in result["ranking"]])
    if "human_spearman" in result:
        lines += ["", f"Spearman ρ between the reward ranking and the human ranking of "
                  f"{len(result['human_spearman']['generators'])} generators: {result['human_spearman']['rho']:.3f}"]
    if result["errors"]:
        lines += ["", f"{len(result['errors'])} unreadable images:", ""] + [f"- {e}" for e in result["errors"][:20]]
    return "\n".join(lines) + "\n"


def plot_benchmark(result: dict[str, Any], path: Path) -> None:
    """Mean reward per generator with intervals, and the win-rate matrix as a heatmap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = result["ranking"]
    stats_ = [result["generators"][n] for n in names]
    figure, (bars, heat) = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
    means = np.array([s["mean"] for s in stats_])
    errors = np.nan_to_num(np.array([[s["mean"] - s["low"] for s in stats_], [s["high"] - s["mean"] for s in stats_]]))
    bars.bar(range(len(names)), means, yerr=errors, capsize=3, color="C0")
    bars.set_xticks(range(len(names)), names, rotation=30, ha="right")
    bars.set_ylabel(f"mean {result['scorer']} reward")
    matrix = np.array([[np.nan if result["win_rate"][a][b] is None else result["win_rate"][a][b] for b in names]
                       for a in names])
    image = heat.imshow(matrix, vmin=0, vmax=1, cmap="RdBu")
    heat.set_xticks(range(len(names)), names, rotation=30, ha="right")
    heat.set_yticks(range(len(names)), names)
    heat.set_title("win rate (row over column)")
    figure.colorbar(image, ax=heat)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_benchmark(result: dict[str, Any], output_dir: str | Path) -> dict[str, Path]:
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": output_dir / BENCHMARK_JSON, "markdown": output_dir / BENCHMARK_MARKDOWN,
             "figure": output_dir / BENCHMARK_FIGURE}
    paths["json"].write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    paths["markdown"].write_text(benchmark_markdown(result), encoding="utf-8")
    plot_benchmark(result, paths["figure"])
    return paths
