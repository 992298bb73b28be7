"""Self-contained HTML reports to look at what a scorer prefers: ``report.html`` (``eval``),
``table.html`` (``eval --benchmarks``) and ``benchmark.html`` (``benchmark``).

Each page is one file beside its report, with a ``thumbs/`` folder of cached thumbnails
(``imreward.eval.thumbnails``) and the report's PNG figure; it opens from disk, needs no server and
loads nothing from the network (its Content-Security-Policy allows only its own inline style and
script and local images). Pages are rendered by jinja2 with autoescaping, so prompts and file
names are shown as text, never as markup. Per prompt, the images stand in the humans' order and in
each scorer's; the prompts and pairs where a scorer disagrees most with the humans come first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imreward.data.records import ImageSource, PromptRecord
from imreward.eval.thumbnails import Thumbnails

PROMPTS_SHOWN = 100  # prompts per page section, the most disagreed first
PAIRS_SHOWN = 12  # disagreeing pairs per scorer


def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("imreward.eval", "templates"),
                              autoescape=jinja2.select_autoescape(["html"], default=True),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_page(template: str, path: Path, **context: Any) -> Path:
    """Render ``templates/{template}`` into ``path`` (written whole, then moved into place)."""
    html = _environment().get_template(template).render(**context)
    partial = path.with_suffix(".partial")
    partial.write_text(html, encoding="utf-8")
    os.replace(partial, path)
    return path


def image_name(image: str | os.PathLike | ImageSource) -> str:
    if isinstance(image, ImageSource):
        return image.member or Path(image.path).name
    return Path(image).name


def _scales(scores: dict[str, list[list[float]]]) -> dict[str, float]:
    """Each scorer's spread of scores, so margins of scorers on different scales compare."""
    scales = {}
    for spec, groups in scores.items():
        values = np.array([value for group in groups for value in group], dtype=float)
        spread = float(values.std()) if values.size > 1 else 0.0
        scales[spec] = spread if spread > 0 else 1.0
    return scales


def disagreements(ranks: Sequence[int], values: Sequence[float], scale: float) -> list[tuple[float, int, int]]:
    """(margin, human-preferred image, other image) for each pair the scorer orders against the
    humans (or scores equal), the margin being its score lead of the human-worse image / ``scale``."""
    found = []
    for better in range(len(ranks)):
        for worse in range(len(ranks)):
            if ranks[better] < ranks[worse] and values[worse] >= values[better]:
                found.append(((values[worse] - values[better]) / scale, better, worse))
    return found


def prompt_views(prompts: Sequence[PromptRecord], scores: dict[str, list[list[float]]], thumbnails: Thumbnails,
                 limit: int = PROMPTS_SHOWN, pairs: int = PAIRS_SHOWN) -> dict[str, Any]:
    """What the templates show of a scored prompt set: the prompts (most disagreed first, up to
    ``limit``) with their images in the humans' and each scorer's order, and per scorer its worst
    pairs."""
    scales = _scales(scores)
    worst: dict[str, list[dict[str, Any]]] = {spec: [] for spec in scores}
    order = []
    for index, prompt in enumerate(prompts):
        top = 0.0
        for spec in scores:
            for margin, better, worse in disagreements(prompt.ranks, scores[spec][index], scales[spec]):
                worst[spec].append({"margin": margin, "prompt": index, "better": better, "worse": worse})
                top = max(top, margin + 1.0)  # any disagreement (a tie included) ranks above none
        order.append((-top, index))
    order.sort()
    shown = [index for _, index in order[:limit]]

    def image(index: int, position: int, spec: str | None = None) -> dict[str, Any]:
        source = prompts[index].images[position]
        return {"thumb": thumbnails.get(source), "name": image_name(source), "rank": prompts[index].ranks[position],
                "score": None if spec is None else scores[spec][index][position]}

    views = []
    for index in shown:
        prompt = prompts[index]
        positions = range(len(prompt.images))
        orders = {"humans": [image(index, p) for p in sorted(positions, key=lambda p: prompt.ranks[p])]}
        for spec in scores:
            orders[spec] = [image(index, p, spec) for p in sorted(positions, key=lambda p: -scores[spec][index][p])]
        views.append({"id": prompt.prompt_id, "prompt": prompt.prompt, "orders": orders})
    pair_views = {}
    for spec, found in worst.items():
        found.sort(key=lambda item: -item["margin"])
        pair_views[spec] = [{"prompt": prompts[item["prompt"]].prompt, "id": prompts[item["prompt"]].prompt_id,
                             "margin": item["margin"], "better": image(item["prompt"], item["better"], spec),
                             "worse": image(item["prompt"], item["worse"], spec)} for item in found[:pairs]]
    return {"prompts": views, "pairs": pair_views, "prompts_total": len(prompts), "scorers": list(scores),
            "disagreeing_pairs": {spec: len(found) for spec, found in worst.items()}}


def write_eval_html(summary: dict[str, Any], prompts: Sequence[PromptRecord], output_dir: str | os.PathLike,
                    figure: str | None) -> Path:
    """``report.html`` of an evaluation run (``imreward.eval.report.run_summary`` and its prompts)."""
    from imreward.eval.report import table_columns

    output_dir = Path(output_dir)
    columns = table_columns(summary["settings"]["ks"]) + [("spearman", "Spearman ρ"), ("kendall", "Kendall τ")]
    views = prompt_views(prompts, summary["scores"], Thumbnails(output_dir))
    return render_page("eval.html", output_dir / "report.html", title="Preference evaluation", summary=summary,
                       columns=columns, figure=figure, view=views)


def write_table_html(result: dict[str, Any], details: dict[str, tuple[list[PromptRecord], dict]],
                     output_dir: str | os.PathLike, figure: str | None) -> Path:
    """``table.html`` of the cross-benchmark table; ``details``: per benchmark, its scored prompts
    and the scores (``run_benchmark_table(details=...)``)."""
    output_dir = Path(output_dir)
    thumbnails = Thumbnails(output_dir)
    sections = {name: prompt_views(prompts, scores, thumbnails, limit=PROMPTS_SHOWN // 2)
                for name, (prompts, scores) in details.items()}
    return render_page("table.html", output_dir / "table.html", title="Preference accuracy across benchmarks",
                       result=result, sections=sections, figure=figure)


def _image_files(folder: Path) -> list[Path]:
    """The generator's images when no reward metric listed them (an FID-only benchmark)."""
    from imreward.eval.benchmark import IMAGE_NAME

    return [path for path in folder.iterdir() if IMAGE_NAME.match(path.name)] if folder.is_dir() else []


def write_benchmark_html(result: dict[str, Any], output_dir: str | os.PathLike, figure: str | None) -> Path:
    """``benchmark.html``: the generators' table and, per generator, a sortable grid of its images
    with every reward metric's score (``run_benchmark``'s ``image_scores``)."""
    output_dir = Path(output_dir)
    thumbnails = Thumbnails(output_dir)
    image_scores = result.get("image_scores", {})
    prompts = result.get("prompt_texts", {})
    grids = {}
    for generator in result["generators"]:
        names = sorted({key.split("/", 1)[1] for per_image in image_scores.values() for key in per_image
                        if key.split("/", 1)[0] == generator}
                       or (path.name for path in _image_files(Path(result["root"]) / generator)))
        rows = []
        for name in names:
            prompt_id = name.rsplit("_", 1)[0]
            rows.append({"name": name, "prompt_id": prompt_id, "prompt": prompts.get(prompt_id, ""),
                         "thumb": thumbnails.get(Path(result["root"]) / generator / name),
                         "scores": {metric: image_scores[metric].get(f"{generator}/{name}")
                                    for metric in image_scores}})
        grids[generator] = rows
    return render_page("benchmark.html", output_dir / "benchmark.html", title="Generator benchmark", result=result,
                       grids=grids, reward_metrics=list(image_scores), figure=figure)
