"""``imreward benchmark``: read the inputs named on the command line, run the generator benchmark
(``imreward.eval.benchmark``) with every requested metric and write its reports."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

FID_CACHE_FOLDER = "fid-features"


def _read_json(path: str, option: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"imreward benchmark: {option} {path}: {error}") from error


def benchmark_from_args(args: argparse.Namespace, cache_file: str) -> int:
    from imreward.cli import scorer_loader
    from imreward.errors import ModelDownloadError
    from imreward.eval.benchmark import read_benchmark_prompts, run_benchmark
    from imreward.eval.benchmark_report import write_benchmark
    from imreward.eval.distinguishability import read_human_labels
    from imreward.eval.fid import ReferenceFid

    scorers = [name.strip() for name in (args.model if args.scorers is None else args.scorers).split(",")
               if name.strip()]
    if args.scorers is not None and not scorers and not args.fid_reference:
        raise SystemExit("imreward benchmark: --scorers is empty and no --fid-reference is given")
    output_dir = Path(args.output_dir)
    cache = Path(args.cache or output_dir / cache_file)
    human_ranks = _read_json(args.human_ranks, "--human-ranks") if args.human_ranks else None
    if human_ranks is not None and not isinstance(human_ranks, dict):
        raise SystemExit(f"imreward benchmark: --human-ranks {args.human_ranks}: expected {{generator: rank}}")
    try:
        prompts = read_benchmark_prompts(args.prompts)
        labels = read_human_labels(args.human_labels) if args.human_labels else None
        fid = None
        if args.fid_reference:
            fid = ReferenceFid(args.fid_reference, cache.parent / FID_CACHE_FOLDER, args.fid_weights,
                               args.download_root, args.device, args.batch_size)
        result = run_benchmark(prompts, args.generations, scorers, scorer_loader(args), cache, fid=fid,
                               human_ranks=human_ranks, human_labels=labels, batch_size=args.batch_size,
                               n_resamples=args.bootstrap, fid_resamples=args.fid_bootstrap, seed=args.seed,
                               progress=not args.quiet, dtype=args.dtype)
    except (FileNotFoundError, NotADirectoryError, ValueError, KeyError, ModelDownloadError) as error:
        raise SystemExit(f"imreward benchmark: {error}") from error
    paths = write_benchmark(result, output_dir)
    for name, ranking in result["rankings"].items():
        print(f"{name}: " + " > ".join(ranking), file=sys.stderr)
    print("wrote " + ", ".join(str(path) for path in paths.values()), file=sys.stderr)
    return 0
