"""Reduced Qwen2.5-VL judges in the published layout: the model files of ``tests/golden/<judge>/base/``
and checkpoints of name-seeded tensors, steered as the golden scripts steered them
(``scripts/make_golden_unifiedreward.py`` and ``make_golden_vqascore.py`` ran the originals on the same ones)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetensors.torch import save_file
from tokenizers import Tokenizer

from imreward._seeded_weights import score_token_ids, with_opposed_rows, with_rows_scaled
from imreward.testing import seeded_state_dict

GOLDEN = Path(__file__).resolve().parent / "golden"


def golden_values(judge: str) -> dict:
    """``answers.json`` (unifiedreward) or ``scores.json`` (vqascore): the original's outputs."""
    folder = GOLDEN / judge
    return json.loads(next(folder.glob("[as]*s.json")).read_text(encoding="utf-8"))


def published_layout_shapes(judge: str) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v) for k, v in json.loads((GOLDEN / judge / "published_keys.json").read_text()).items()}


def write_model_folder(judge: str, folder: Path) -> Path:
    """The reduced model of ``judge`` as the hub holds it: base files and ``model.safetensors``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (GOLDEN / judge / "base").iterdir():
        shutil.copy(name, folder / name.name)
    golden = golden_values(judge)
    weights = seeded_state_dict(published_layout_shapes(judge), salt=golden["salt"])
    if judge == "unifiedreward":  # number tokens favoured, so that answers hold scores
        weights = with_rows_scaled(weights, "lm_head.weight", score_token_ids(folder / "tokenizer.json"),
                                   golden["score_token_factor"])
    else:  # "Yes" and "No" opposed, so that P(Yes) varies with the image
        vocab = Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab()
        weights = with_opposed_rows(weights, "lm_head.weight", vocab["Yes"], vocab["No"], golden["yes_no_factor"])
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
