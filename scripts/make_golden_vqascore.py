"""Golden VQAScores from t2v_metrics' own Qwen2.5-VL model code, for tests/models/test_vqascore.py.

Run it in the environment ``scripts/oracle_env_unifiedreward.sh`` builds (transformers 4.52.4, which
t2v_metrics 3.1 accepts: >= 4.52), with qwen-vl-utils 0.0.14 first on the path (t2v_metrics passes
``return_video_kwargs``, which 0.0.8 lacks):

    pip install --no-deps --target ORACLE/qwen-vl-utils-0.0.14 qwen-vl-utils==0.0.14
    PYTHONPATH=ORACLE/qwen-vl-utils-0.0.14 ORACLE/bin/python scripts/make_golden_vqascore.py \\
        --t2v-metrics /path/to/t2v_metrics/checkout

It imports ``t2v_metrics/models/vqascore_models/qwen2vl_model.py`` from a checkout of
github linzhiqiu/t2v_metrics (its video reader ``decord`` and its base class stubbed: images only)
and calls ``Qwen2VLModel.forward`` with its default templates, on a reduced Qwen2.5-VL (2+2 layers,
width 64/32) in the published layout, loaded in float32 (its table says bfloat16) on the CPU. Written
under ``tests/golden/vqascore/``: ``base/`` (the reduced model's files; a BPE tokenizer trained on
the question, so "Yes" and "No" are single tokens), ``published_keys.json`` and ``scores.json``.
Weights: name-seeded (``imreward/_seeded_weights.py``), the output row of "Yes" scaled by 8 and that
of "No" set to its negative, so that P(Yes) spreads over (0, 1) with the image and prompt.

Usage: python scripts/make_golden_vqascore.py --t2v-metrics PATH [--out tests/golden/vqascore]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import torch

from make_golden_unifiedreward import REPO, legacy_name, load_by_path, write_base

SALT = 2027
YES_NO_FACTOR = 8.0
IMAGES = REPO / "tests/golden/images"
PROMPTS = ["a red fox in the snow", "Un café crème naïve — 一只可爱的猫 🐱", "", 'a sign that says "{}"']


def t2v_qwen_module(checkout: Path):
    """t2v_metrics' qwen2vl_model module, its relative imports and decord stubbed."""
    package = types.ModuleType("t2vm")
    package.__path__ = []
    base = types.ModuleType("t2vm.vqa_model")
    base.VQAScoreModel = type("VQAScoreModel", (), {})
    decord = types.ModuleType("decord")
    decord.VideoReader, decord.cpu = object, lambda *args: None
    sys.modules.update({"t2vm": package, "t2vm.vqa_model": base, "decord": decord})
    return load_by_path("t2vm.qwen2vl_model", checkout / "t2v_metrics/models/vqascore_models/qwen2vl_model.py")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--t2v-metrics", type=Path, required=True, help="a checkout of github linzhiqiu/t2v_metrics")
    parser.add_argument("--out", type=Path, default=REPO / "tests/golden/vqascore")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    import qwen_vl_utils
    import transformers
    from safetensors.torch import save_file
    from transformers import Qwen2_5_VLForConditionalGeneration

    templates = load_by_path("_templates", REPO / "imreward/judges/templates.py")
    question = templates.VQASCORE_QUESTION
    base = args.out / "base"
    write_base(base, [question.replace("{prompt}", p) + " Yes No Yes. No." for p in PROMPTS])
    with torch.device("meta"):
        shapes = {legacy_name(k): tuple(v.shape) for k, v in Qwen2_5_VLForConditionalGeneration._from_config(
            transformers.AutoConfig.from_pretrained(base)).state_dict().items()}
    seeded = load_by_path("_seeded_weights", REPO / "imreward/_seeded_weights.py")
    tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    yes_no = [tokenizer.encode(word, add_special_tokens=False) for word in ("Yes", "No")]
    assert all(len(ids) == 1 for ids in yes_no), yes_no
    module = t2v_qwen_module(args.t2v_metrics)
    images = sorted(IMAGES.iterdir())
    scores = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in base.iterdir():
            (tmp / name.name).write_bytes(name.read_bytes())
        weights = seeded.with_opposed_rows(seeded.seeded_state_dict(shapes, salt=SALT), "lm_head.weight",
                                           yes_no[0][0], yes_no[1][0], YES_NO_FACTOR)
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        entry = module.QWEN2_VL_MODELS["qwen2.5-vl-7b"]
        entry["tokenizer"]["path"] = entry["model"]["path"] = str(tmp)
        entry["model"]["torch_dtype"] = torch.float32
        model = module.Qwen2VLModel(model_name="qwen2.5-vl-7b", device="cpu", checkpoint=str(tmp))
        for prompt in PROMPTS:
            chosen = images if prompt == PROMPTS[0] else images[:3]
            values = model.forward([str(p) for p in chosen], [prompt] * len(chosen))
            scores[prompt] = {p.name: float(v) for p, v in zip(chosen, values)}
    commit = subprocess.run(["git", "-C", str(args.t2v_metrics), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    (args.out / "published_keys.json").write_text(json.dumps({k: list(v) for k, v in shapes.items()}, indent=0))
    (args.out / "scores.json").write_text(json.dumps({
        "salt": SALT, "yes_no_factor": YES_NO_FACTOR,
        "original": f"t2v_metrics {commit} Qwen2VLModel.forward (qwen2.5-vl-7b entry, float32), transformers "
                    f"{transformers.__version__}, qwen-vl-utils {getattr(qwen_vl_utils, '__version__', '0.0.14')}, CPU",
        "torch": torch.__version__, "scores": scores}, indent=1, ensure_ascii=False))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
