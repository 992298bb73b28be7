"""``imreward train-ablation``: the paper's freezing study (Xu et al. 2023, sec. 4.1: 0 / 30 / 70 /
100% of the layers frozen) plus LoRA ranks, on one dataset with one seed.

Every setting is one ordinary training run (``OUTPUT/<setting>/``, loadable and resumable like any
other) with the same data, seed, optimiser and step budget; only which parameters train differs.
Writes ``ablation.json``, ``ablation.md`` and ``ablation.png``: validation accuracy (best checkpoint),
test accuracy (the same checkpoint), trainable parameters, steps and wall time per setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from imreward.train.config import TrainConfig
from imreward.train.recipes import RECIPES, apply_recipe

DEFAULT_FREEZE_RATIOS = (0.0, 0.3, 0.7, 1.0)
DEFAULT_LORA_RANKS = (4, 16)
ABLATION_JSON, ABLATION_MARKDOWN, ABLATION_FIGURE = "ablation.json", "ablation.md", "ablation.png"


def settings_grid(freeze_ratios, lora_ranks) -> list[tuple[str, dict[str, Any]]]:
    """(folder name, TrainConfig overrides) per setting."""
    return ([(f"freeze-{ratio:g}", {"freeze_ratio": ratio, "lora_rank": None}) for ratio in freeze_ratios]
            + [(f"lora-r{rank}", {"freeze_ratio": None, "lora_rank": rank}) for rank in lora_ranks])


def run_ablation(base: TrainConfig, freeze_ratios=DEFAULT_FREEZE_RATIOS,
                 lora_ranks=DEFAULT_LORA_RANKS) -> dict[str, Any]:
    """Train every setting of the grid from ``base`` (its ``output_dir`` holds one folder per setting)."""
    from imreward.train import train

    if lora_ranks:
        import peft  # noqa: F401  (imported before the clock starts, so no setting's time includes it)
    root = Path(base.output_dir)
    rows = []
    for name, overrides in settings_grid(freeze_ratios, lora_ranks):
        config = dataclasses.replace(base, output_dir=root / name, **overrides)
        start = time.perf_counter()
        result = train(config)
        rows.append({"setting": name, **overrides, "val_accuracy": result.best_val.get("accuracy"),
                     "val_loss": result.best_val.get("loss"),
                     "test_accuracy": None if result.test is None else result.test["accuracy"],
                     "steps": result.global_step, "best_step": result.best_step,
                     "trainable_parameters": result.trainable_parameters, "total_parameters": result.total_parameters,
                     "wall_seconds": time.perf_counter() - start, "best_dir": str(result.best_dir)})
    return {"train_data": str(base.train_data), "val_data": str(base.val_data),
            "test_data": None if base.test_data is None else str(base.test_data), "seed": base.seed,
            "init": None if base.init is None else str(base.init), "lr": base.lr, "batch_size": base.batch_size,
            "epochs": base.epochs, "max_steps": base.max_steps, "settings": rows}


def _number(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def ablation_markdown(result: dict[str, Any], machine: str = "") -> str:
    from imreward.eval.report import markdown_table

    lines = ["# Freezing and LoRA ablation", "",
             f"Data: train `{result['train_data']}`, validation `{result['val_data']}`, test "
             f"`{result['test_data']}`; seed {result['seed']}, lr {result['lr']}, batch {result['batch_size']}, "
             f"epochs {result['epochs']}, max steps {result['max_steps']}, init `{result['init']}`."
             + (f" Wall times measured on {machine}." if machine else ""), ""]
    lines += markdown_table(
        ["setting", "trainable params", "val accuracy (best)", "test accuracy", "steps", "best step", "wall time (s)"],
        [[row["setting"], f"{row['trainable_parameters']:,} / {row['total_parameters']:,}",
          _number(row["val_accuracy"]), _number(row["test_accuracy"]), str(row["steps"]), str(row["best_step"]),
          f"{row['wall_seconds']:.1f}"] for row in result["settings"]])
    return "\n".join(lines) + "\n"


def plot_ablation(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = result["settings"]
    names = [row["setting"] for row in rows]
    positions = np.arange(len(rows))
    figure, (accuracy, seconds) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    for offset, (key, label) in enumerate((("val_accuracy", "validation"), ("test_accuracy", "test"))):
        heights = [np.nan if row[key] is None else row[key] for row in rows]
        accuracy.bar(positions + (offset - 0.5) * 0.4, heights, 0.4, label=label)
    accuracy.set_xticks(positions, names, rotation=20, ha="right")
    accuracy.set_ylabel("pair accuracy")
    accuracy.set_ylim(0, 1)
    accuracy.axhline(0.5, color="gray", linewidth=0.8, linestyle="--")
    accuracy.legend()
    seconds.bar(positions, [row["wall_seconds"] for row in rows], color="C2")
    seconds.set_xticks(positions, names, rotation=20, ha="right")
    seconds.set_ylabel("wall time (s)")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_ablation(result: dict[str, Any], output_dir: str | Path, machine: str = "") -> dict[str, Path]:
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": output_dir / ABLATION_JSON, "markdown": output_dir / ABLATION_MARKDOWN,
             "figure": output_dir / ABLATION_FIGURE}
    paths["json"].write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    paths["markdown"].write_text(ablation_markdown(result, machine), encoding="utf-8")
    plot_ablation(result, paths["figure"])
    return paths


def _number_list(kind):
    def parse(text: str) -> list:
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from error
    return parse


def register(subparsers) -> None:
    parser = subparsers.add_parser("train-ablation", help="train the freezing / LoRA grid on one dataset and "
                                                          "tabulate validation and test accuracy")
    parser.add_argument("--train", metavar="DATA", help="training data (as for imreward train)")
    parser.add_argument("--val", metavar="DATA", help="validation data (selects each run's best checkpoint)")
    parser.add_argument("--test", metavar="DATA", help="test data, scored with each run's best checkpoint")
    parser.add_argument("--image-root")
    parser.add_argument("--output", required=True, metavar="DIR", help="one run folder per setting, and the tables")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default=None, help="as for imreward train")
    parser.add_argument("--model-config", metavar="CONFIG.json")
    parser.add_argument("--init", metavar="CHECKPOINT", help="BLIP model_large.pth or an ImageReward checkpoint")
    parser.add_argument("--freeze-ratios", type=_number_list(float), default=list(DEFAULT_FREEZE_RATIOS),
                        help="default: 0,0.3,0.7,1")
    parser.add_argument("--lora-ranks", type=_number_list(int), default=list(DEFAULT_LORA_RANKS),
                        help="default: 4,16 (empty: no LoRA settings)")
    parser.add_argument("--lora-targets", help="comma-separated module-name suffixes (default: attention and MLP "
                                               "projections)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--device", default=None)
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    parser.add_argument("--machine", default="", help="names the machine in the table, e.g. '2-core CPU'")
    parser.add_argument("--quiet", "-q", action="store_true")
    parser.set_defaults(handler=_ablation_command, freeze_ratio=None)


def _ablation_command(args: argparse.Namespace) -> int:
    import logging
    import sys

    from imreward.train.lora import parse_lora_targets

    args = apply_recipe(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    targets = parse_lora_targets(args.lora_targets)
    try:
        base = TrainConfig(
            train_data=args.train, val_data=args.val, test_data=args.test, output_dir=args.output,
            image_root=args.image_root, model_config=args.model_config, init=args.init, epochs=args.epochs,
            max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
            eval_every=args.eval_every, num_workers=args.num_workers, device=args.device, precision=args.precision,
            lora_targets=targets, tensorboard=False, progress=not args.quiet)
        if not args.freeze_ratios and not args.lora_ranks:
            raise ValueError("the grid is empty: give --freeze-ratios and/or --lora-ranks")
        result = run_ablation(base, args.freeze_ratios, args.lora_ranks)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        raise SystemExit(f"imreward train-ablation: {error}") from error
    paths = write_ablation(result, args.output, args.machine)
    print(Path(paths["markdown"]).read_text(), end="")
    print("wrote " + ", ".join(str(path) for path in paths.values()), file=sys.stderr)
    return 0
