"""A synthetic preference dataset in the published ImageRewardDB layout, for tests and demos.

Each prompt names a count, a colour and a shape ("two red circles"). Its images draw scenes that
get 0, 1, 2 or 3 of those attributes wrong; an image with fewer wrong attributes ranks higher.
A wrong scene for one prompt is the right scene for another, so a model must read the prompt.
"""

from __future__ import annotations

import io
import random
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {"red": (215, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 215), "yellow": (230, 200, 30),
           "purple": (135, 55, 170)}
SHAPES = ("circle", "square", "triangle")
COUNT_WORDS = {1: "one", 2: "two", 3: "three"}
TEMPLATES = ("{}", "a picture of {}", "{} on a plain background", "a drawing of {}")
ATTRIBUTES = ("colour", "shape", "count")
SPLIT_SALT = {"train": 0, "validation": 1, "test": 2}
GRID = 2  # shapes sit in distinct cells of a GRID x GRID layout (counts go up to 3)


@dataclass(frozen=True)
class Scene:
    colour: str
    shape: str
    count: int

    def describe(self) -> str:
        return f"{COUNT_WORDS[self.count]} {self.colour} {self.shape}{'s' if self.count > 1 else ''}"


def random_scene(rng: random.Random) -> Scene:
    return Scene(rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice(list(COUNT_WORDS)))


def with_wrong_attributes(scene: Scene, wrong: tuple[str, ...], rng: random.Random) -> Scene:
    """``scene`` with each attribute in ``wrong`` replaced by a different value."""
    options = {"colour": list(COLOURS), "shape": list(SHAPES), "count": list(COUNT_WORDS)}
    changes = {name: rng.choice([v for v in options[name] if v != getattr(scene, name)]) for name in wrong}
    return replace(scene, **changes)


def draw_scene(scene: Scene, size: int, rng: random.Random) -> Image.Image:
    """Shapes of one colour, each filling most of a distinct cell of a 2x2 grid, on a light tinted
    background. Large shapes keep their form legible at 32 px, and the covered area tells the count."""
    background = tuple(rng.randint(200, 245) for _ in range(3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    cell = size / GRID
    for index in rng.sample(range(GRID * GRID), scene.count):
        radius = cell * rng.uniform(0.36, 0.46)
        cx = (index % GRID + 0.5) * cell + rng.uniform(-0.04, 0.04) * cell
        cy = (index // GRID + 0.5) * cell + rng.uniform(-0.04, 0.04) * cell
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        fill = tuple(min(255, max(0, c + rng.randint(-15, 15))) for c in COLOURS[scene.colour])
        if scene.shape == "circle":
            draw.ellipse(box, fill=fill)
        elif scene.shape == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=fill)
    return image


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_split(out_dir: Path, split: str, num_prompts: int, images_per_prompt: int, image_size: int,
                seed: int, images_per_zip: int, corrupt_images: int = 0) -> int:
    """Write ``metadata-{split}.parquet`` and ``images/{split}/{split}_{n}.zip``; returns the image count.

    The first image of each of the first ``corrupt_images`` prompts is written broken (alternately
    zero bytes and non-image bytes), like the few bad files of the published train split.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed * 1000 + SPLIT_SALT.get(split, 3))
    rows, archive, archive_number = [], None, 0
    (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
    for prompt_number in range(num_prompts):
        scene = random_scene(rng)
        prompt = rng.choice(TEMPLATES).format(scene.describe())
        prompt_id = f"{split}-{prompt_number:06d}"
        wrong_counts = [min(n, 3) if n < 4 else rng.randint(1, 3) for n in range(images_per_prompt)]
        for position, wrong_count in enumerate(wrong_counts):
            image_number = len(rows)
            if image_number % images_per_zip == 0:
                if archive is not None:
                    archive.close()
                archive_number += 1
                archive = zipfile.ZipFile(out_dir / "images" / split / f"{split}_{archive_number}.zip", "w")
            drawn = with_wrong_attributes(scene, tuple(rng.sample(ATTRIBUTES, wrong_count)), rng)
            data = _png(draw_scene(drawn, image_size, rng))
            if position == 0 and prompt_number < corrupt_images:
                data = b"" if prompt_number % 2 == 0 else b"not an image"
            member = f"{prompt_id}-{position}.png"
            archive.writestr(member, data)
            rating = 7 - 2 * wrong_count
            rows.append({
                "image_path": f"images/{split}/{split}_{archive_number}/{member}", "prompt_id": prompt_id,
                "prompt": prompt, "classification": "synthetic", "image_amount_in_total": images_per_prompt,
                "rank": wrong_count + 1, "overall_rating": rating, "image_text_alignment_rating": rating,
                "fidelity_rating": 7,
            })
    if archive is not None:
        archive.close()
    pq.write_table(pa.Table.from_pylist(rows), out_dir / f"metadata-{split}.parquet")
    return len(rows)


def small_model_config(image_size: int = 32, width: int = 64, layers: int = 2):
    """A small ImageReward architecture that learns this task from scratch on a CPU in minutes."""
    from imreward.config import HeadConfig, ImageRewardConfig, TextConfig, VisionConfig

    heads = max(1, width // 32)
    vision = VisionConfig(image_size=image_size, patch_size=8, width=width, depth=layers, num_heads=heads)
    text = TextConfig(hidden_size=width, num_layers=layers, num_heads=heads, intermediate_size=4 * width,
                      max_position_embeddings=64, encoder_width=width)
    return ImageRewardConfig(vision=vision, text=text, head=HeadConfig(hidden_sizes=(64, 16), dropouts=(0.1, 0.0)),
                             embed_dim=32)


def write_synthetic_dataset(out_dir: str | Path, train_prompts: int = 2000, validation_prompts: int = 200,
                            test_prompts: int = 200, images_per_prompt: int = 4, image_size: int = 64,
                            seed: int = 0, images_per_zip: int = 2000, corrupt_images: int = 0) -> dict[str, int]:
    """Write all three splits (each drawn from its own seed, so held-out prompts are new draws);
    returns the image count per split. ``corrupt_images`` applies to the train split."""
    if images_per_prompt < 2:
        raise ValueError("images_per_prompt must be at least 2 to give a pair")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = {"train": train_prompts, "validation": validation_prompts, "test": test_prompts}
    return {split: write_split(out_dir, split, count, images_per_prompt, image_size, seed, images_per_zip,
                               corrupt_images if split == "train" else 0)
            for split, count in sizes.items() if count > 0}
