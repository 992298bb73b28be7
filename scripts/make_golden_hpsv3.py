"""Golden values from the original HPSv3 (PyPI ``hpsv3`` 1.0.0), for tests/models/test_hpsv3_parity.py.

Run it in the environment ``scripts/oracle_env_hpsv3.sh`` builds (transformers 4.45.2, as hpsv3 pins).
The published model is Qwen2-VL-7B-Instruct plus a reward head; here the same code path runs on a
reduced Qwen2-VL (2+2 layers, width 32/64) so that it fits a unit test. It writes under
``tests/golden/hpsv3/``:

- ``base/``: the reduced base model's files as ``Qwen/Qwen2-VL-7B-Instruct`` publishes them
  (config.json, tokenizer, preprocessor and chat template); the tokenizer is a byte-level BPE
  trained here on the prompts, with Qwen2's pre-tokenizer and special tokens;
- ``published_keys.json``: names and shapes of the original's state dict (HPSv3.safetensors layout);
- ``scores.json``: the original's token ids, pixel statistics, grid sizes and (mu, log sigma) for
  every (prompt, image) pair of tests/golden/images, scored in one batch per prompt.

Weights are not stored: both sides rebuild the checkpoint with ``imreward/_seeded_weights.py``
(every tensor seeded by its name), loaded here by file path so this script imports nothing else
from imreward. The original runs in float32 on the CPU (its YAML's bf16 switched off).

Usage: python scripts/make_golden_hpsv3.py [--out tests/golden/hpsv3]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SALT = 2025
IMAGES = REPO / "tests/golden/images"
PROMPTS = [
    "cute chibi anime cartoon fox, smiling wagging tail with a small cartoon heart above sticker",
    "A highly detailed portrait of an old wizard with a long white beard, wearing a starry blue robe, "
    "holding a glowing crystal staff, standing in an ancient library full of floating books, "
    "cinematic lighting, trending on artstation, 8k " * 3,
    "Un café crème naïve — 一只可爱的猫 🐱 Ünïcödé ñandú",
    "",
]
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                  "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
# Qwen2-VL-7B-Instruct's chat template (chat_template.json of the hub repo).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)
PREPROCESSOR = {  # Qwen2-VL-7B-Instruct's preprocessor_config.json
    "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor",
}


def seeded_weights_module():
    spec = importlib.util.spec_from_file_location("_seeded_weights", REPO / "imreward/_seeded_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_qwen2_tokenizer(corpus: list[str], vocab_size: int):
    """A small byte-level BPE trained on ``corpus``, with Qwen2's normaliser, pre-tokeniser and special tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(corpus * 4, trainer)
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return tokenizer


def write_qwen2_processor_files(folder: Path, tokenizer, model_max_length: int, preprocessor: dict) -> None:
    """The tokenizer, its config with the chat template, and the image preprocessor's config, as the hub
    publishes them for a Qwen2-based VL model."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen2Tokenizer", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "bos_token": None, "unk_token": None, "model_max_length": model_max_length, "errors": "replace",
        "clean_up_tokenization_spaces": False, "split_special_tokens": False,
        "chat_template": CHAT_TEMPLATE}, indent=1))
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}, indent=1))
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=1))


def write_tokenizer(folder: Path) -> int:
    """HPSv3's tokenizer files: the small Qwen2 BPE trained on its instruction around each prompt."""
    from hpsv3.dataset.data_collator_qwen import INSTRUCTION, prompt_with_special_token

    corpus = [INSTRUCTION.format(text_prompt=p) + prompt_with_special_token for p in PROMPTS]
    tokenizer = train_qwen2_tokenizer(corpus, vocab_size=700)
    write_qwen2_processor_files(folder, tokenizer, model_max_length=32768, preprocessor=PREPROCESSOR)
    return tokenizer.get_vocab_size()


def write_config(folder: Path, vocab_size: int) -> None:
    from transformers import AutoTokenizer, Qwen2VLConfig

    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in
           ("<|endoftext|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")}
    config = Qwen2VLConfig(
        vocab_size=vocab_size + 50,  # larger than the tokenizer, as published: hpsv3 resizes it
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        rms_norm_eps=1e-6, rope_theta=1000000.0, max_position_embeddings=32768, tie_word_embeddings=False,
        rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}, use_sliding_window=False,
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        vision_token_id=ids["<|image_pad|>"] - 1, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], torch_dtype="float32",
        vision_config={"depth": 2, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2,
                       "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_chans": 3,
                       "hidden_act": "quick_gelu"},
        architectures=["Qwen2VLForConditionalGeneration"],
    )
    config.save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=REPO / "tests/golden/hpsv3")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    import transformers
    from transformers import Qwen2VLForConditionalGeneration
    from safetensors.torch import save_file

    base = args.out / "base"
    base.mkdir(parents=True, exist_ok=True)
    write_config(base, write_tokenizer(base))

    from hpsv3.inference import HPSv3RewardInferencer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # from_pretrained needs some weights beside the config; the checkpoint replaces all of them.
        for name in base.iterdir():
            (tmp / name.name).write_bytes(name.read_bytes())
        Qwen2VLForConditionalGeneration._from_config(transformers.AutoConfig.from_pretrained(base)).save_pretrained(tmp)
        yaml_text = (Path(sys.modules["hpsv3"].__file__).parent / "config/HPSv3_7B.yaml").read_text()
        yaml_text = (yaml_text.replace('model_name_or_path: "Qwen/Qwen2-VL-7B-Instruct"',
                                       f'model_name_or_path: "{tmp}"')
                     .replace("bf16: True", "bf16: False").replace('torch_dtype: "bfloat16"', 'torch_dtype: "float32"')
                     .replace("deepspeed: hpsv3/config/ds_config/zero2.json", ""))
        (tmp / "hpsv3.yaml").write_text(yaml_text)
        # The checkpoint's layout is the model's own state dict; read it from a model built the same way.
        shapes = _state_dict_shapes(tmp / "hpsv3.yaml")
        weights = seeded_weights_module().seeded_state_dict(shapes, salt=SALT)
        save_file(weights, str(tmp / "HPSv3.safetensors"))
        inferencer = HPSv3RewardInferencer(str(tmp / "hpsv3.yaml"), str(tmp / "HPSv3.safetensors"), device="cpu")
        images = sorted(str(p) for p in IMAGES.iterdir())
        scores, tokens, pixels = {}, {}, {}
        with torch.no_grad():
            for prompt in PROMPTS:
                batch = inferencer.prepare_batch(images, [prompt] * len(images))
                logits = inferencer.model(return_dict=True, **batch)["logits"]
                scores[prompt] = {Path(p).name: [float(v) for v in row] for p, row in zip(images, logits)}
                tokens[prompt] = batch["input_ids"][0][batch["attention_mask"][0].bool()].tolist()
            offsets = torch.cat([torch.zeros(1, dtype=torch.long), batch["image_grid_thw"].prod(-1).cumsum(0)])
            for i, path in enumerate(images):
                patches = batch["pixel_values"][offsets[i]: offsets[i + 1]].double()
                pixels[Path(path).name] = {"grid_thw": batch["image_grid_thw"][i].tolist(),
                                           "sum": float(patches.sum()), "sum_sq": float((patches ** 2).sum()),
                                           "first": patches[0, :8].tolist(), "last": patches[-1, -8:].tolist()}
    (args.out / "published_keys.json").write_text(json.dumps({k: list(v) for k, v in shapes.items()}, indent=0))
    (args.out / "scores.json").write_text(json.dumps({
        "salt": SALT, "original": f"hpsv3 1.0.0 (PyPI), transformers {transformers.__version__}, fp32 CPU",
        "torch": torch.__version__, "reward_token_id": inferencer.model.special_token_ids[0],
        "scores": scores, "tokens": tokens, "pixels": pixels}, indent=1, ensure_ascii=False))
    print("wrote", args.out)


def _state_dict_shapes(yaml_path: Path) -> dict[str, tuple[int, ...]]:
    from hpsv3.train import create_model_and_processor
    from hpsv3.utils.parser import DataConfig, ModelConfig, PEFTLoraConfig, TrainingConfig, parse_args_with_yaml

    (_, training_args, model_config, peft_lora_config), _ = parse_args_with_yaml(
        (DataConfig, TrainingConfig, ModelConfig, PEFTLoraConfig), str(yaml_path), is_train=False)
    model, _, _ = create_model_and_processor(model_config=model_config, peft_lora_config=peft_lora_config,
                                             training_args=training_args)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


if __name__ == "__main__":
    main()
