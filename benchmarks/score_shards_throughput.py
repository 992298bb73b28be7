"""Batch scoring over shards: rows/s of the local and the Ray engine on the same WebDataset shards,
and the driver's peak memory for a small and a large synthetic Parquet input (it must stay flat).

Throughput: ``--rows`` generated JPEGs (``--image-size`` px) in ``--shards`` tar shards, scored by
the tiny preset model (or ``--model``) with each engine. "warm" rows/s counts the rows of every
batch after the first one, over the time from the first scored batch to the end (the run's
summary). Each engine runs ``--runs`` times; the last runs (Ray already up, actors and models
loaded anew) give the ratio of rows/s.

Memory: ``--memory-rows`` (e.g. ``10000,1000000``) rows of 8x8 JPEGs in Parquet files of
``--rows-per-file`` rows, scored by the local engine in a fresh process with a constant scorer
(decoding, batching and writing are all that remain), whose peak RSS (``ru_maxrss``) is reported::

    python benchmarks/score_shards_throughput.py --rows 4000 --shards 8 --actors 2
    python benchmarks/score_shards_throughput.py --skip-throughput --memory-rows 10000,1000000
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent


def constant_scorer(device=None, download_root=None, **_):
    """A scorer that scores every decoded image 0.0 (``score_shards_throughput:constant_scorer``)."""

    class Constant:
        def score_batch(self, prompts, images, batch_size=32, progress=False, on_error=None):
            return [0.0] * len(images)

    return Constant()


def jpegs(count: int, size: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    encoded = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
        encoded.append(buffer.getvalue())
    return encoded


def write_tars(folder: Path, rows: int, shards: int, size: int) -> Path:
    folder.mkdir(parents=True)
    images = jpegs(64, size)
    per_shard = -(-rows // shards)
    for shard in range(shards):
        with tarfile.open(folder / f"{shard:05d}.tar", "w") as archive:
            for row in range(shard * per_shard, min(rows, (shard + 1) * per_shard)):
                for extension, data in (("jpg", images[row % len(images)]), ("txt", f"image {row % 97}".encode())):
                    info = tarfile.TarInfo(f"{row:09d}.{extension}")
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
    return folder


def write_parquet(folder: Path, rows: int, rows_per_file: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    images = jpegs(16, 8)
    for number, start in enumerate(range(0, rows, rows_per_file)):
        count = min(rows_per_file, rows - start)
        table = pa.table({"key": [f"{start + i:09d}" for i in range(count)],
                          "image": pa.array([images[i % len(images)] for i in range(count)], pa.binary()),
                          "prompt": [f"image {i % 97}" for i in range(count)]})
        pq.write_table(table, folder / f"{number:05d}.parquet")
    return folder


def timed_run(data: Path, output: Path, model: str, engine: str, args: argparse.Namespace) -> dict:
    import imreward
    from imreward.ray import RayOptions

    imreward.score_shards(data, output, [model], engine=engine, batch_size=args.batch_size, device="cpu",
                          num_workers=args.num_workers, ray=RayOptions(actors=args.actors), progress=False)
    summary = json.loads((output / "_summary.json").read_text())
    return {key: summary[key] for key in ("engine", "rows", "seconds", "rows_per_s", "startup_seconds",
                                          "warm_rows_per_s")}


def throughput(args: argparse.Namespace, scratch: Path) -> list[dict]:
    sys.path.insert(0, str(HERE))
    from serve_load import save_preset

    model = args.model or str(save_preset("tiny", scratch / "model"))
    data = write_tars(scratch / "tars", args.rows, args.shards, args.image_size)
    results = [{**timed_run(data, scratch / f"out-{engine}-{run}", model, engine, args), "run": run}
               for engine in ("local", "ray") for run in range(1, args.runs + 1)]
    local, ray = results[args.runs - 1], results[-1]  # the last run of each: Ray already started
    ray["rows_per_s_ratio_to_local"] = round(ray["rows_per_s"] / local["rows_per_s"], 3)
    return results


def driver_memory(rows: int, args: argparse.Namespace, scratch: Path) -> dict:
    data = write_parquet(scratch / f"parquet-{rows}", rows, args.rows_per_file)
    code = ("import json, resource, time, imreward; started = time.perf_counter(); "
            f"imreward.score_shards({str(data)!r}, {str(scratch / f'mem-out-{rows}')!r}, "
            "{'c': 'score_shards_throughput:constant_scorer'}, num_workers=0, batch_size=256, progress=False); "
            "print(json.dumps({'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
            "'seconds': time.perf_counter() - started}))")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
                   "OMP_NUM_THREADS": "1"}
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True)
    measured = json.loads(output.stdout.strip().splitlines()[-1])
    return {"rows": rows, "peak_rss_mb": round(measured["peak_rss_mb"], 1), "seconds": round(measured["seconds"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="scorer spec (default: the tiny preset, saved)")
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=1, help="local engine decoding processes")
    parser.add_argument("--actors", type=int, default=2, help="Ray engine actors")
    parser.add_argument("--runs", type=int, default=2, help="runs per engine (the later ones find Ray started)")
    parser.add_argument("--memory-rows", default="10000,1000000", help="comma-separated row counts ('' to skip)")
    parser.add_argument("--rows-per-file", type=int, default=10000)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    report: dict = {"machine": f"{os.cpu_count()} CPUs", "throughput": [], "driver_memory": []}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if not args.skip_throughput:
            report["throughput"] = throughput(args, scratch)
            print(json.dumps(report["throughput"]), file=sys.stderr)
        for rows in filter(None, args.memory_rows.split(",")):
            report["driver_memory"].append(driver_memory(int(rows), args, scratch))
            print(json.dumps(report["driver_memory"][-1]), file=sys.stderr)
    if len(report["driver_memory"]) >= 2:
        first, last = report["driver_memory"][0], report["driver_memory"][-1]
        report["memory_ratio"] = round(last["peak_rss_mb"] / first["peak_rss_mb"], 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
