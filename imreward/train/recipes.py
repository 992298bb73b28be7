"""Named training presets: ``imreward train --recipe NAME`` fills the options a user did not give.

``imagereward-paper``: the recipe of Xu et al. 2023 (sec. 4.1) for ImageReward: fine-tune BLIP
(``--init`` its pretrained ``model_large.pth``) on ImageRewardDB's train split, selecting on its
validation split, with batch size 64, learning rate 1e-5 on a cosine schedule (the trainer's
schedule: linear warmup, then cosine to 0) and 70% of the transformer layers frozen.
"""

from __future__ import annotations

import argparse

RECIPES: dict[str, dict[str, object]] = {
    "imagereward-paper": {"train": "THUDM/ImageRewardDB", "val": "THUDM/ImageRewardDB", "batch_size": 64,
                          "lr": 1e-5, "freeze_ratio": 0.7},
}
# The values of the options a recipe may set when neither the user nor a recipe gives them.
DEFAULTS: dict[str, object] = {"train": None, "val": None, "batch_size": 8, "lr": 1e-5, "freeze_ratio": None}


def apply_recipe(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with each option left as None taken from the recipe, else from ``DEFAULTS``;
    options given explicitly win over the recipe."""
    recipe = RECIPES[args.recipe] if args.recipe else {}
    if args.recipe == "imagereward-paper" and not args.init:
        raise SystemExit("--recipe imagereward-paper fine-tunes BLIP: pass --init with its pretrained "
                         "model_large.pth (or another checkpoint to start from)")
    values = {name: recipe.get(name, default) if getattr(args, name) is None else getattr(args, name)
              for name, default in DEFAULTS.items()}
    for role in ("train", "val"):
        if values[role] is None:
            raise SystemExit(f"--{role} is required (or a --recipe that sets it)")
    return argparse.Namespace(**{**vars(args), **values})
