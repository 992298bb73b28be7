"""Loading a full-size SD3 or FLUX.1 pipeline folder for ReFL: seconds and peak host (and GPU) memory.

A pipeline folder with the published transformer and VAE layout and seeded random weights is
written once in bfloat16 (safetensors; the text encoders keep their output widths with one layer
each, see ``SD3_SIZES`` / ``FLUX_SIZES``), then each load runs in a fresh process through
``imreward.refl.load_pipeline`` (what ``imreward refl --pipeline`` calls), so its peak resident
memory is the load's own. One JSON line per load.

    python benchmarks/refl_load.py --family sd3                       # SD3-medium (2.03B transformer)
    python benchmarks/refl_load.py --family flux --blocks 2 4         # FLUX.1-dev width, 2 + 4 blocks
    python benchmarks/refl_load.py --family flux --meta               # full FLUX.1-dev on the meta device

``--dtype float32`` loads as ``load_pipeline`` did before it took a dtype (every weight in float32,
cast only later); ``--meta`` builds the full transformer on the meta device (no memory) and prints
its parameter count and the bytes a load would need in each dtype (computed, not measured).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

PRESETS = {"sd3": "sd3-medium", "flux": "flux-dev"}
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def build(family: str, blocks: list[int] | None, resolution: int):
    from imreward.refl import build_random_flux_pipeline, build_random_sd3_pipeline

    if family == "sd3":
        overrides = {"num_layers": blocks[0]} if blocks else {}
        return build_random_sd3_pipeline(PRESETS[family], image_size=resolution, seed=0, **overrides)
    overrides = {"num_layers": blocks[0], "num_single_layers": blocks[1]} if blocks else {}
    return build_random_flux_pipeline(PRESETS[family], image_size=resolution, seed=0, **overrides)


def component_bytes(pipeline) -> dict[str, float]:
    """GiB of parameters and buffers per module of the pipeline."""
    sizes = {}
    for name, component in pipeline.components.items():
        if isinstance(component, torch.nn.Module):
            tensors = list(component.parameters()) + list(component.buffers())
            sizes[name] = round(sum(t.numel() * t.element_size() for t in tensors) / 2**30, 3)
    return sizes


def write_folder(args: argparse.Namespace) -> None:
    torch.set_default_dtype(torch.bfloat16)  # seeded weights made and written in bf16: no float32 copy
    started = time.perf_counter()
    pipeline = build(args.family, args.blocks, args.resolution)
    pipeline.save_pretrained(args.write)
    print(json.dumps({"written": args.write, "seconds": round(time.perf_counter() - started, 1),
                      "gib": component_bytes(pipeline)}))


def load_folder(args: argparse.Namespace) -> None:
    from imreward.refl import load_pipeline
    from imreward.refl.memory import peak_memory

    device = "cuda" if torch.cuda.is_available() else None
    started = time.perf_counter()
    pipeline = load_pipeline(args.load, dtype=DTYPES[args.dtype],
                             denoiser_dtype=DTYPES[args.denoiser_dtype] if args.denoiser_dtype else None,
                             device=device)
    seconds = time.perf_counter() - started
    print(json.dumps({"family": args.family, "blocks": args.blocks, "dtype": args.dtype,
                      "denoiser_dtype": args.denoiser_dtype or args.dtype, "device": device or "cpu",
                      "load_seconds": round(seconds, 1), **peak_memory(device),
                      "weights_gib": component_bytes(pipeline)}))


def meta_sizes(args: argparse.Namespace) -> None:
    from accelerate import init_empty_weights
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

    from imreward.refl.families.flux import FLUX_SIZES
    from imreward.refl.families.sd3 import SD3_SIZES

    model_class, sizes = ((FluxTransformer2DModel, FLUX_SIZES) if args.family == "flux"
                          else (SD3Transformer2DModel, SD3_SIZES))
    with init_empty_weights():
        transformer = model_class(**sizes[PRESETS[args.family]]["transformer"])
    count = sum(parameter.numel() for parameter in transformer.parameters())
    print(json.dumps({"family": args.family, "transformer_parameters": count, "measured": False,
                      **{f"{name}_gib": round(count * torch.finfo(dtype).bits / 8 / 2**30, 2)
                         for name, dtype in DTYPES.items()}}))


def run(command: list[str]) -> None:
    subprocess.run([sys.executable, __file__, *command], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(PRESETS), default="sd3")
    parser.add_argument("--blocks", type=int, nargs="+", default=None,
                        help="transformer blocks instead of the published count (SD3: N; FLUX: double single)")
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--dtype", choices=sorted(DTYPES), nargs="+", default=["bfloat16"],
                        help="load dtypes to measure, one fresh process each")
    parser.add_argument("--denoiser-dtype", choices=sorted(DTYPES), default=None,
                        help="the transformer's dtype (float32 for a full fine-tune); default: --dtype")
    parser.add_argument("--folder", default=None, help="write (or reuse) the pipeline folder here; default: a temp dir")
    parser.add_argument("--meta", action="store_true", help="full transformer on the meta device: sizes only")
    parser.add_argument("--write", help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.meta:
        return meta_sizes(args)
    if args.write:
        return write_folder(args)
    if args.load:
        args.dtype = args.dtype[0]
        return load_folder(args)
    with contextlib.ExitStack() as stack:
        folder = args.folder or str(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "pipeline")
        common = ["--family", args.family, "--resolution", str(args.resolution)]
        common += ["--blocks", *map(str, args.blocks)] if args.blocks else []
        if not (Path(folder) / "model_index.json").is_file():
            run([*common, "--write", folder])
        for dtype in args.dtype:
            denoiser = ["--denoiser-dtype", args.denoiser_dtype] if args.denoiser_dtype else []
            run([*common, "--load", folder, "--dtype", dtype, *denoiser])

if __name__ == "__main__":
    main()
