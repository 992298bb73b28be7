"""``imreward eval --benchmarks``: one table of preference accuracy per scorer and benchmark.

Every benchmark's images are scored through the score cache (``imreward.eval.cache``), so adding a
scorer or a benchmark to a table computes only the new scores. Written as ``table.json``
(everything), ``table.md`` (the table, naming each benchmark's split, pairs and tie rule) and
``table.png`` (bars with the bootstrap intervals).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from imreward.eval.benchmarks import RULE_TEXT, Benchmark, benchmark_accuracy, rule_of
from imreward.eval.cache import ScoreCache
from imreward.eval.data import read_evaluation_data
from imreward.eval.runner import score_prompts

TABLE_JSON, TABLE_MARKDOWN, TABLE_FIGURE = "table.json", "table.md", "table.png"


def run_benchmark_table(benchmarks: Sequence[Benchmark], scorer_specs: Sequence[str],
                        get_scorer: Callable[[str], Any], cache_path: str | os.PathLike, tie_rule: str = "drop",
                        data: dict[str, str] | None = None, batch_size: int = 32, n_resamples: int = 1000,
                        confidence: float = 0.95, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Accuracy of every scorer on every benchmark (a JSON-able dict).

    Args:
        get_scorer: loads a scorer by spec; called only for a scorer with uncached scores, once.
        data: local copies by benchmark name, read instead of the benchmark's hub dataset.
    """
    result: dict[str, Any] = {"tie_rule": tie_rule, "confidence": confidence, "n_resamples": n_resamples,
                              "seed": seed, "scorers": list(scorer_specs), "benchmarks": {}}
    get_scorer = functools.cache(get_scorer)  # one load per scorer over all benchmarks
    with ScoreCache(cache_path) as cache:
        for benchmark in benchmarks:
            source = (data or {}).get(benchmark.name, benchmark.dataset)
            prompts, skipped = read_evaluation_data(source, split=benchmark.split)
            scored = score_prompts(prompts, scorer_specs, get_scorer, cache, batch_size, progress)
            rule, average = rule_of(benchmark, tie_rule)
            rankings = [list(prompts[index].ranks) for index in scored.kept]
            entry: dict[str, Any] = {
                "dataset": str(source), "split": benchmark.split, "rule": rule, "rule_text": RULE_TEXT[rule],
                "rule_source": benchmark.paper if tie_rule == "paper" else "this tool's default",
                "prompts_read": len(prompts), "prompts_skipped": len(skipped) + len(scored.failed),
                "skipped": list(skipped) + [{"id": prompts[index].prompt_id, "prompt": prompts[index].prompt,
                                              "reason": "unreadable image"} for index in scored.failed],
                "cache": {spec: {"hits": stats["hits"], "computed": stats["misses"]}
                          for spec, stats in scored.cache_stats.items()},
                "accuracy": {}}
            for spec in scorer_specs:
                accuracy = benchmark_accuracy(rankings, scored.scores[spec], rule, average, n_resamples, confidence,
                                              seed)
                entry["accuracy"][spec] = {"value": accuracy.value, "low": accuracy.low, "high": accuracy.high}
                entry["pairs"], entry["prompts"] = accuracy.pairs, accuracy.prompts
            result["benchmarks"][benchmark.name] = entry
    return result


def _cell(accuracy: dict[str, float]) -> str:
    if accuracy["value"] != accuracy["value"]:  # NaN: nothing to compare
        return "–"
    return f"{100 * accuracy['value']:.2f} ({100 * accuracy['low']:.1f}–{100 * accuracy['high']:.1f})"


def markdown_table(result: dict[str, Any]) -> str:
    benchmarks = result["benchmarks"]
    confidence = round(100 * result["confidence"])
    header = ["scorer"] + [f"{name}<br>{entry['split']}, {entry['pairs']} pairs" for name, entry in benchmarks.items()]
    lines = ["# Preference accuracy across benchmarks", "",
             f"Accuracy in percent with its {confidence}% bootstrap interval over prompts "
             f"({result['n_resamples']} resamples). Tie rule: **{result['tie_rule']}**.", "",
             "| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    for spec in result["scorers"]:
        lines.append("| " + " | ".join([spec] + [_cell(entry["accuracy"][spec]) for entry in benchmarks.values()])
                     + " |")
    lines += ["", "| benchmark | data | split | prompts | pairs | tie rule |", "| --- | --- | --- | --- | --- | --- |"]
    for name, entry in benchmarks.items():
        lines.append(f"| {name} | `{entry['dataset']}` | {entry['split']} | {entry['prompts']} "
                     f"({entry['prompts_skipped']} skipped) | {entry['pairs']} | {entry['rule']} "
                     f"({entry['rule_source']}): {entry['rule_text']} |")
    return "\n".join(lines) + "\n"


def plot_table(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names, scorers = list(result["benchmarks"]), result["scorers"]
    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(names) * max(1, len(scorers)) / 2 + 3), 4.5),
                                layout="constrained")
    width = 0.8 / max(1, len(scorers))
    positions = np.arange(len(names))
    for offset, spec in enumerate(scorers):
        cells = [result["benchmarks"][name]["accuracy"][spec] for name in names]
        values = np.array([100 * cell["value"] for cell in cells])
        errors = np.array([[100 * (cell["value"] - cell["low"]) for cell in cells],
                           [100 * (cell["high"] - cell["value"]) for cell in cells]])
        axis.bar(positions + (offset - (len(scorers) - 1) / 2) * width, np.nan_to_num(values), width,
                 yerr=np.nan_to_num(errors), capsize=2, label=spec)
    axis.axhline(50, color="grey", linewidth=0.8, linestyle="--")
    axis.set_xticks(positions, [f"{name}\n({result['benchmarks'][name]['pairs']} pairs)" for name in names])
    axis.set_ylabel("preference accuracy (%)")
    axis.set_ylim(0, 105)
    axis.legend(fontsize="small", loc="lower right")
    axis.set_title(f"Tie rule: {result['tie_rule']}; {round(100 * result['confidence'])}% bootstrap intervals")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_table(result: dict[str, Any], output_dir: str | Path) -> dict[str, Path]:
    from imreward.eval.report import write_outputs

    return write_outputs(output_dir, {"json": TABLE_JSON, "markdown": TABLE_MARKDOWN, "figure": TABLE_FIGURE},
                         result, markdown_table(result), plot_table)
