"""One command that proves imreward's GPU paths and times them; writes ``--out`` (JSON) and a .md beside it.

Seven parts, each timed and reported even when another fails (the report is rewritten after every part):
1. correctness: device fp32 vs CPU fp32 on the golden images (max |diff| <= 1e-4), bf16 and fp16 vs
   fp32, ``score_tensor`` gradients finite and equal between the CPU and the device;
2. scoring: pre-decoded images/s per batch size in fp32, TF32, bf16 and fp16, eager and with
   ``torch.compile`` (compile time; CUDA graphs through ``mode="reduce-overhead"`` on CUDA), FLOPs
   per image counted by ``torch.utils.flop_counter`` and the share of the card's bf16 peak; the
   original implementation's loop on the same weights when ``--original-python`` is given;
3. files: JPEG files end to end through ``score_batch`` and ``imreward score-dataset``, and the
   optional GPU JPEG decode of ``score_batch(decode="gpu")`` with its deviation from the PIL path;
4. serving: ``imreward serve`` under concurrent clients against offline throughput (``serve_load``);
5. training: pairs/s at two freeze ratios, grouped step against the original's per-pair step;
6. refl: seconds per step and peak memory, full fine-tune vs LoRA, with and without checkpointing;
7. rl: rewards/s and added latency per call of the RL reward's placements (in-process, a managed
   ``imreward serve`` with raw pixels, PNG or JPEG, a Ray actor pool with half a GPU per actor).
Parts 3-7 run the server, score-dataset, a training step, a ReFL step and the RL reward on the chosen device.

    python benchmarks/gpu_suite.py --out gpu-report.json [--original-python ORACLE/bin/python]
    python benchmarks/gpu_suite.py --smoke --out smoke.json      # CPU, tiny models, seconds (CI runs it)
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import refl_step  # noqa: E402
import rl_rewards  # noqa: E402
import score_dataset_throughput  # noqa: E402
import serve_load  # noqa: E402
import train_throughput  # noqa: E402
from gpu_report import PEAK_SOURCE, SuiteReport, peak_bf16_tflops  # noqa: E402
from scoring_throughput import synchronize, time_forward, time_original, write_images  # noqa: E402

import imreward  # noqa: E402
from imreward.config import ImageRewardConfig  # noqa: E402
from imreward.hub import POSITION_IDS_KEY, build_model  # noqa: E402
from imreward.testing import model_shapes, seeded_state_dict, tiny_config  # noqa: E402
from imreward.tokenizer import PromptTokenizer, packaged_vocab_file  # noqa: E402

GOLDEN_IMAGES = Path(__file__).resolve().parents[1] / "tests" / "golden" / "images"
PROMPTS = ["a painting of an ocean with clouds and birds, day time, low depth field effect",
           "a cat " * 30, "un château sous la neige, 雪の城", ""]
MODES = {"float32": (torch.float32, False), "tf32": (torch.float32, True), "bfloat16": (torch.bfloat16, False),
         "float16": (torch.float16, False)}
PARITY_LIMIT = 1e-4
DISTINCT_FILES = 64  # images generated per size; the files repeat them (decoding costs the same)


@contextlib.contextmanager
def tf32(enabled: bool):
    previous = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Suite:
    """State shared by the parts: the device, a scratch folder, the seeded model saved there."""

    def __init__(self, args: argparse.Namespace, scratch: Path) -> None:
        self.args, self.scratch = args, scratch
        self.device = torch.device(args.device)
        self.config = tiny_config(image_size=64) if args.smoke else ImageRewardConfig()
        self.saved: Path | None = None

    def model(self, dtype: str | torch.dtype = "float32", device: torch.device | str | None = None):
        return imreward.load(self.prepare(), device=device or self.device, dtype=dtype)

    def prepare(self) -> Path:
        """The seeded model as a saved folder; the full size goes through the published ``.pt`` layout."""
        if self.saved is None:
            tokenizer = PromptTokenizer.from_vocab(packaged_vocab_file())
            if self.args.smoke:
                model = build_model(self.config, seeded_state_dict(model_shapes(self.config)), tokenizer)
            else:
                positions = (1, self.config.text.max_position_embeddings)
                shapes = dict(model_shapes(self.config), **{POSITION_IDS_KEY: positions})
                torch.save(seeded_state_dict(shapes, salt=1), self.scratch / "ImageReward.pt")
                model = imreward.load(self.scratch / "ImageReward.pt", device="cpu")
            model.save_pretrained(self.scratch / "saved")
            self.saved = self.scratch / "saved"
        return self.saved

    # ---- part 1 ---------------------------------------------------------------------------------

    def correctness(self) -> dict:
        images = sorted(GOLDEN_IMAGES.iterdir())
        prompts = [prompt for prompt in PROMPTS for _ in images]
        files = images * len(PROMPTS)
        cpu_model, device_model = self.model("float32", "cpu"), self.model("float32")
        cpu = torch.tensor(cpu_model.score_batch(prompts, files, batch_size=16))
        results: dict = {"pairs": len(files)}
        reference = torch.tensor(device_model.score_batch(prompts, files, batch_size=16))
        difference = (reference - cpu).abs()
        results["device_fp32_vs_cpu_fp32"] = {"max_abs": float(difference.max()), "mean_abs": float(difference.mean()),
                                              "within_1e-4": bool(difference.max() <= PARITY_LIMIT)}
        for dtype in ("bfloat16", "float16"):
            scores = torch.tensor(self.model(dtype).score_batch(prompts, files, batch_size=16))
            difference = (scores - reference).abs()
            results[f"{dtype}_vs_fp32"] = {"max_abs": float(difference.max()), "mean_abs": float(difference.mean())}
        results["score_std_fp32"] = float(reference.std())
        results["score_tensor_gradients"] = self.gradients(cpu_model, device_model)
        checks = [results["device_fp32_vs_cpu_fp32"]["within_1e-4"], results["score_tensor_gradients"]["finite"],
                  results["score_tensor_gradients"]["match"]]
        results["status"] = "ok" if all(checks) else "failed"
        return results

    def gradients(self, cpu_model, device_model) -> dict:
        """``score_tensor`` input gradients of the same fp32 model on the CPU and on the device."""
        size = 64 if self.args.smoke else 256
        pixels = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        grads = []
        for model in (cpu_model, device_model):
            given = pixels.clone().to(model.device).requires_grad_()
            model.score_tensor(given, PROMPTS[:2]).sum().backward()
            grads.append(given.grad.detach().cpu())
        difference = float((grads[0] - grads[1]).abs().max())
        scale = float(grads[0].abs().max())
        return {"finite": bool(all(torch.isfinite(g).all() for g in grads)), "max_abs_difference": difference,
                "max_abs_gradient": scale, "match": difference <= 1e-3 * max(scale, 1e-12)}

    # ---- part 2 ---------------------------------------------------------------------------------

    def scoring(self) -> dict:
        args, device = self.args, self.device
        count = max(16, args.original_images) if args.original_python else 16
        paths = write_images(self.scratch, count, size=64 if args.smoke else 512)
        fp32_model = self.model("float32")  # also timed as float32 and tf32 (same weights)
        pixels = torch.stack([fp32_model.preprocess(path) for path in paths])
        text = fp32_model.encode_prompts([PROMPTS[0]])
        flops = self.flops_per_image(fp32_model, pixels, text)
        peak = peak_bf16_tflops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
        rows = []
        for mode, (dtype, use_tf32) in MODES.items():
            variants = [("eager", None)]
            if mode in args.compile_modes:
                variants.append(("compile", "default"))
                if device.type == "cuda":
                    variants.append(("compile+cuda_graphs", "reduce-overhead"))
            model = fp32_model if dtype == torch.float32 else self.model(dtype)
            for variant, compile_mode in variants:
                try:  # a variant that fails (a compile error, out of memory) costs only its own rows
                    with tf32(use_tf32):
                        rows += self.time_variant(model, pixels, text, mode, variant, compile_mode, flops, peak)
                except Exception as error:
                    rows.append({"mode": mode, "variant": variant, "error": f"{type(error).__name__}: {error}"[:300]})
                torch._dynamo.reset()
            del model
            free_memory()
        del fp32_model
        free_memory()
        results: dict = {"flops_per_image": flops, "gflop_per_image": round(flops / 1e9, 2),
                         "peak_bf16_tflops": peak, "rows": rows}
        timed = [row for row in rows if row["mode"] == "bfloat16" and "images_per_s" in row]
        if not timed:
            raise RuntimeError("no bfloat16 configuration could be timed: " + str(rows))
        best = max(timed, key=lambda row: row["images_per_s"])
        results["best_bfloat16"] = {key: best[key] for key in ("variant", "batch_size", "images_per_s")}
        if args.original_python and not args.smoke:
            namespace = argparse.Namespace(original_python=args.original_python, original_images=args.original_images)
            original = time_original(namespace, self.scratch, self.config, paths, device)
            results["original_loop_images_per_s"] = original
            results["speedup_best_bfloat16_vs_original"] = round(best["images_per_s"] / original, 1)
        else:
            results["original_loop"] = ("skipped: the original needs the full-size model" if args.smoke
                                        else "skipped: give --original-python (scripts/oracle_env.sh)")
        return results

    def time_variant(self, model, pixels, text, mode, variant, compile_mode, flops, peak) -> list[dict]:
        args, rows = self.args, []
        batch_sizes = args.batch_sizes if variant == "eager" else args.compile_batch_sizes
        compile_s = None
        if compile_mode is not None:
            compiled = torch.compile(model, backend=args.compile_backend, mode=compile_mode, dynamic=False)
            batch = pixels[:1].repeat(batch_sizes[0], 1, 1, 1).to(self.device, model.compute_dtype)
            tokens = {key: value.expand(batch_sizes[0], -1).to(self.device) for key, value in text.items()}
            started = time.perf_counter()
            with torch.inference_mode():
                compiled(batch, **tokens)
            synchronize(self.device)
            compile_s = round(time.perf_counter() - started, 2)
            model = compiled
        for batch_size in batch_sizes:
            rate = time_forward(model, pixels, text, batch_size, args.seconds)
            tflops = flops * rate / 1e12
            rows.append({"mode": mode, "variant": variant, "batch_size": batch_size, "images_per_s": round(rate, 2),
                         "tflops": round(tflops, 3), "share_of_bf16_peak": round(tflops / peak, 4) if peak else None,
                         "compile_s": compile_s})
            print(f"[gpu_suite] scoring {mode:>8} {variant:>20} batch {batch_size:>4}: {rate:10.2f} images/s",
                  flush=True)
        return rows

    def flops_per_image(self, model, pixels, text) -> int:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with torch.inference_mode(), counter:
            tokens = {key: value.expand(2, -1).to(self.device) for key, value in text.items()}
            model(pixels[:2].to(self.device), **tokens)
        return counter.get_total_flops() // 2

    # ---- parts 3 to 6 ---------------------------------------------------------------------------

    def files(self) -> dict:
        args, results = self.args, {"rows": []}
        for size in args.file_sizes:
            manifest = score_dataset_throughput.write_dataset(self.scratch / f"jpeg{size}", args.files, size,
                                                              png_every=0, distinct=DISTINCT_FILES)
            paths = [str(path) for path in sorted((manifest.parent / "images").iterdir())]
            model = self.model(args.files_dtype)
            model.score_batch(PROMPTS[0], paths[: args.files_batch_size], batch_size=args.files_batch_size)
            synchronize(self.device)
            started = time.perf_counter()
            model.score_batch(PROMPTS[0], paths, batch_size=args.files_batch_size)
            synchronize(self.device)
            rate = len(paths) / (time.perf_counter() - started)
            results["rows"].append({"path": "score_batch", "image_size": size, "images": len(paths),
                                    "dtype": args.files_dtype, "images_per_s": round(rate, 1)})
            results[f"gpu_jpeg_decode_{size}px"] = self.gpu_decode(model, paths)
            del model
            free_memory()
            options = argparse.Namespace(batch_size=args.files_batch_size, device=str(self.device),
                                         dtype=args.files_dtype, num_workers=0 if args.smoke else None)
            status, seconds = score_dataset_throughput.run_score_dataset(  # on the files written above
                manifest, [str(self.prepare())], self.scratch / f"scores{size}.parquet", options)
            if status != 0:
                raise RuntimeError(f"score-dataset exited with status {status}")
            results["rows"].append({"path": "score-dataset", "image_size": size, "images": args.files,
                                    "dtype": args.files_dtype, "images_per_s": round(args.files / seconds, 1)})
        return results

    def gpu_decode(self, model, paths: list[str]) -> dict:
        """``score_batch(decode="gpu")``: images/s and score deviation from the PIL path over the
        distinct images (synthetic, smooth gradients with noise); on the CPU, that it falls back."""
        distinct = paths[:DISTINCT_FILES]
        pil = torch.tensor(model.score_batch(PROMPTS[0], distinct, batch_size=self.args.files_batch_size))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gpu = torch.tensor(model.score_batch(PROMPTS[0], distinct, batch_size=self.args.files_batch_size,
                                                 decode="gpu"))
        deviation = (gpu - pil).abs()
        result = {"max_abs_deviation": float(deviation.max()), "mean_abs_deviation": float(deviation.mean()),
                  "images": len(distinct)}
        if self.device.type != "cuda":
            result["fell_back_to_pillow"] = any("decoding with Pillow" in str(w.message) for w in caught)
            return result
        model.score_batch(PROMPTS[0], paths[: self.args.files_batch_size], batch_size=self.args.files_batch_size,
                          decode="gpu")
        synchronize(self.device)
        started = time.perf_counter()
        model.score_batch(PROMPTS[0], paths, batch_size=self.args.files_batch_size, decode="gpu")
        synchronize(self.device)
        result["images_per_s"] = round(len(paths) / (time.perf_counter() - started), 1)
        return result

    def serving(self) -> dict:
        options = ["--model", str(self.prepare()), "--device", str(self.device)]
        if self.args.smoke:
            options += ["--requests", "6", "--concurrency", "2", "--images-per-request", "2", "--image-size", "64",
                        "--rounds", "1", "--threads", "1", "--decode-workers", "1", "--max-batch-size", "4"]
        else:
            options += ["--dtype", "bfloat16", "--requests", "200", "--concurrency", "16", "--images-per-request", "8",
                        "--image-size", "512", "--rounds", "2", "--max-batch-size", "128"]
        return serve_load.measure(serve_load.build_parser().parse_args(options))

    def training(self) -> dict:
        options = ["--device", str(self.device), "--freeze-ratios", "0.7", "0"]
        if self.args.smoke:
            options += ["--model", "small", "--prompts", "2", "--images-per-prompt", "3", "--steps", "1",
                        "--warmup", "0", "--precision", "fp32"]
        else:
            options += ["--model", "published", "--precision", "bf16", "--steps", "3", "--warmup", "1"]
        rows = train_throughput.run(train_throughput.build_parser().parse_args(options))
        ratios = {}
        for ratio in (0.7, 0.0):
            grouped, per_pair = (next(row["pairs_per_second"] for row in rows if row["freeze_ratio"] == ratio
                                      and row["step"] == kind) for kind in ("grouped", "per_pair"))
            ratios[f"freeze_{ratio}"] = round(grouped / per_pair, 2)
        free_memory()
        return {"rows": rows, "grouped_over_per_pair": ratios}

    def refl(self) -> dict:
        base = (["--family", "sd", "--preset", "tiny", "--resolution", "32", "--steps", "1", "--warmup", "0",
                 "--num-inference-steps", "4", "--lora-rank", "4"] if self.args.smoke
                else ["--family", "sd", "--preset", "full", "--resolution", "512", "--steps", "2", "--warmup", "1"])
        rows = []
        matrix = ([[], ["--lora", "--grad-checkpointing"]] if self.args.smoke  # both code paths, half the time
                  else [[], ["--grad-checkpointing"], ["--lora"], ["--lora", "--grad-checkpointing"]])
        for flags in matrix:
            rows.append(refl_step.run(refl_step.parse_args(base + flags)))
            free_memory()
        return {"rows": rows}

    def rl(self) -> dict:
        options = ["--model", str(self.prepare()), "--device", str(self.device)]
        if self.args.smoke:
            options += ["--placements", "local", "remote", "--transports", "raw", "jpeg", "--images", "2",
                        "--size", "64", "--calls", "2", "--threads", "1"]
        else:
            options += ["--dtype", "bfloat16", "--images", "32", "--size", "512", "--calls", "10", "--actors", "2",
                        "--num-gpus", "0.5"]
        return rl_rewards.measure(rl_rewards.build_parser().parse_args(options))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-report.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny models on the CPU: checks that every part runs")
    parser.add_argument("--device", default=None, help="default: cuda if available (cpu with --smoke)")
    parser.add_argument("--parts", nargs="+", default=None, help="run only these parts (default: all seven)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="default 1 8 32 128 256 512")
    parser.add_argument("--compile-modes", nargs="+", default=["bfloat16"], choices=list(MODES),
                        help="modes also timed with torch.compile (default: %(default)s)")
    parser.add_argument("--compile-batch-sizes", type=int, nargs="+", default=None, help="default 256")
    parser.add_argument("--compile-backend", default=None, help="default inductor (eager with --smoke)")
    parser.add_argument("--seconds", type=float, default=None, help="minimum timing per configuration (default 1)")
    parser.add_argument("--files", type=int, default=None, help="JPEG files per size (default 2000)")
    parser.add_argument("--file-sizes", type=int, nargs="+", default=None, help="default 512 1024")
    parser.add_argument("--files-batch-size", type=int, default=None, help="default 256")
    parser.add_argument("--files-dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--original-python", help="python of the oracle environment (scripts/oracle_env.sh)")
    parser.add_argument("--original-images", type=int, default=64)
    return parser


def fill_defaults(args: argparse.Namespace) -> argparse.Namespace:
    smoke = args.smoke
    defaults = {"device": "cpu" if smoke else ("cuda" if torch.cuda.is_available() else "cpu"),
                "batch_sizes": [1, 2] if smoke else [1, 8, 32, 128, 256, 512],
                "compile_batch_sizes": [2] if smoke else [256], "compile_backend": "eager" if smoke else "inductor",
                "seconds": 0.05 if smoke else 1.0, "files": 4 if smoke else 2000,
                "file_sizes": [64] if smoke else [512, 1024], "files_batch_size": 4 if smoke else 256}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


PARTS = [("correctness", "CUDA vs CPU, precisions, gradients"), ("scoring", "pre-decoded throughput"),
         ("files", "JPEG files end to end"), ("serving", "imreward serve under load"),
         ("training", "pairs/s and memory"), ("refl", "ReFL step time and memory"),
         ("rl", "RL reward placements and transports")]


def main() -> int:
    args = fill_defaults(build_parser().parse_args())
    unknown = set(args.parts or []) - {name for name, _ in PARTS}
    if unknown:
        raise SystemExit(f"unknown parts {sorted(unknown)}; choose from {[name for name, _ in PARTS]}")
    if args.smoke:
        torch.set_num_threads(1)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or 'cpu'})"
    header = {"suite": "benchmarks/gpu_suite.py", "smoke": args.smoke, "device": name, "torch": torch.__version__,
              "cuda": torch.version.cuda, "python": platform.python_version(), "threads": torch.get_num_threads(),
              "peak_bf16_tflops": peak_bf16_tflops(name), "peak_source": PEAK_SOURCE,
              "options": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}}
    report = SuiteReport(args.out, header)
    with tempfile.TemporaryDirectory() as scratch:
        suite = Suite(args, Path(scratch))
        for part, title in PARTS:
            if args.parts is None or part in args.parts:
                report.run_part(part, title, getattr(suite, part))
    statuses = {part["name"]: part["status"] for part in report.data["parts"]}
    paths = (("imreward serve", "serving"), ("score-dataset", "files"), ("training step", "training"),
             ("ReFL step", "refl"), ("RL reward placements", "rl"))
    report.data["ran_on_device"] = {path: statuses.get(part) for path, part in paths}
    report.finish()
    print(f"[gpu_suite] wrote {args.out} and {args.out.with_suffix('.md')}", flush=True)
    return 0 if all(part["status"] == "ok" for part in report.data["parts"]) else 1


if __name__ == "__main__":
    sys.exit(main())
