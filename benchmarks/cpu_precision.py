"""CPU scoring in every precision against the original package's loop, in one run: speed and faithfulness.

On full-size models with seeded weights (``imreward._seeded_weights``), on image files (decoding and
preprocessing timed too), interleaved so that a drift of a shared machine's speed shows:

- images/s of the original ImageReward's one-image loop (before and after ours; needs
  ``--original-python``, the environment of ``scripts/oracle_env.sh``) and of ``score_batch`` in
  float32, bfloat16, int8 and ``auto`` (``imreward.load_scorer(..., dtype=...)``);
- faithfulness to float32: the largest and mean score difference and the share of same-prompt image
  pairs whose order flips, for ImageReward and, with ``--clip-images``, an open_clip ViT-L/14 CLIP
  score (the backbone of the CLIP and Aesthetic scorers; HPSv2 and CLIP-H are the same code at ViT-H).

``--int8-schemes`` adds two int8 schemes that were measured and not adopted, through torchao (installed
separately): activations quantized per token instead of per batch, and int8 weights with float
activations, which shows the error int8 weights alone cost. ``--compile`` adds the per-token scheme under
``torch.compile`` (its compilation timed apart, in a warm-up on every prompt).

The CPU's relevant flags and ``auto``'s choice are printed first. Last, what bounds the speed: the
model's matrix-multiply GFLOP per image (``torch.utils.flop_counter``; attention's own products, about
3% of ViT-L/16's, are not counted) and the GFLOP/s this CPU reaches on ViT-L's linear shapes in each
precision, hence the most images/s any implementation could reach here. Run it a second time with
``ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI`` to see the same CPU without AMX (``auto`` follows the cap).

Example: python benchmarks/cpu_precision.py --original-python ../oracle-venv/bin/python --images 24 --prompts 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import imreward  # noqa: E402
from imreward.config import ImageRewardConfig  # noqa: E402
from imreward.hub import POSITION_IDS_KEY  # noqa: E402
from imreward.precision import choose_dtype, cpu_flags, quantized_linear_names  # noqa: E402
from imreward.testing import model_shapes, seeded_state_dict  # noqa: E402
from scoring_throughput import time_original, write_images  # noqa: E402

RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
                  "amx_bf16", "amx_int8", "amx_fp16")
PRECISIONS = ("float32", "bfloat16", "int8", "auto")
INT8_SCHEMES = ("int8-token", "int8-weight")
COMPILED = "int8-token-compiled"
PROMPTS = ("a painting of an ocean with clouds and birds, day time, low depth field effect",
           "a red fox in the snow, photograph", "an isometric city at night, neon lights",
           "a bowl of fruit on a wooden table, oil painting", "portrait of an old sailor with a pipe, charcoal drawing",
           "a steaming cup of coffee on a rainy windowsill", "a futuristic train crossing a desert bridge at sunset",
           "two cats playing chess in a library, digital art")
CLIP_NAME = "seeded-open_clip-ViT-L-14"


def seeded_clip(name: str = CLIP_NAME, device=None, dtype=None, download_root=None):
    """An open_clip ViT-L/14 CLIP score with seeded weights, through the CLIP scorers' own ``place``."""
    from open_clip.model import CLIP

    from imreward.models._clip_backbone import build_open_clip, open_clip_config, place
    from imreward.models.clip_score import CLIPScore

    config = open_clip_config("ViT-L-14")
    with torch.device("meta"):
        shapes = {key: value.shape for key, value in CLIP(**config).state_dict().items()}
    return place(CLIPScore(build_open_clip(config, seeded_state_dict(shapes, salt=2), "seeded")), device, dtype)


def faithfulness(scores: torch.Tensor, reference: torch.Tensor, groups: list[list[int]]) -> dict[str, float]:
    """Score differences to ``reference`` and the share of same-group pairs ordered differently."""
    pairs = flipped = 0
    for group in groups:
        for i, j in itertools.combinations(group, 2):
            pairs += 1
            flipped += bool((reference[i] - reference[j]) * (scores[i] - scores[j]) < 0)
    difference = (scores - reference).abs()
    return {"max_abs": float(difference.max()), "mean_abs": float(difference.mean()),
            "pairs": pairs, "flipped_share": flipped / pairs, "reference_std": float(reference.std())}


def time_scorers(scorers: dict[str, object], prompts: list[str], images: list[Path], batch_size: int,
                 rounds: int) -> tuple[dict[str, list[float]], dict[str, torch.Tensor]]:
    """images/s of ``score_batch`` per scorer, the scorers taking turns each round; their scores."""
    rates: dict[str, list[float]] = {name: [] for name in scorers}
    scores = {}
    for _ in range(rounds):
        for name, scorer in scorers.items():
            start = time.perf_counter()
            scores[name] = torch.tensor(scorer.score_batch(prompts, images, batch_size=batch_size))
            rates[name].append(len(images) / (time.perf_counter() - start))
            print(f"  {name:>19}: {rates[name][-1]:6.2f} images/s", flush=True)
    return rates, scores


def torchao_int8(spec: str, scheme: str):
    """The scorer with torchao's int8 on the linears ``quantize_int8`` converts: ``int8-token``
    quantizes activations per token (weights per output channel), ``int8-weight`` only the weights."""
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_

    scorer = imreward.load_scorer(spec, device="cpu")
    names = set(quantized_linear_names(scorer))
    config = Int8WeightOnlyConfig() if scheme == "int8-weight" else Int8DynamicActivationInt8WeightConfig()
    quantize_(scorer, config, filter_fn=lambda module, name: name in names)
    scorer.precision = f"{scheme} (torchao)"
    return scorer


def load_all(spec: str, batch_size: int, warm_images: list[Path], precisions=PRECISIONS,
             prompts=PROMPTS[:1]) -> dict[str, object]:
    """The scorers, each warmed up on one batch (the compiled one on a batch per prompt, so that every
    text length it will meet is compiled before the timing)."""
    scorers = {}
    for precision in precisions:
        if precision == COMPILED:
            scorers[precision] = torchao_int8(spec, "int8-token")
            scorers[precision].forward = torch.compile(scorers[precision].forward)
        elif precision in INT8_SCHEMES:
            scorers[precision] = torchao_int8(spec, precision)
        else:
            scorers[precision] = imreward.load_scorer(spec, device="cpu", dtype=precision)
        start = time.perf_counter()
        for prompt in prompts[:len(prompts) if precision == COMPILED else 1]:
            scorers[precision].score_batch(prompt, warm_images[:batch_size], batch_size=batch_size)
        print(f"  loaded {precision}: {scorers[precision].precision}, warm-up {time.perf_counter() - start:.0f} s",
              flush=True)
    return scorers


def report(label: str, rates: dict[str, list[float]], scores: dict[str, torch.Tensor], groups: list[list[int]],
           original: list[float] | None) -> dict:
    best = {name: max(values) for name, values in rates.items()}
    result = {"images_per_s": rates, "vs_float32": {}}
    baseline = sum(original) / len(original) if original else None
    print(f"\n{label}: images/s (best of rounds){'; speed-up over the original loop' if baseline else ''}")
    for name, rate in best.items():
        speedup = f"  {rate / baseline:5.2f}x" if baseline else ""
        print(f"  {name:>19}: {rate:6.2f}{speedup}")
        if name != "float32":
            result["vs_float32"][name] = faithfulness(scores[name], scores["float32"], groups)
            figures = result["vs_float32"][name]
            print(f"             vs float32: max {figures['max_abs']:.4f}, mean {figures['mean_abs']:.4f} "
                  f"(score std {figures['reference_std']:.3f}), {100 * figures['flipped_share']:.2f}% of "
                  f"{figures['pairs']} pairs flipped")
    if baseline:
        result["original_images_per_s"] = original
        result["speedup_vs_original"] = {name: rate / baseline for name, rate in best.items()}
    return result


LINEAR_SHAPES = ((1576, 1024, 3072), (1576, 1024, 4096), (1576, 4096, 1024))  # ViT-L, batch 8: tokens x in x out


def linear_gflops(precision: str, seconds: float = 1.0) -> float:
    """GFLOP/s of ``nn.Linear`` on ViT-L's shapes in a precision, as the scorers run it (int8: the
    dynamic quantization of ``quantize_int8``)."""
    from torch import nn

    from imreward.precision import quantize_int8

    flops = elapsed = 0.0
    for tokens, width_in, width_out in LINEAR_SHAPES:
        layer = nn.Sequential(nn.Linear(width_in, width_out))
        dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
        if precision == "int8":
            quantize_int8(layer)
        else:
            layer = layer.to(dtype)
        x = torch.randn(tokens, width_in, dtype=dtype)
        with torch.inference_mode():
            layer(x)
            start, calls = time.perf_counter(), 0
            while calls == 0 or time.perf_counter() - start < seconds / len(LINEAR_SHAPES):
                layer(x)
                calls += 1
            elapsed += time.perf_counter() - start
        flops += 2 * tokens * width_in * width_out * calls
    return flops / elapsed / 1e9


def forward_gflop(scorer, prompt: str) -> float:
    """Matrix-multiply GFLOP of one image's forward (convolutions and linears)."""
    from torch.utils.flop_counter import FlopCounterMode

    size = scorer.image_size
    pixels = torch.zeros(1, 3, size, size, dtype=scorer.compute_dtype)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        scorer(pixels, **scorer.encode_prompts([prompt]))
    return counter.get_total_flops() / 1e9


def report_bound(gflop: float, original: list[float] | None) -> dict:
    """The ceiling of images/s per precision on this CPU from its linear-layer GFLOP/s."""
    baseline = sum(original) / len(original) if original else None
    print(f"\nWhat bounds it: {gflop:.1f} GFLOP per image in matrix multiplies")
    result: dict = {"gflop_per_image": gflop, "linear_gflops": {}, "max_images_per_s": {}}
    for precision in ("float32", "bfloat16", "int8"):
        rate = linear_gflops(precision)
        result["linear_gflops"][precision] = rate
        result["max_images_per_s"][precision] = rate / gflop
        speedup = f", {rate / gflop / baseline:.1f}x the original loop" if baseline else ""
        print(f"  {precision:>9}: linears at {rate:5.0f} GFLOP/s -> at most {rate / gflop:5.2f} images/s{speedup}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8, help="images per prompt (default: %(default)s)")
    parser.add_argument("--prompts", type=int, default=2, choices=range(1, len(PROMPTS) + 1),
                        help="prompts, each scored with every image (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="timed passes per precision, interleaved")
    parser.add_argument("--original-python", help="python of scripts/oracle_env.sh's environment")
    parser.add_argument("--original-images", type=int, default=6)
    parser.add_argument("--clip-images", type=int, default=0, help="images per prompt for the open_clip "
                        "ViT-L/14 part (0: skip it)")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                        help="the precisions to time (float32, the reference, is always timed)")
    parser.add_argument("--int8-schemes", action="store_true", help="also time torchao's per-token int8 "
                        "and int8 weights with float activations on ImageReward (needs torchao)")
    parser.add_argument("--compile", action="store_true", help="also time torchao's per-token int8 under "
                        "torch.compile on ImageReward (needs torchao)")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    precisions = ["float32", *(name for name in args.precisions if name != "float32")]
    flags = cpu_flags()
    choice, reason = choose_dtype("auto", "cpu")
    results: dict = {"cpu_flags": [flag for flag in RELEVANT_FLAGS if flag in flags], "auto": choice,
                     "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"), "threads": torch.get_num_threads(),
                     "torch": torch.__version__}
    print(f"CPU flags: {' '.join(results['cpu_flags']) or '(none of interest)'}; ONEDNN_MAX_CPU_ISA="
          f"{results['onednn_max_cpu_isa'] or 'unset'}; {torch.get_num_threads()} threads; torch {torch.__version__}")
    print(f"auto -> {choice} ({reason})", flush=True)
    prompts = list(PROMPTS[: args.prompts])

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = ImageRewardConfig()
        shapes = dict(model_shapes(config), **{POSITION_IDS_KEY: (1, config.text.max_position_embeddings)})
        torch.save(seeded_state_dict(shapes, salt=1), tmp / "ImageReward.pt")
        imreward.load(tmp / "ImageReward.pt", device="cpu").save_pretrained(tmp / "saved")
        paths = write_images(tmp, max(args.images, args.original_images, args.clip_images, args.batch_size))
        pair_prompts = [prompt for prompt in prompts for _ in range(args.images)]
        pair_images = paths[: args.images] * len(prompts)
        groups = [list(range(k * args.images, (k + 1) * args.images)) for k in range(len(prompts))]

        print("\nImageReward (full size, seeded weights)", flush=True)
        variants = precisions + list(INT8_SCHEMES) * args.int8_schemes + [COMPILED] * args.compile
        scorers = load_all(str(tmp / "saved"), args.batch_size, paths, variants, prompts)
        linears = quantized_linear_names(imreward.load_scorer(str(tmp / "saved"), device="cpu"))
        print(f"  int8 converts {len(linears)} linear layers", flush=True)
        original = []
        if args.original_python:
            original.append(time_original(args, tmp, config, paths, torch.device("cpu")))
            print(f"  original loop: {original[-1]:6.2f} images/s", flush=True)
        rates, scores = time_scorers(scorers, pair_prompts, pair_images, args.batch_size, args.rounds)
        if args.original_python:
            original.append(time_original(args, tmp, config, paths, torch.device("cpu")))
            print(f"  original loop: {original[-1]:6.2f} images/s", flush=True)
        results["image_reward"] = report("ImageReward", rates, scores, groups, original)
        results["image_reward"]["bound"] = report_bound(forward_gflop(scorers["float32"], PROMPTS[0]), original)
        del scorers

        if args.clip_images:
            imreward.register_scorer(CLIP_NAME, seeded_clip, overwrite=True)
            print("\nCLIP score, open_clip ViT-L/14 (seeded weights)", flush=True)
            clip_prompts = [prompt for prompt in prompts for _ in range(args.clip_images)]
            clip_images = paths[: args.clip_images] * len(prompts)
            clip_groups = [list(range(k * args.clip_images, (k + 1) * args.clip_images)) for k in range(len(prompts))]
            scorers = load_all(CLIP_NAME, args.batch_size, paths, precisions)
            rates, scores = time_scorers(scorers, clip_prompts, clip_images, args.batch_size, args.rounds)
            results["open_clip_vit_l14"] = report("open_clip ViT-L/14", rates, scores, clip_groups, None)
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
