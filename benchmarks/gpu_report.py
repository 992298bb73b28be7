"""The report of ``gpu_suite.py``: parts run one by one, each timed and recorded even when it fails,
the JSON and a readable Markdown rewritten after every part; and the cards' bf16 peaks.

Peak dense bf16 tensor throughput (TFLOP/s, without sparsity): half the "with sparsity" figures of
NVIDIA's datasheets: H100 SXM 1,979 -> 989.5 and H100 PCIe 1,513 -> 756.5 ("NVIDIA H100 Tensor
Core GPU" datasheet), H200 1,979 -> 989.5 ("NVIDIA H200 Tensor Core GPU" datasheet), A100 624 ->
312 ("NVIDIA A100 Tensor Core GPU" datasheet). Other cards report no share of peak.
"""

from __future__ import annotations

import datetime
import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path

PEAK_BF16_DENSE_TFLOPS = (  # (substring of torch.cuda.get_device_name, TFLOP/s); first match wins
    ("H200", 989.5),
    ("H100 PCIe", 756.5),
    ("H100", 989.5),  # "NVIDIA H100 80GB HBM3" is the SXM card
    ("A100", 312.0),
)
PEAK_SOURCE = "NVIDIA datasheets, dense bf16 tensor TFLOP/s (half the 'with sparsity' figure)"


def peak_bf16_tflops(device_name: str) -> float | None:
    for fragment, tflops in PEAK_BF16_DENSE_TFLOPS:
        if fragment in device_name:
            return tflops
    return None


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class SuiteReport:
    """Runs parts and keeps ``<out>.json`` and ``<out>.md`` current after each one."""

    def __init__(self, out: Path, header: dict) -> None:
        self.out, self.started = out, time.perf_counter()
        self.data = {**header, "started_utc": utc_now(), "finished_utc": None, "total_seconds": None, "parts": []}

    def run_part(self, name: str, title: str, part: Callable[[], dict]) -> dict:
        """Run ``part``; record its results, or its error, and its wall time. Never raises."""
        record = {"name": name, "title": title, "status": "running", "seconds": None, "results": {}, "error": None}
        self.data["parts"].append(record)
        self.write()
        started = time.perf_counter()
        try:
            results = part()
            record["status"] = results.pop("status", "ok")
            record["results"] = results
        except Exception as error:  # a failing part is reported and the next one runs
            record["status"] = "failed"
            record["error"] = f"{type(error).__name__}: {error}"
            record["traceback"] = traceback.format_exc(limit=8)
        record["seconds"] = round(time.perf_counter() - started, 2)
        print(f"[gpu_suite] {name}: {record['status']} in {record['seconds']} s", flush=True)
        self.write()
        return record

    def finish(self) -> None:
        self.data["finished_utc"] = utc_now()
        self.data["total_seconds"] = round(time.perf_counter() - self.started, 1)
        self.write()

    def write(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.data, indent=2) + "\n")
        self.out.with_suffix(".md").write_text(markdown(self.data))


def markdown(data: dict) -> str:
    lines = [f"# imreward GPU suite{' (smoke run)' if data.get('smoke') else ''}", "",
             f"Device: **{data['device']}**; torch {data['torch']}; started {data['started_utc']}; "
             f"total {data['total_seconds']} s.", ""]
    if data.get("peak_bf16_tflops"):
        lines += [f"bf16 dense peak used for shares: {data['peak_bf16_tflops']} TFLOP/s ({data['peak_source']}).", ""]
    lines += ["| part | status | seconds |", "| --- | --- | --- |"]
    lines += [f"| {p['name']}: {p['title']} | {p['status']} | {p['seconds']} |" for p in data["parts"]]
    for part in data["parts"]:
        lines += ["", f"## {part['name']}: {part['title']}", ""]
        if part["error"]:
            lines += [f"Failed: `{part['error']}`", ""]
        lines += _render(part["results"])
    return "\n".join(lines) + "\n"


def _render(value: object, depth: int = 0) -> list[str]:
    """Scalars as bullets, lists of flat dicts as tables, nested dicts as indented bullets."""
    lines: list[str] = []
    indent = "  " * depth
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{indent}- {key}:")
                lines += _render(item, depth + 1)
            else:
                lines.append(f"{indent}- {key}: {item}")
    elif isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
        columns = list(dict.fromkeys(key for row in value for key in row))
        lines += ["", "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        lines += ["| " + " | ".join(str(row.get(column, "")) for column in columns) + " |" for row in value]
        lines.append("")
    else:
        lines.append(f"{indent}- {value}")
    return lines
