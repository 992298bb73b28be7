"""Compare imreward's CLIP-family scorers with goldens written by ``scripts/make_golden_clip.py``
(e.g. the full-size ones: ``--size full --out DIR``); prints the largest difference per model.

Usage: python scripts/check_golden_clip.py DIR [MODEL ...]   (run under the heavy-job lock at full size)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from models.clip_fixtures import build_scorer  # noqa: E402
from models.test_clip_family import GOLDEN_NAMES, assert_scores_match, golden  # noqa: E402


def main() -> None:
    root, names = Path(sys.argv[1]), sys.argv[2:] or [n for n in GOLDEN_NAMES if (Path(sys.argv[1]) / n).is_dir()]
    torch.set_num_threads(1)
    goldens = {name: golden(name, root) for name in set(names) | ({"clip"} if "aesthetic" in names else set())}
    for name in names:
        with tempfile.TemporaryDirectory() as folder:
            scorer = build_scorer(name, goldens, Path(folder))
            worst = assert_scores_match(scorer, goldens[name], tolerance=1e-4)
            count = sum("score" in row for row in goldens[name]["scores"])
            print(f"{name} ({goldens[name]['size']}): {count} pairs, max |diff| {worst:.2e}", flush=True)
            del scorer


if __name__ == "__main__":
    main()
