"""Seeded weights in the layout of pytorch-fid's published FID Inception file, and test images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from imreward._seeded_weights import seeded_tensor

# BatchNorm gain that keeps activations of order one through the 94 random convolutions (below it
# features shrink to nearly the same vector for every image, above it they blow up).
_BN_GAIN = 1.5


def write_seeded_fid_weights(path: Path) -> Path:
    """A state dict with the keys and shapes of ``pt_inception-2015-12-05-6726825d.pth`` (torchvision's
    Inception v3 with 1008 classes and no auxiliary head: pytorch-fid's blocks have the same weights)."""
    import torchvision

    net = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    state = {}
    for name, tensor in net.state_dict().items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.zeros((), dtype=torch.long)
            continue
        value = seeded_tensor(name, tensor.shape, salt=15)
        if name.endswith("running_var"):
            value = 1 + value.abs()
        elif name.endswith(("running_mean", "bn.bias")):
            value = torch.zeros_like(value)
        elif name.endswith("bn.weight"):
            value = _BN_GAIN * (1 + value)
        state[name] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def write_pattern_image(path: Path, index: int, size: int = 40) -> Path:
    """A distinct striped colour image per ``index`` (random networks barely tell noise images apart)."""
    pixels = np.zeros((size, size, 3), np.uint8)
    pixels[..., index % 3] = (40 * index + 20) % 256
    pixels[:: index % 5 + 2] = (255 - 30 * index) % 256
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path
