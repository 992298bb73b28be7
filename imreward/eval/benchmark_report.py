"""The generator benchmark's outputs: ``benchmark.json``, ``benchmark.md`` (one table of every metric
per generator with intervals, ranks and Spearman's rho to the human ranking), ``benchmark.png`` and
``benchmark.html`` (``imreward.eval.html_report``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from imreward.eval.report import markdown_table

BENCHMARK_JSON, BENCHMARK_MARKDOWN, BENCHMARK_FIGURE = "benchmark.json", "benchmark.md", "benchmark.png"


def _cell(entry: dict[str, Any]) -> str:
    if math.isnan(entry["value"]):
        return "–"
    interval = "" if math.isnan(entry["low"]) else f" [{entry['low']:.4g}, {entry['high']:.4g}]"
    return f"{entry['value']:.4g}{interval} (#{entry['rank']})"


def _metric_header(result: dict[str, Any], name: str) -> str:
    return f"{name} {'↑' if result['higher_is_better'][name] else '↓'}"


def benchmark_markdown(result: dict[str, Any]) -> str:
    metrics, generators = result["metrics"], result["generators"]
    humans = result.get("human_ranks", {})
    order = sorted(generators, key=lambda g: (humans.get(g, math.inf), result["rankings"][metrics[0]].index(g)))
    lines = ["# Generator benchmark", "",
             f"{result['prompts']} prompts, images under `{result['root']}`. Each cell: value [95% bootstrap "
             "interval] (rank); ↑ higher is better, ↓ lower is better.", ""]
    header = ["generator", *(["human rank"] if humans else []), *[_metric_header(result, m) for m in metrics],
              "images", "prompts without images"]
    rows = [[g, *([str(humans.get(g, "–"))] if humans else []), *[_cell(generators[g][m]) for m in metrics],
             str(generators[g]["images"]), str(generators[g]["prompts_without_images"])] for g in order]
    if "human_spearman" in result:
        rows.append(["**Spearman ρ to human ranks**", "", *[f"**{result['human_spearman'][m]:.3f}**" for m in metrics],
                     "", ""])
    lines += markdown_table(header, rows)
    if "fid" in result:
        fid = result["fid"]
        lines += ["", f"FID against {fid['reference_images']} images under `{fid['reference']}`; its interval: "
                  f"{fid.get('interval', 'images resampled')} ({fid['resamples']} halves). "
                  "FID is biased upwards for small image sets: compare generators with similar image counts."]
    if result["distinguishability"]:
        lines += ["", "Distinguishability: share of image pairs from different generators (same prompt, different "
                  "human ranks) that the metric orders as humans did:", ""]
        lines += markdown_table(["metric", "agreement", "95% CI", "pairs", "prompts"],
                                [[m, f"{d['value']:.3f}", f"{d['low']:.3f} – {d['high']:.3f}", str(d["pairs"]),
                                  str(d["prompts"])] for m, d in result["distinguishability"].items()])
    for name, rates in result["win_rate"].items():
        ranking = result["rankings"][name]
        lines += ["", f"Win rate by `{name}` of the row generator over the column generator (share of prompts "
                  "with a higher mean; ties count half):", ""]
        lines += markdown_table(["", *ranking], [[a] + ["–" if rates[a][b] is None else f"{rates[a][b]:.2f}"
                                                        for b in ranking] for a in ranking])
    if result["errors"]:
        lines += ["", f"{len(result['errors'])} unreadable images:", ""] + [f"- {e}" for e in result["errors"][:20]]
    return "\n".join(lines) + "\n"


def plot_benchmark(result: dict[str, Any], path: Path) -> None:
    """Left: each generator's rank by the humans and by every metric (lines that stay flat agree with
    people). Right: Spearman's rho to the human ranking and distinguishability per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    metrics, generators = result["metrics"], result["generators"]
    humans = result.get("human_ranks", {})
    columns = (["human"] if humans else []) + metrics
    figure, (ranks, bars) = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    for index, generator in enumerate(sorted(generators)):
        ys = ([humans.get(generator, np.nan)] if humans else []) + [generators[generator][m]["rank"] for m in metrics]
        ranks.plot(range(len(columns)), ys, marker="o", color=f"C{index % 10}", label=generator)
    ranks.set_xticks(range(len(columns)), columns, rotation=20, ha="right")
    ranks.set_ylabel("rank (1 = best)")
    ranks.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ranks.invert_yaxis()
    ranks.legend(fontsize="small")
    ranks.set_title("generator ranks by metric")
    series = {}
    if "human_spearman" in result:
        series["Spearman ρ to human ranks"] = [result["human_spearman"][m] for m in metrics]
    if result["distinguishability"]:
        series["distinguishability"] = [result["distinguishability"].get(m, {}).get("value", np.nan) for m in metrics]
    width = 0.8 / max(len(series), 1)
    for offset, (label, heights) in enumerate(series.items()):
        bars.bar(np.arange(len(metrics)) + offset * width, heights, width, label=label)
    bars.set_xticks(np.arange(len(metrics)) + width * (len(series) - 1) / 2, metrics, rotation=20, ha="right")
    bars.axhline(0, color="black", linewidth=0.5)
    bars.set_title("agreement with people" if series else "no human ranks or labels given")
    if series:
        bars.legend(fontsize="small")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_benchmark(result: dict[str, Any], output_dir: str | Path) -> dict[str, Path]:
    from imreward.eval.html_report import write_benchmark_html
    from imreward.eval.report import write_outputs

    paths = write_outputs(output_dir, {"json": BENCHMARK_JSON, "markdown": BENCHMARK_MARKDOWN,
                                       "figure": BENCHMARK_FIGURE}, result, benchmark_markdown(result), plot_benchmark)
    paths["html"] = write_benchmark_html(result, output_dir, BENCHMARK_FIGURE)
    return paths
