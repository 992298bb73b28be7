"""``imreward eval`` (scorers against human rankings) and ``imreward benchmark`` (generators)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_SCORERS = "ImageReward-v1.0,CLIP,BLIP,Aesthetic"
CACHE_FILE = "scores.sqlite"


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from error
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected integers >= 1")
    return values


def _tie_threshold(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1] or auto, got {text!r}") from error
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1] or auto, got {text!r}")
    return value


def register(subparsers) -> None:
    from imreward.cli import add_dtype_argument, add_model_arguments, add_threads_argument

    from imreward.eval.benchmarks import BENCHMARKS, TIE_RULES

    evaluate = subparsers.add_parser("eval", help="compare scorers with human rankings (the paper's Table 3), or "
                                                  "tabulate their accuracy on public benchmarks (--benchmarks)")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="a hub dataset id (THUDM/ImageRewardDB, ymhao/HPDv2, "
                                       "yuvalkirstain/pickapic_v2), a local copy of one, ImageRewardDB rows "
                                       "(.parquet/.json/.jsonl) or the original test.json layout")
    source.add_argument("--benchmarks", type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
                        help=f"comma-separated benchmarks for one accuracy table: {', '.join(BENCHMARKS)}")
    evaluate.add_argument("--images", default=None,
                          help="folder the image paths of --data are relative to (default: the data's folder)")
    evaluate.add_argument("--split", default="test", help="split of --data (default: %(default)s)")
    evaluate.add_argument("--benchmark-data", action="append", default=[], metavar="NAME=PATH",
                          help="read a benchmark from a local copy of its dataset (repeatable)")
    evaluate.add_argument("--tie-rule", choices=TIE_RULES, default="drop",
                          help="drop: human ties left out (default); paper: each benchmark's own paper's rule")
    evaluate.add_argument("--tie-threshold", type=_tie_threshold, default=None, metavar="T|auto",
                          help="with --tie-rule paper, the Pick-a-Pic benchmarks' model-tie threshold on the two "
                               "images' softmax probabilities, as PickScore's evaluation script: a number in [0, 1], "
                               "or auto (tuned per scorer on validation_unique; default: 0, only equal scores tie)")
    evaluate.add_argument("--scorers", default=DEFAULT_SCORERS,
                          help="comma-separated scorers: registered names, checkpoint paths, module:function "
                               "factories or hub repos (default: %(default)s)")
    evaluate.add_argument("--output-dir", "-o", default="eval-report",
                          help="folder for the reports (default: %(default)s)")
    evaluate.add_argument("--cache", help=f"score cache file (default: OUTPUT_DIR/{CACHE_FILE})")
    evaluate.add_argument("--ks", type=_int_list, default=[1, 2, 4], help="k of R@k and F@k (default: 1,2,4)")
    evaluate.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default: %(default)s)")
    evaluate.add_argument("--confidence", type=float, default=0.95)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if available)")
    add_dtype_argument(evaluate)
    evaluate.add_argument("--download-root", default=None, help="cache folder for downloaded weights")
    evaluate.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    add_threads_argument(evaluate)
    evaluate.set_defaults(handler=_eval_command)

    benchmark = subparsers.add_parser("benchmark", help="judge text-to-image generators by rewards, CLIP score and "
                                                        "FID against human ranks (the paper's Table 1)")
    benchmark.add_argument("--prompts", required=True, help="JSON list of {id, prompt} (benchmark-prompts.json)")
    benchmark.add_argument("--generations", required=True,
                           help="folder with one subfolder of {id}_{k}.{png,jpg,jpeg,webp} per generator")
    benchmark.add_argument("--scorers", help="comma-separated scorers (registered names such as ImageReward-v1.0 "
                                             "and CLIP, checkpoints, hub repos; default: --model)")
    benchmark.add_argument("--fid-reference", help="folder of reference images (e.g. MS-COCO val) for FID")
    benchmark.add_argument("--fid-weights", help="local copy of pt_inception-2015-12-05-6726825d.pth "
                                                 "(default: downloaded once and checksum-verified)")
    benchmark.add_argument("--fid-bootstrap", type=int, default=100,
                           help="random halves of the images for FID's jackknife interval (default: %(default)s)")
    benchmark.add_argument("--human-ranks", help="JSON {generator: human rank} to correlate with")
    benchmark.add_argument("--human-labels", help="per-image human ranks for distinguishability: JSON (lines) of "
                                                  "{id, ranking: {\"<generator>/<file>\": rank}}")
    benchmark.add_argument("--output-dir", "-o", default="benchmark-report", help="(default: %(default)s)")
    benchmark.add_argument("--cache", help=f"score cache file (default: OUTPUT_DIR/{CACHE_FILE}); FID features "
                                           "are cached in fid-features/ beside it")
    benchmark.add_argument("--bootstrap", type=int, default=1000)
    benchmark.add_argument("--seed", type=int, default=0)
    benchmark.add_argument("--batch-size", type=int, default=32)
    benchmark.add_argument("--quiet", "-q", action="store_true")
    add_model_arguments(benchmark)
    add_threads_argument(benchmark)
    benchmark.set_defaults(handler=_benchmark_command)


def _benchmark_data(pairs: list[str]) -> dict[str, str]:
    from imreward.eval.benchmarks import BENCHMARKS

    data = {}
    for pair in pairs:
        name, separator, path = pair.partition("=")
        if not separator or name not in BENCHMARKS:
            raise SystemExit(f"--benchmark-data {pair!r}: expected NAME=PATH with NAME one of {', '.join(BENCHMARKS)}")
        data[name] = path
    return data


def _table_command(args: argparse.Namespace, specs: list[str]) -> int:
    from imreward.cli import scorer_loader
    from imreward.eval.benchmark_table import run_benchmark_table, write_table
    from imreward.eval.benchmarks import resolve_benchmarks

    try:
        benchmarks = resolve_benchmarks(args.benchmarks)
    except ValueError as error:
        raise SystemExit(f"--benchmarks: {error}") from error
    if args.tie_threshold is not None and args.tie_rule != "paper":
        raise SystemExit("--tie-threshold applies to the Pick-a-Pic rule: add --tie-rule paper")
    output_dir = Path(args.output_dir)
    details: dict = {}
    result = run_benchmark_table(
        benchmarks, specs, scorer_loader(args),
        args.cache or output_dir / CACHE_FILE, tie_rule=args.tie_rule, data=_benchmark_data(args.benchmark_data),
        batch_size=args.batch_size, n_resamples=args.bootstrap, confidence=args.confidence, seed=args.seed,
        progress=not args.quiet, tie_threshold=args.tie_threshold, details=details, dtype=args.dtype)
    for name, entry in result["benchmarks"].items():
        computed = sum(stats["computed"] for stats in entry["cache"].values())
        print(f"{name}: {entry['prompts']} prompts, {entry['pairs']} pairs, {entry['prompts_skipped']} prompts "
              f"skipped; {computed} scores computed, the rest from the cache", file=sys.stderr)
    paths = write_table(result, output_dir, details)
    print("wrote " + ", ".join(str(path) for path in paths.values()), file=sys.stderr)
    return 0


def _eval_command(args: argparse.Namespace) -> int:
    from imreward.data import DatasetDownloadError
    from imreward.errors import UnknownScorerError
    from imreward.data.loading import load_preference_data
    from imreward.eval.report import write_reports
    from imreward.eval.runner import run_evaluation
    from imreward.hub import check_scorer

    specs = [spec.strip() for spec in args.scorers.split(",") if spec.strip()]
    if not specs:
        raise SystemExit("--scorers is empty")
    problems = {}
    for spec in specs:
        try:
            check_scorer(spec)
        except UnknownScorerError as error:
            problems[spec] = str(error)
    if problems:
        raise SystemExit(f"unknown scorers {', '.join(problems)}:\n" + "\n".join(problems.values()))
    try:
        if args.benchmarks is not None:
            return _table_command(args, specs)
        prompts, stats = load_preference_data(args.data, args.split, args.images, policy="eval")
    except (FileNotFoundError, ValueError, DatasetDownloadError) as error:
        raise SystemExit(f"imreward eval: {error}") from error
    output_dir = Path(args.output_dir)
    run = run_evaluation(prompts, specs, args.cache or output_dir / CACHE_FILE, device=args.device,
                         download_root=args.download_root, batch_size=args.batch_size, ks=args.ks,
                         n_resamples=args.bootstrap, confidence=args.confidence, seed=args.seed,
                         progress=not args.quiet, skipped=stats.skipped, dtype=args.dtype, threads=args.threads)
    paths = write_reports(run, output_dir, data=str(args.data), images=str(args.images or ""),
                          unlabelled=stats.unlabelled)
    for item in run.skipped:
        print(f"skipped prompt {item['id']} ({item['reason']}): {item['images'][0]}", file=sys.stderr)
    print(f"{len(run.prompts)} of {run.total_prompts} prompts evaluated, {len(run.skipped)} skipped", file=sys.stderr)
    for spec, stats in run.cache_stats.items():
        print(f"{spec}: {stats['hits']} scores from the cache, {stats['misses']} computed", file=sys.stderr)
    print("wrote " + ", ".join(str(path) for path in paths.values()), file=sys.stderr)
    return 0 if run.prompts else 1


def _benchmark_command(args: argparse.Namespace) -> int:
    from imreward.eval.generator_study import benchmark_from_args

    return benchmark_from_args(args, CACHE_FILE)
