"""``imreward eval --benchmarks``: one table of preference accuracy per scorer and benchmark.

Every benchmark's images are scored through the score cache (``imreward.eval.cache``), so adding a
scorer or a benchmark to a table computes only the new scores. Written as ``table.json``
(everything), ``table.md`` (the table, naming each benchmark's split, pairs and tie rule) and
``table.png`` (bars with the bootstrap intervals) and ``table.html`` (``imreward.eval.html_report``).

Under the Pick-a-Pic rule each cell records its model-tie threshold and where it came from: the
default 0, a given ``tie_threshold``, or ``"auto"``: tuned per scorer on the benchmark's
``validation_unique`` split read from the same source (``imreward.eval.benchmarks.tune_tie_threshold``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from imreward.data.loading import load_preference_data
from imreward.eval.benchmarks import RULE_TEXT, Benchmark, benchmark_accuracy, rule_of, tune_tie_threshold
from imreward.eval.cache import ScoreCache
from imreward.eval.runner import score_prompts

TABLE_JSON, TABLE_MARKDOWN, TABLE_FIGURE = "table.json", "table.md", "table.png"


def run_benchmark_table(benchmarks: Sequence[Benchmark], scorer_specs: Sequence[str],
                        get_scorer: Callable[[str], Any], cache_path: str | os.PathLike, tie_rule: str = "drop",
                        data: dict[str, str] | None = None, batch_size: int = 32, n_resamples: int = 1000,
                        confidence: float = 0.95, seed: int = 0, progress: bool = False,
                        tie_threshold: float | str | None = None,
                        details: dict[str, tuple[list, dict]] | None = None,
                        dtype: str | None = None) -> dict[str, Any]:
    """Accuracy of every scorer on every benchmark (a JSON-able dict).

    Args:
        get_scorer: loads a scorer by spec; called only for a scorer with uncached scores, once.
        data: local copies by benchmark name, read instead of the benchmark's hub dataset.
        tie_threshold: the Pick-a-Pic rule's model-tie threshold: None (0, exactly equal scores),
            a number in [0, 1], or "auto" (tuned on the benchmark's validation_unique split).
        details: filled, when given, with each benchmark's (scored prompts, {spec: scores per
            prompt}) for ``write_table``'s HTML page.
        dtype: the dtype ``get_scorer`` loads weights in (part of the score cache's key).
    """
    result: dict[str, Any] = {"tie_rule": tie_rule, "tie_threshold": tie_threshold, "confidence": confidence,
                              "n_resamples": n_resamples, "seed": seed, "scorers": list(scorer_specs),
                              "benchmarks": {}}
    get_scorer = functools.cache(get_scorer)  # one load per scorer over all benchmarks
    with ScoreCache(cache_path, dtype) as cache:
        for benchmark in benchmarks:
            source = (data or {}).get(benchmark.name, benchmark.dataset)
            prompts, stats = load_preference_data(source, benchmark.split, policy="eval")
            skipped = stats.skipped
            scored = score_prompts(prompts, scorer_specs, get_scorer, cache, batch_size, progress)
            rule, average = rule_of(benchmark, tie_rule)
            rankings = [list(prompts[index].ranks) for index in scored.kept]
            if details is not None:
                details[benchmark.name] = ([prompts[index] for index in scored.kept], scored.scores)
            thresholds = _tie_thresholds(benchmark, rule, source, tie_threshold, scorer_specs, get_scorer, cache,
                                         batch_size, progress)
            entry: dict[str, Any] = {
                "dataset": str(source), "split": benchmark.split, "rule": rule, "rule_text": RULE_TEXT[rule],
                "rule_source": benchmark.paper if tie_rule == "paper" else "this tool's default",
                "protocol_source": benchmark.protocol_source if tie_rule == "paper" else "",
                "prompts_read": len(prompts), "unlabelled_rows": stats.unlabelled,
                "prompts_skipped": len(skipped) + len(scored.failed),
                "skipped": list(skipped) + [{"id": prompts[index].prompt_id, "prompt": prompts[index].prompt,
                                              "reason": "unreadable image"} for index in scored.failed],
                "cache": {spec: {"hits": stats["hits"], "computed": stats["misses"]}
                          for spec, stats in scored.cache_stats.items()},
                "accuracy": {}}
            for spec in scorer_specs:
                threshold = thresholds.get(spec, {}).get("value", 0.0)
                accuracy = benchmark_accuracy(rankings, scored.scores[spec], rule, average, n_resamples, confidence,
                                              seed, threshold)
                entry["accuracy"][spec] = {"value": accuracy.value, "low": accuracy.low, "high": accuracy.high,
                                           **({"tie_threshold": thresholds[spec]} if spec in thresholds else {})}
                entry["pairs"], entry["prompts"] = accuracy.pairs, accuracy.prompts
            result["benchmarks"][benchmark.name] = entry
    return result


def _tie_thresholds(benchmark: Benchmark, rule: str, source: str, tie_threshold: float | str | None,
                    scorer_specs: Sequence[str], get_scorer: Callable[[str], Any], cache: ScoreCache,
                    batch_size: int, progress: bool) -> dict[str, dict[str, Any]]:
    """Per scorer {"value", "source"[, "validation_accuracy", "validation_comparisons"]} for a
    benchmark scored with the Pick-a-Pic rule; {} for the other rules."""
    if rule != "half-credit":
        return {}
    if tie_threshold is None or tie_threshold != "auto":
        value = 0.0 if tie_threshold is None else float(tie_threshold)
        how = "default: only exactly equal scores tie" if tie_threshold is None else "given"
        return {spec: {"value": value, "source": how} for spec in scorer_specs}
    if benchmark.tuning_split is None:
        raise ValueError(f"{benchmark.name} has no split to tune a tie threshold on")
    if str(source).endswith(".parquet"):
        raise ValueError(f"{benchmark.name}: tuning the tie threshold reads the {benchmark.tuning_split} split, so "
                         f"give the dataset's folder, not the single shard {source}")
    prompts, _ = load_preference_data(source, benchmark.tuning_split, policy="eval")
    scored = score_prompts(prompts, scorer_specs, get_scorer, cache, batch_size, progress)
    rankings = [list(prompts[index].ranks) for index in scored.kept]
    tuned = {}
    for spec in scorer_specs:
        value, accuracies = tune_tie_threshold(rankings, scored.scores[spec])
        tuned[spec] = {"value": value, "source": f"tuned on {benchmark.tuning_split}",
                       "validation_accuracy": accuracies, "validation_comparisons": len(rankings)}
    return tuned


def _cell(accuracy: dict[str, float]) -> str:
    if accuracy["value"] != accuracy["value"]:  # NaN: nothing to compare
        return "–"
    threshold = accuracy.get("tie_threshold")
    tie = "" if threshold is None else f" [t={threshold['value']:g}{', tuned' if 'validation_accuracy' in threshold else ''}]"
    return f"{100 * accuracy['value']:.2f} ({100 * accuracy['low']:.1f}–{100 * accuracy['high']:.1f}){tie}"


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
        unlabelled = f", {entry['unlabelled_rows']} unlabelled rows dropped" if entry.get("unlabelled_rows") else ""
        source = f"; as in {entry['protocol_source']}" if entry.get("protocol_source") else ""
        lines.append(f"| {name} | `{entry['dataset']}` | {entry['split']} | {entry['prompts']} "
                     f"({entry['prompts_skipped']} skipped{unlabelled}) | {entry['pairs']} | {entry['rule']} "
                     f"({entry['rule_source']}{source}): {entry['rule_text']} |")
    tuned = [(name, spec, cell["tie_threshold"]) for name, entry in benchmarks.items()
             for spec, cell in entry["accuracy"].items() if "tie_threshold" in cell]
    if tuned:
        lines += ["", "Model-tie thresholds ([t=...] in the cells): " + "; ".join(
            f"{name} / {spec}: {threshold['value']:g} ({threshold['source']})" for name, spec, threshold in tuned)]
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


def write_table(result: dict[str, Any], output_dir: str | Path,
                details: dict[str, tuple[list, dict]] | None = None) -> dict[str, Path]:
    from imreward.eval.html_report import write_table_html
    from imreward.eval.report import write_outputs

    paths = write_outputs(output_dir, {"json": TABLE_JSON, "markdown": TABLE_MARKDOWN, "figure": TABLE_FIGURE},
                          result, markdown_table(result), plot_table)
    paths["html"] = write_table_html(result, details or {}, output_dir, TABLE_FIGURE)
    return paths
