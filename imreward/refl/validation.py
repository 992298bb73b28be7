"""Validation for ReFL: images for fixed prompts and seeds, PNG grids (per check, and before/after
side by side), the JSON-lines record of reward and monitor means, and a PNG of their curves."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import torch

from imreward.refl.diffusion import decode, denoise, initial_latents


@torch.no_grad()
def generate_images(family, pipeline, model, sampler, prompts: list[str], resolution: int, seed: int,
                    guidance_scale: float = 1.0, batch_size: int = 4) -> torch.Tensor:
    """Sample one image per prompt over all of the sampler's steps.

    The starting noise depends only on ``seed`` and the prompt's position, so successive
    validations (and runs on other devices) start from the same latents.

    Returns:
        Pixels [N, 3, resolution, resolution] in [0, 1].
    """
    device = pipeline.vae.device
    generator = torch.Generator().manual_seed(seed)
    latents = initial_latents(pipeline, len(prompts), resolution, resolution, generator, sampler, device,
                              torch.float32)
    images = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start: start + batch_size]
        conditioning = family.encode_prompts(pipeline, chunk, resolution, resolution, device, guidance_scale)
        final = denoise(family, model, latents[start: start + len(chunk)], conditioning, sampler,
                        range(len(sampler.timesteps)), guidance_scale)
        images.append(decode(pipeline, final).float())
    return torch.cat(images)


def save_grid(images: torch.Tensor, path: str | os.PathLike, columns: int | None = None) -> Path:
    """Save images [N, 3, H, W] in [0, 1] as one PNG grid (about square unless ``columns`` is given)."""
    from torchvision.utils import save_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = columns or max(1, math.ceil(math.sqrt(images.shape[0])))
    save_image(images.cpu(), path, nrow=columns, padding=2)
    return path


def save_before_after(images: torch.Tensor, folder: str | os.PathLike, step: int) -> Path | None:
    """Pair each validation image with the first validation's (kept as ``before.safetensors``):
    ``before_after_step_N.png``, one row per prompt, before (left) and now (right).

    The first call (nothing kept yet) stores ``images`` [N, 3, H, W] and returns ``None``.
    """
    from safetensors.torch import load_file, save_file

    folder = Path(folder)
    before_file = folder / "before.safetensors"
    if not before_file.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"images": images.cpu().contiguous()}, str(before_file))
        return None
    before = load_file(str(before_file))["images"]
    if before.shape != images.shape:
        warnings.warn(f"{before_file}: {tuple(before.shape)} images, now {tuple(images.shape)} (the validation "
                      "prompts or resolution changed): no before/after grid", stacklevel=2)
        return None
    pairs = torch.stack([before, images.cpu()], dim=1).flatten(0, 1)
    return save_grid(pairs, folder / f"before_after_step_{step:06d}.png", columns=2)


def plot_curves(records: list[dict], path: str | os.PathLike) -> Path:
    """Plot the validation reward and each monitor's mean against the step (one panel each) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {"reward (trained on)": [(r["step"], r["mean_reward"]) for r in records]}
    for name in sorted({name for record in records for name in record.get("monitors", {})}):
        series[f"monitor: {name}"] = [(r["step"], r["monitors"][name]) for r in records
                                      if name in r.get("monitors", {})]
    figure, axes = plt.subplots(len(series), 1, figsize=(6, 2.2 * len(series)), sharex=True, squeeze=False)
    for axis, (title, points) in zip(axes[:, 0], series.items()):
        steps, values = zip(*points) if points else ((), ())
        axis.plot(steps, values, marker="o")
        axis.set_title(title, fontsize=9)
        axis.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("optimizer step")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
