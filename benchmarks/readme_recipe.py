"""Run the README's synthetic-data training recipe exactly as written and report accuracy and time.

The commands are read from README.md (the ``bash`` block that runs ``make_synthetic_preferences.py``),
so the figure the README gives and the commands it shows cannot drift apart. They run in a fresh
working folder (the README's relative paths land there); ``--threads`` and ``--max-steps`` are the
only options added, and only when given (``--max-steps`` stops early on the full run's schedule, so
its time per step is that of the full run).

    python benchmarks/readme_recipe.py                         # the recipe as the README states it
    python benchmarks/readme_recipe.py --threads 2 --max-steps 125

Prints one JSON object: test and validation pair accuracy, wall and CPU seconds of each command,
threads, the machine's core count and load average (a busy machine inflates wall times; CPU
seconds are less affected).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE_MARKER = "make_synthetic_preferences.py"


def readme_recipe(readme: str | Path = ROOT / "README.md") -> list[list[str]]:
    """The commands (argument lists) of the README's fenced bash block that runs ``RECIPE_MARKER``;
    backslash line continuations are joined, comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", Path(readme).read_text(encoding="utf-8"), flags=re.DOTALL)
    matching = [block for block in blocks if RECIPE_MARKER in block]
    if len(matching) != 1:
        raise ValueError(f"expected one bash block running {RECIPE_MARKER} in {readme}, found {len(matching)}")
    commands = []
    for line in matching[0].replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(words)
    return commands


def runnable(command: list[str]) -> list[str]:
    """``python`` becomes this interpreter and ``imreward`` this checkout's CLI module."""
    if command[0] == "python":
        return [sys.executable, str(ROOT / command[1]), *command[2:]]
    if command[0] == "imreward":
        return [sys.executable, "-m", "imreward.cli", *command[1:]]
    raise ValueError(f"unexpected command in the README recipe: {shlex.join(command)}")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="append --threads N to the train command")
    parser.add_argument("--max-steps", type=int, default=None, help="append --max-steps N (timing runs)")
    parser.add_argument("--keep", help="work in this folder instead of a temporary one")
    args = parser.parse_args()
    commands = readme_recipe()
    extra = (["--threads", str(args.threads)] if args.threads else []) + \
            (["--max-steps", str(args.max_steps)] if args.max_steps else []) + ["--quiet", "--no-tensorboard"]
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="readme-recipe-"))
    workdir.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    load_before = os.getloadavg()
    report = {"commands": [shlex.join(command) for command in commands], "added_options": extra,
              "cores": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "seconds": [],
              "cpu_seconds": []}
    summary = None
    for command in commands:
        full = runnable(command) + (extra if command[0] == "imreward" else [])
        start, cpu_start = time.perf_counter(), _children_cpu_seconds()
        finished = subprocess.run(full, cwd=workdir, env=environment, capture_output=True, text=True)
        report["seconds"].append(round(time.perf_counter() - start, 1))
        report["cpu_seconds"].append(round(_children_cpu_seconds() - cpu_start, 1))
        if finished.returncode:
            sys.exit(f"{shlex.join(full)} failed:\n{finished.stderr[-3000:]}")
        if command[0] == "imreward":
            summary = json.loads(finished.stdout.strip().splitlines()[-1])
            threads = re.search(r"(\d+) torch threads", finished.stderr)
            report["threads"] = int(threads.group(1)) if threads else None
    report.update(load_average_before=[round(x, 2) for x in load_before],
                  load_average_after=[round(x, 2) for x in os.getloadavg()], steps=summary["steps"],
                  best_step=summary["best_step"], val_accuracy=summary["best_val"]["accuracy"],
                  test_accuracy=summary["test"]["accuracy"] if summary["test"] else None, workdir=str(workdir))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
