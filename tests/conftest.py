import os

import numpy as np
import pytest
import torch
from PIL import Image

from imreward.testing import tiny_model

# --dtype auto follows the CPU's flags; the tests describe a CPU without AMX, so that every machine
# scores in float32 by default and gets the same numbers (subprocesses inherit this too).
os.environ.setdefault("IMREWARD_CPU_FLAGS", "none")


@pytest.fixture
def single_cpu_thread():
    """One intra-op thread: tiny models run faster, and a loaded machine is not oversubscribed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def model():
    """A tiny ImageReward with seeded weights and the real tokenizer (eval mode, CPU)."""
    return tiny_model(seed=0)


@pytest.fixture
def image_factory():
    """make_image(height, width, seed=0, mode="RGB") -> PIL image with gradients and noise."""
    return make_image


def make_image(height: int, width: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                       rng.randint(0, 256, (height, width))], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels).convert(mode)


@pytest.fixture
def image_files(tmp_path):
    """Three small images on disk in different formats."""
    paths = []
    for i, (name, mode) in enumerate([("a.png", "RGB"), ("b.jpg", "RGB"), ("c.webp", "RGB")]):
        path = tmp_path / name
        make_image(40 + 10 * i, 60 - 5 * i, seed=i, mode=mode).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster for the whole test session (it costs seconds and about 1 GB).

    Four logical CPUs on the 2-core machine, so a reading task and two actors can run at once;
    a small object store. Tests that need Ray take this fixture and never call ``ray.init`` themselves.
    """
    ray = pytest.importorskip("ray")
    context = ray.init(num_cpus=4, object_store_memory=256 * 1024 ** 2, include_dashboard=False,
                       log_to_driver=False, configure_logging=False)
    yield context
    ray.shutdown()
