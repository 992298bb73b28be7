"""Reports of an evaluation run: JSON (everything), Markdown (the paper's Table 3 layout), a
PNG figure (metric bars with bootstrap intervals, score distributions) and an HTML page to look
at the images (``imreward.eval.html_report``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imreward.eval.runner import EvaluationRun

REPORT_JSON, REPORT_MARKDOWN, REPORT_FIGURE, REPORT_HTML = "report.json", "report.md", "report.png", "report.html"


def table_columns(ks: list[int]) -> list[tuple[str, str]]:
    """(metric key, column title) in the paper's Table 3 order."""
    return ([("accuracy", "pref. acc.")] + [(f"recall@{k}", f"R@{k}") for k in ks]
            + [(f"filter@{k}", f"F@{k}") for k in ks])


def run_summary(run: EvaluationRun, data: str = "", images: str = "", unlabelled: int = 0) -> dict[str, Any]:
    """The JSON-able content of a run; ``unlabelled``: rows the reader dropped for lack of a human
    label (Pick-a-Pic's ``has_label``)."""
    return {
        "data": data, "images": images, "settings": run.settings,
        "prompts": {"total": run.total_prompts, "evaluated": len(run.prompts), "skipped": len(run.skipped),
                    "unlabelled_rows": unlabelled},
        "pairs": run.pairs, "metrics": run.metrics, "cache": run.cache_stats,
        "skipped": run.skipped, "prompt_ids": [prompt.prompt_id for prompt in run.prompts], "scores": run.scores,
    }


def _percent(result: dict[str, float]) -> str:
    return f"{100 * result['value']:.2f}"


def _interval(result: dict[str, float], scale: float = 100.0, digits: int = 2) -> str:
    return f"{scale * result['low']:.{digits}f} – {scale * result['high']:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown_report(summary: dict[str, Any]) -> str:
    columns = table_columns(summary["settings"]["ks"])
    metrics = summary["metrics"]
    counts = summary["prompts"]
    confidence = round(100 * summary["settings"]["confidence"])
    lines = ["# Preference evaluation", "",
             f"Data: `{summary['data']}`" + (f" (images under `{summary['images']}`)" if summary["images"] else "") + ". "
             f"{counts['evaluated']} of {counts['total']} prompts evaluated, **{counts['skipped']} skipped** "
             f"(missing or unreadable images, or every image tied)"
             + (f", {counts['unlabelled_rows']} unlabelled rows dropped" if counts.get("unlabelled_rows") else "")
             + f"; {summary['pairs']} image pairs with different human ranks.", "",
             "Values in percent. Pairs the model scores equal count as wrong; in R@k/F@k, model ties are "
             "broken at random (the expected hit is counted).", ""]
    lines += markdown_table(["model"] + [title for _, title in columns],
                    [[name] + [_percent(result[key]) for key, _ in columns] for name, result in metrics.items()])
    lines += ["", f"{confidence}% bootstrap intervals over prompts ({summary['settings']['n_resamples']} resamples):",
              ""]
    lines += markdown_table(["model"] + [title for _, title in columns],
                    [[name] + [_interval(result[key]) for key, _ in columns] for name, result in metrics.items()])
    lines += ["", "Rank correlation with the human ranking, per prompt and averaged:", ""]
    lines += markdown_table(["model", "Spearman ρ", f"{confidence}% CI", "Kendall τ", f"{confidence}% CI"],
                    [[name, f"{result['spearman']['value']:.3f}", _interval(result["spearman"], 1, 3),
                      f"{result['kendall']['value']:.3f}", _interval(result["kendall"], 1, 3)]
                     for name, result in metrics.items()])
    lines += ["", "Score cache: " + ", ".join(f"{name} {stats['hits']} hits / {stats['misses']} computed"
                                              for name, stats in summary["cache"].items())]
    if summary["skipped"]:
        lines += ["", "Skipped prompts:", ""]
        lines += [f"- `{item['id']}` ({item['reason']}): {', '.join(item['images'][:3])}"
                  + (" ..." if len(item["images"]) > 3 else "") for item in summary["skipped"]]
    return "\n".join(lines) + "\n"


def plot_report(summary: dict[str, Any], path: Path) -> None:
    """Grouped metric bars with interval whiskers on top; one score histogram per scorer below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    columns = table_columns(summary["settings"]["ks"])
    names = list(summary["metrics"])
    figure = plt.figure(figsize=(max(8, 2.2 * len(names) + 4), 7.5), layout="constrained")
    grid = figure.add_gridspec(2, max(1, len(names)))
    bars = figure.add_subplot(grid[0, :])
    width = 0.8 / max(1, len(names))
    positions = np.arange(len(columns))
    for offset, name in enumerate(names):
        results = [summary["metrics"][name][key] for key, _ in columns]
        values = np.array([100 * r["value"] for r in results])
        errors = np.array([[100 * (r["value"] - r["low"]) for r in results],
                           [100 * (r["high"] - r["value"]) for r in results]])
        bars.bar(positions + (offset - (len(names) - 1) / 2) * width, values, width, yerr=np.nan_to_num(errors),
                 capsize=2, label=name)
    bars.set_xticks(positions, [title for _, title in columns])
    bars.set_ylabel("%")
    bars.set_ylim(0, 118)  # room for the legend above the 100% mark
    bars.set_yticks(range(0, 101, 20))
    bars.legend(fontsize="small", loc="upper center", ncols=min(6, max(1, len(names))))
    bars.set_title(f"Agreement with human rankings ({summary['prompts']['evaluated']} prompts, "
                   f"{round(100 * summary['settings']['confidence'])}% bootstrap intervals)")
    for column, name in enumerate(names):
        axis = figure.add_subplot(grid[1, column])
        axis.hist([value for group in summary["scores"][name] for value in group], bins=30, color=f"C{column}")
        axis.set_title(f"{name} scores", fontsize="small")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_outputs(output_dir: str | Path, names: dict[str, str], result: dict[str, Any], markdown: str,
                  plot: Callable[[dict[str, Any], Path], None] | None) -> dict[str, Path]:
    """Write ``result`` as JSON, ``markdown``, and (given ``plot``) the figure into ``output_dir``
    under ``names`` ({"json", "markdown", "figure"} -> file name); returns the paths written."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": output_dir / names["json"], "markdown": output_dir / names["markdown"]}
    paths["json"].write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown, encoding="utf-8")
    if plot is not None:
        paths["figure"] = output_dir / names["figure"]
        plot(result, paths["figure"])
    return paths


def write_reports(run: EvaluationRun, output_dir: str | Path, data: str = "", images: str = "",
                  unlabelled: int = 0) -> dict[str, Path]:
    """Write report.json, report.md, report.html and (when any prompt was evaluated) report.png;
    returns their paths."""
    from imreward.eval.html_report import write_eval_html

    summary = run_summary(run, data, images, unlabelled)
    paths = write_outputs(output_dir, {"json": REPORT_JSON, "markdown": REPORT_MARKDOWN, "figure": REPORT_FIGURE},
                          summary, markdown_report(summary), plot_report if summary["metrics"] else None)
    paths["html"] = write_eval_html(summary, run.prompts, output_dir, REPORT_FIGURE if "figure" in paths else None)
    return paths
