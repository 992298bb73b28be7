"""The ``imreward`` command line: a thin layer over the Python API.

Core commands (``score``, ``rank``) live here; the applications (evaluation, training, serving,
ReFL, annotation) each add their subcommands through a ``register(subparsers)`` function in their
own ``cli`` module, imported only when present.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

APPLICATION_CLIS = ("imreward.eval.cli", "imreward.train.cli", "imreward.serve.cli", "imreward.batch.cli",
                    "imreward.refl.cli", "imreward.annotate.cli")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that loads a reward model."""
    parser.add_argument("--model", default="ImageReward-v1.0",
                        help="registered scorer (imreward models), save_pretrained folder, .pt checkpoint, "
                             "module:function factory or hub repo (default: %(default)s)")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if available)")
    add_dtype_argument(parser)
    parser.add_argument("--download-root", default=None, help="cache folder for downloaded weights")
    parser.add_argument("--med-config", default=None, help="BLIP med_config.json for a .pt checkpoint")
    parser.add_argument("--max-length", type=int, default=None, help="prompt tokens (default 35, as trained)")


def add_dtype_argument(parser: argparse.ArgumentParser, flag: str = "--dtype") -> None:
    """The scorers' precision (``imreward.precision``), ``auto`` by default."""
    from imreward.precision import DTYPE_CHOICES

    parser.add_argument(flag, default="auto", choices=DTYPE_CHOICES,
                        help="auto (default): bfloat16 on a CPU with AMX-BF16, float16 with AMX-FP16, float32 on "
                             "other CPUs, each scorer's own (float32) on a GPU; int8: the backbones' linear "
                             "layers quantized, CPU only, faster without AMX, scores move more (README 'Speed')")


def add_image_formats_argument(parser: argparse.ArgumentParser) -> None:
    """``--image-formats``: the encoded formats a command accepts (see ``imreward.image_io``)."""
    parser.add_argument("--image-formats", default="png,jpeg,webp", metavar="LIST",
                        help="comma-separated image formats to open (default: %(default)s); widen for files you "
                             "trust, e.g. png,jpeg,webp,gif,bmp,tiff ('local' names that list); EPS never")


def image_formats_from_args(args: argparse.Namespace) -> frozenset[str]:
    from imreward.image_io import parse_formats

    try:
        return parse_formats(args.image_formats)
    except ValueError as error:
        raise SystemExit(f"imreward: error: --image-formats: {error}") from None


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def add_threads_argument(parser: argparse.ArgumentParser, by_model_size: bool = True) -> None:
    """``--threads``, applied with ``imreward.threads.set_threads`` (after loading the model when
    ``by_model_size``, so that small models get one thread)."""
    default = "1 for models under 50M parameters, else " if by_model_size else ""
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help=f"torch CPU threads (default: {default}the cores shared among this machine's "
                             "processes; OMP_NUM_THREADS, when set, is kept)")


def load_model_from_args(args: argparse.Namespace, spec: str | None = None):
    """The scorer ``spec`` (default ``--model``) names (``imreward.load_scorer``), in eval mode;
    ImageReward-only options are passed only when given, so any scorer works with the defaults."""
    import imreward

    options = {name: getattr(args, name, None) for name in ("med_config", "max_length")}  # not every command has them
    scorer = imreward.load_scorer(spec or args.model, device=args.device, dtype=args.dtype,
                                  download_root=args.download_root,
                                  **{name: value for name, value in options.items() if value is not None})
    if getattr(scorer, "precision", None):
        print(f"{spec or args.model}: {scorer.precision}", file=sys.stderr)
    return scorer.eval() if hasattr(scorer, "eval") else scorer


DEFAULT_MODEL = "ImageReward-v1.0"


def model_specs(specs: list[str] | None) -> dict[str, str]:
    """Name -> scorer spec of each ``--model`` (default ``DEFAULT_MODEL``); refuses two with one name."""
    models: dict[str, str] = {}
    for spec in specs or [DEFAULT_MODEL]:
        name, source = parse_model_spec(spec)
        if name in models:
            raise SystemExit(f"two models are named {name!r}: give them names with NAME=MODEL")
        models[name] = source
    return models


def parse_model_spec(spec: str) -> tuple[str, str]:
    """``"name=path"`` -> (name, path); a bare path or registry name is named after its last component."""
    name, separator, source = spec.partition("=")
    if separator and name and "/" not in name and os.sep not in name:
        return name, source
    return Path(spec.rstrip("/\\")).name or spec, spec


def scorer_loader(args: argparse.Namespace) -> Callable[[str], Any]:
    """spec -> scorer as ``load_model_from_args`` loads it, with the thread count chosen for its size
    (for commands that take several scorers)."""
    from imreward.threads import set_threads

    def load(spec: str) -> Any:
        scorer = load_model_from_args(args, spec)
        set_threads(args.threads, scorer)
        return scorer

    return load


def print_summary(summary: dict[str, Any], main_process: bool | None = None) -> None:
    """Print a command's final JSON summary on stdout, once per run: only from the main process
    (``main_process``, else ``RANK`` 0 as torchrun and accelerate set it)."""
    if main_process is None:
        main_process = int(os.environ.get("RANK", "0")) == 0
    if main_process:
        print(json.dumps(summary), flush=True)


def _read_pairs(path: str) -> Iterator[tuple[str, str]]:
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8")
    with stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                yield record["prompt"], record["image"]
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise SystemExit(f"{path}:{number}: expected {{\"prompt\": ..., \"image\": ...}} ({error})")


SPREADSHEET_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """Text a spreadsheet would run as a formula (``=HYPERLINK(...)``, ``+cmd|...``), prefixed with
    ``'`` so it shows as text (OWASP's CSV-injection rule); numbers and other text unchanged."""
    return "'" + value if isinstance(value, str) and value.startswith(SPREADSHEET_FORMULA_STARTS) else value


class RowWriter:
    """Writes result rows as JSON lines or CSV (text cells made safe for spreadsheets)."""

    def __init__(self, stream: TextIO, fmt: str, fields: list[str]) -> None:
        self.stream, self.fmt, self.fields = stream, fmt, fields
        if fmt == "csv":
            self.csv = csv.DictWriter(stream, fieldnames=fields, extrasaction="ignore")
            self.csv.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "csv":
            self.csv.writerow({key: spreadsheet_safe(value) for key, value in row.items()})
        else:
            self.stream.write(json.dumps(row, ensure_ascii=False) + "\n")


def _score_command(args: argparse.Namespace) -> int:
    if args.input:
        pairs = list(_read_pairs(args.input))
    elif args.prompt is not None and args.images:
        pairs = [(args.prompt, image) for image in args.images]
    else:
        raise SystemExit("give --prompt and images, or --input pairs.jsonl")
    from imreward.threads import set_threads

    formats = image_formats_from_args(args)
    model = load_model_from_args(args)
    model.image_formats = formats
    set_threads(args.threads, model)
    failures: dict[int, str] = {}

    def report(index: int, error: Exception) -> None:
        failures[index] = str(error)
        print(f"error: {error}", file=sys.stderr)

    scores = model.score_batch([p for p, _ in pairs], [i for _, i in pairs], batch_size=args.batch_size,
                               progress=len(pairs) > args.batch_size and not args.quiet, on_error=report)
    rank_of = {}
    if args.command == "rank":
        valid = sorted((i for i, s in enumerate(scores) if s is not None), key=lambda i: -scores[i])
        rank_of = {index: position + 1 for position, index in enumerate(valid)}
    fields = ["prompt", "image", "score"] + (["rank"] if args.command == "rank" else []) + ["error"]
    output = open(args.output, "w", encoding="utf-8", newline="") if args.output else contextlib.nullcontext(sys.stdout)
    with output as stream:
        writer = RowWriter(stream, args.format, fields)
        for index, ((prompt, image), score) in enumerate(zip(pairs, scores)):
            row = {"prompt": prompt, "image": image, "score": score}
            if args.command == "rank":
                row["rank"] = rank_of.get(index)
            if index in failures:
                row["error"] = failures[index]
            writer.write(row)
    if failures:
        print(f"{len(failures)} of {len(pairs)} images failed", file=sys.stderr)
        return 1
    return 0


def _add_scoring_parser(subparsers, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text)
    parser.add_argument("images", nargs="*", help="image files")
    parser.add_argument("--prompt", help="the prompt for all images")
    if name == "score":
        parser.add_argument("--input", help="JSON lines file of {\"prompt\": ..., \"image\": ...} ('-' for stdin)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    parser.add_argument("--output", "-o", help="write results here instead of stdout")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_model_arguments(parser)
    add_image_formats_argument(parser)
    add_threads_argument(parser)
    parser.set_defaults(handler=_score_command, input=None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imreward", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_scoring_parser(subparsers, "score", "score images for prompts")
    _add_scoring_parser(subparsers, "rank", "rank images for one prompt (1 = best)")
    models = subparsers.add_parser("models", help="list the registered models and scorers: source, size, licence "
                                                   "and training data")
    models.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    models.set_defaults(handler=_models_command)
    for module_name in APPLICATION_CLIS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and module_name.startswith(error.name):
                continue  # that application is not part of this installation
            raise
        module.register(subparsers)
    return parser


MODEL_COLUMNS = (("name", "NAME"), ("licence", "LICENCE"), ("size", "SIZE"), ("trained_on", "TRAINED ON"),
                 ("source", "SOURCE"))
WRAPPED_COLUMNS = ("size", "trained_on", "source")


def _models_command(args: argparse.Namespace) -> int:
    import imreward

    rows = []
    for name in imreward.available_scores():
        info = imreward.scorer_info(name)
        rows.append({"name": name, "source": info.source, "licence": info.licence, "size": info.size,
                     "trained_on": info.trained_on})
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        print(format_table(rows, MODEL_COLUMNS, WRAPPED_COLUMNS))
    return 0


def format_table(rows: list[dict[str, str]], columns: tuple[tuple[str, str], ...], wrapped: tuple[str, ...],
                 width: int | None = None) -> str:
    """A plain-text table for the terminal: ``wrapped`` columns share the width the others leave
    (the standard library has wrapping but no table; not worth a dependency)."""
    import shutil
    import textwrap

    width = width or shutil.get_terminal_size((160, 24)).columns
    natural = {key: max([len(header)] + [len(row[key] or "-") for row in rows]) for key, header in columns}
    left = width - 2 * (len(columns) - 1) - sum(natural[key] for key, _ in columns if key not in wrapped)
    share = max(12, left // max(1, len(wrapped)))
    widths = {key: min(natural[key], share) if key in wrapped else natural[key] for key, _ in columns}
    lines = ["  ".join(header.ljust(widths[key]) for key, header in columns).rstrip()]
    for row in rows:
        cells = [textwrap.wrap(row[key] or "-", widths[key]) or ["-"] for key, _ in columns]
        for depth in range(max(len(cell) for cell in cells)):
            lines.append("  ".join((cell[depth] if depth < len(cell) else "").ljust(widths[key])
                                   for cell, (key, _) in zip(cells, columns)).rstrip())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from imreward.errors import CheckpointError, ModelDownloadError, ScorerOptionError, UnknownScorerError

    try:
        return args.handler(args)
    except (ModelDownloadError, CheckpointError, FileNotFoundError, UnknownScorerError,
            ScorerOptionError) as error:  # user errors: no traceback
        print(f"imreward: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
