"""``benchmarks/gpu_suite.py --smoke``: every part runs on the CPU and the report has the promised structure;
a failing part is recorded and the next one still runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
PARTS = ["correctness", "scoring", "files", "serving", "training", "refl", "rl"]


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("suite") / "gpu-report.json"
    run = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_suite.py"), "--smoke", "--out", str(out)],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(out.read_text()), out.with_suffix(".md").read_text()


def test_every_part_ran_and_was_timed(smoke_report):
    report, markdown = smoke_report
    assert [part["name"] for part in report["parts"]] == PARTS
    for part in report["parts"]:
        assert part["status"] == "ok" and part["error"] is None, part
        assert part["seconds"] > 0
        assert f"## {part['name']}:" in markdown
    assert report["smoke"] is True and report["device"].startswith("cpu") and report["total_seconds"] > 0
    assert report["peak_bf16_tflops"] is None  # no share of a peak is invented for an unknown device
    assert set(report["ran_on_device"].values()) == {"ok"}


def test_each_part_reports_its_figures(smoke_report):
    parts = {part["name"]: part["results"] for part in smoke_report[0]["parts"]}
    correctness = parts["correctness"]
    assert correctness["device_fp32_vs_cpu_fp32"]["within_1e-4"] and correctness["score_tensor_gradients"]["match"]
    assert 0 < correctness["bfloat16_vs_fp32"]["max_abs"] < 0.2 and correctness["pairs"] == 44
    rows = parts["scoring"]["rows"]
    assert {row["mode"] for row in rows} == {"float32", "tf32", "bfloat16", "float16"}
    compiled = [row for row in rows if row["variant"] == "compile"]
    assert compiled and all(row["compile_s"] > 0 and row["images_per_s"] > 0 for row in compiled)
    assert parts["scoring"]["flops_per_image"] > 0 and "skipped" in parts["scoring"]["original_loop"]
    assert {row["path"] for row in parts["files"]["rows"]} == {"score_batch", "score-dataset"}
    fallback = parts["files"]["gpu_jpeg_decode_64px"]
    assert fallback["fell_back_to_pillow"] and fallback["max_abs_deviation"] == 0.0
    assert parts["serving"]["served"][0]["p99_ms"] > 0 and parts["serving"]["median_served_to_offline"] > 0
    assert len(parts["training"]["rows"]) == 4 and set(parts["training"]["grouped_over_per_pair"]) == {
        "freeze_0.7", "freeze_0.0"}
    assert {(row["lora"], row["grad_checkpointing"]) for row in parts["refl"]["rows"]} == {(False, False), (True, True)}
    rl = parts["rl"]["placements"]
    assert set(rl) == {"local", "remote/raw", "remote/jpeg"} and all(row["rewards_per_s"] > 0 for row in rl.values())
    assert rl["remote/raw"]["bytes_per_image"] == 64 * 64 * 3 > rl["remote/jpeg"]["bytes_per_image"]


def test_a_failing_part_is_recorded_and_the_next_still_runs(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from gpu_report import SuiteReport, peak_bf16_tflops

    report = SuiteReport(tmp_path / "r.json", {"device": "test", "torch": "x", "smoke": True})

    def broken() -> dict:
        assert json.loads((tmp_path / "r.json").read_text())["parts"][-1]["status"] == "running"
        raise RuntimeError("out of memory")

    report.run_part("first", "breaks", broken)
    report.run_part("second", "works", lambda: {"value": 1})
    report.finish()
    written = json.loads((tmp_path / "r.json").read_text())
    assert [(p["status"], p["error"]) for p in written["parts"]] == [("failed", "RuntimeError: out of memory"),
                                                                     ("ok", None)]
    assert written["parts"][1]["results"] == {"value": 1} and "out of memory" in (tmp_path / "r.md").read_text()
    assert peak_bf16_tflops("NVIDIA H100 80GB HBM3") == peak_bf16_tflops("NVIDIA H200") == 989.5
    assert peak_bf16_tflops("NVIDIA H100 PCIe") == 756.5 and peak_bf16_tflops("NVIDIA GeForce GTX 1080") is None
