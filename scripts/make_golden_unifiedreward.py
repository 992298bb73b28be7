"""Golden answers of UnifiedReward's own inference path, for tests/models/test_unifiedreward.py.

Run it in the environment ``scripts/oracle_env_unifiedreward.sh`` builds (transformers 4.52.4,
qwen-vl-utils 0.0.8). It follows UnifiedReward's scripts ``inference_qwen/image_generation/
qwen_point_score_image_generation.py`` and ``qwen_pair_rank_image_generation.py`` step for step
(``Qwen2_5_VLForConditionalGeneration.from_pretrained(torch_dtype="auto")``, ``AutoProcessor``, the
chat template, ``process_vision_info``, greedy ``generate``, trimming, ``batch_decode``) and records
their parse of the answer (``split('Final Score:')[-1]`` then the first ``\\d+``, 0 when none), on a
reduced Qwen2.5-VL (2+2 layers, width 64/32) in the published layout. It writes under
``tests/golden/unifiedreward/``:

- ``base/``: the reduced model's files as ``CodeGoat24/UnifiedReward-qwen-7b`` publishes them
  (config.json, generation config, tokenizer, preprocessor and chat template); the tokenizer is a byte-level BPE
  trained here on the questions, with Qwen2's pre-tokeniser and special tokens;
- ``published_keys.json``: names and shapes of the published checkpoint (transformers < 4.52 layout:
  ``model.`` language model, ``visual.`` vision tower, ``lm_head``);
- ``answers.json``: per (prompt, image) the input ids, pixel statistics, generated text and parse;
  per image pair the pairwise answer.

Weights are not stored: both sides draw every tensor from a seed of its name
(``imreward/_seeded_weights.py``, loaded here by path so this script imports nothing else from imreward),
then scale the output rows of the tokens with digits, "Final", "Score" and ":" by 4 so that the greedy
answers contain numbers for the parse to read.

Usage: python scripts/make_golden_unifiedreward.py [--out tests/golden/unifiedreward] [--max-new-tokens 48]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import tempfile
from pathlib import Path

import torch

from make_golden_hpsv3 import train_qwen2_tokenizer, write_qwen2_processor_files
from make_golden_hpsv3 import PREPROCESSOR as QWEN2_VL_PREPROCESSOR

REPO = Path(__file__).resolve().parents[1]
SALT = 2026
SCORE_TOKEN_FACTOR = 4.0  # lm_head rows of digit/"Final"/"Score"/":" tokens scaled, so that answers hold numbers
IMAGES = REPO / "tests/golden/images"
PROMPTS = ["a red fox in the snow", "Un café crème naïve — 一只可爱的猫 🐱", ""]
PAIRS = [("rgb_480x640.jpg", "rgba_500x300.png"), ("rgb_53x97.webp", "l_300x1000.png")]
ANSWER_TEXT = ("fox (object): 1\nsnow (scene): 0\nFinal Score: 3\nImage 1 is better. Image 2 is better. "
               "Both images are equally good. Alignment Score (1-5): 2.5\nCoherence Score (1-5): 4\n")
# Qwen2's tokenizer split and special tokens, and the chat template Qwen2-VL and Qwen2.5-VL-7B-Instruct share
# (UnifiedReward-qwen-7b keeps it); the image processor's values are Qwen2-VL's under Qwen2.5-VL's processor.
PREPROCESSOR = {**QWEN2_VL_PREPROCESSOR, "processor_class": "Qwen2_5_VLProcessor"}


def load_by_path(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def questions() -> tuple[str, str]:
    """UnifiedReward's pointwise and pairwise questions with a {prompt} slot, read from this repository's
    templates file by path (plain strings: nothing of imreward runs)."""
    templates = load_by_path("_templates", REPO / "imreward/judges/templates.py")
    return templates.UNIFIEDREWARD_POINTWISE, templates.UNIFIEDREWARD_PAIRWISE


def unifiedreward_corpus() -> list[str]:
    pointwise, pairwise = questions()
    return [pointwise.replace("{prompt}", p) + pairwise.replace("{prompt}", p) + ANSWER_TEXT for p in PROMPTS]


def write_base(folder: Path, corpus: list[str]) -> None:
    """A reduced Qwen2.5-VL's files as the hub publishes them, its tokenizer trained on ``corpus``."""
    from transformers import AutoTokenizer, Qwen2_5_VLConfig

    tokenizer = train_qwen2_tokenizer(corpus, vocab_size=600)
    write_qwen2_processor_files(folder, tokenizer, model_max_length=131072, preprocessor=PREPROCESSOR)
    loaded = AutoTokenizer.from_pretrained(folder)
    ids = {name: loaded.convert_tokens_to_ids(name) for name in
           ("<|endoftext|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")}
    config = Qwen2_5_VLConfig(
        vocab_size=tokenizer.get_vocab_size() + 36, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0,
        max_position_embeddings=128000, tie_word_embeddings=False, use_sliding_window=False,
        rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        vision_token_id=ids["<|image_pad|>"] - 1, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], torch_dtype="float32",
        vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
                       "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_chans": 3,
                       "window_size": 112, "fullatt_block_indexes": [1], "hidden_act": "silu", "tokens_per_second": 2},
        architectures=["Qwen2_5_VLForConditionalGeneration"],
    )
    config.save_pretrained(folder)
    # As the Qwen2.5-VL-Instruct releases publish it (top_k 1: deterministic; repetition penalty 1.05).
    (folder / "generation_config.json").write_text(json.dumps({
        "bos_token_id": ids["<|endoftext|>"], "pad_token_id": ids["<|endoftext|>"], "do_sample": True,
        "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]], "repetition_penalty": 1.05, "temperature": 0.1,
        "top_p": 0.001, "top_k": 1}, indent=1))


def legacy_name(name: str) -> str:
    """A transformers >= 4.52 tensor name -> the published (older) layout."""
    for new, old in (("model.language_model.", "model."), ("model.visual.", "visual.")):
        if name.startswith(new):
            return old + name[len(new):]
    return name


def original_parse(text: str) -> int:
    """UnifiedReward's reading of an answer (DiffusionDPO/sift_dpo_data.py), 0 included."""
    output = re.findall(r"\d+", text.split("Final Score:")[-1].strip())
    return int(output[0]) if len(output) > 0 else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=REPO / "tests/golden/unifiedreward")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    import transformers
    from PIL import Image
    from qwen_vl_utils import process_vision_info
    from safetensors.torch import save_file
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    base = args.out / "base"
    write_base(base, unifiedreward_corpus())
    pointwise, pairwise = questions()
    with torch.device("meta"):
        shapes = {legacy_name(k): tuple(v.shape) for k, v in Qwen2_5_VLForConditionalGeneration._from_config(
            transformers.AutoConfig.from_pretrained(base)).state_dict().items()}
    seeded = load_by_path("_seeded_weights", REPO / "imreward/_seeded_weights.py")
    images = sorted(IMAGES.iterdir())
    answers, pairs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in base.iterdir():
            (tmp / name.name).write_bytes(name.read_bytes())
        weights = seeded.with_rows_scaled(seeded.seeded_state_dict(shapes, salt=SALT), "lm_head.weight",
                                          seeded.score_token_ids(base / "tokenizer.json"), SCORE_TOKEN_FACTOR)
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tmp, torch_dtype="auto", device_map={"": "cpu"})
        processor = AutoProcessor.from_pretrained(tmp)

        def run(question: str, pictures: list) -> tuple[str, dict]:
            messages = [{"role": "user", "content": [*({"type": "image", "image": p} for p in pictures),
                                                     {"type": "text", "text": question}]}]
            text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            image_inputs, video_inputs = process_vision_info(messages)
            inputs = processor(text=[text], images=image_inputs, videos=video_inputs, padding=True, return_tensors="pt")
            with torch.no_grad():
                generated_ids = model.generate(**inputs, max_new_tokens=args.max_new_tokens)
            trimmed = [out[len(ids):] for ids, out in zip(inputs.input_ids, generated_ids)]
            output = processor.batch_decode(trimmed, skip_special_tokens=True, clean_up_tokenization_spaces=False)[0]
            patches = inputs["pixel_values"].double()
            return output, {"input_ids": inputs["input_ids"][0].tolist(), "grid_thw": inputs["image_grid_thw"].tolist(),
                            "pixel_sum": float(patches.sum()), "pixel_sum_sq": float((patches ** 2).sum()),
                            "generated_ids": trimmed[0].tolist()}

        for prompt in PROMPTS:
            for path in images if prompt == PROMPTS[0] else images[:3]:
                output, record = run(pointwise.replace("{prompt}", prompt), [Image.open(path)])
                answers.setdefault(prompt, {})[path.name] = {"text": output, "parsed": original_parse(output), **record}
        for first, second in PAIRS:
            output, record = run(pairwise.replace("{prompt}", PROMPTS[0]),
                                 [Image.open(IMAGES / first), Image.open(IMAGES / second)])
            pairs[f"{first}|{second}"] = {"text": output, **record}
    (args.out / "published_keys.json").write_text(json.dumps({k: list(v) for k, v in shapes.items()}, indent=0))
    (args.out / "answers.json").write_text(json.dumps({
        "salt": SALT, "score_token_factor": SCORE_TOKEN_FACTOR, "max_new_tokens": args.max_new_tokens,
        "original": f"UnifiedReward's Qwen inference scripts, transformers {transformers.__version__}, "
                    "qwen-vl-utils 0.0.8, fp32 CPU, greedy", "torch": torch.__version__,
        "pointwise": answers, "pairwise": pairs}, indent=1, ensure_ascii=False))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
