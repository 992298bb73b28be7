"""A reduced UnifiedReward (Qwen2.5-VL) in the published layout: the model files of
``tests/golden/unifiedreward/base/`` and a checkpoint of name-seeded tensors, the output rows of number tokens scaled
(``scripts/make_golden_unifiedreward.py`` ran UnifiedReward's own inference path on the same one)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetensors.torch import save_file

from imreward._seeded_weights import score_token_ids, with_rows_scaled
from imreward.testing import seeded_state_dict

GOLDEN = Path(__file__).resolve().parent / "golden"
FOLDER = GOLDEN / "unifiedreward"


def golden_answers() -> dict:
    return json.loads((FOLDER / "answers.json").read_text(encoding="utf-8"))


def published_layout_shapes() -> dict[str, tuple[int, ...]]:
    return {k: tuple(v) for k, v in json.loads((FOLDER / "published_keys.json").read_text()).items()}


def write_model_folder(folder: Path) -> Path:
    """The reduced model's folder as the hub holds it: base files and ``model.safetensors``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (FOLDER / "base").iterdir():
        shutil.copy(name, folder / name.name)
    golden = golden_answers()
    weights = with_rows_scaled(seeded_state_dict(published_layout_shapes(), salt=golden["salt"]), "lm_head.weight",
                               score_token_ids(folder / "tokenizer.json"), golden["score_token_factor"])
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
