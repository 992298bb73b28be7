"""to_uint8_images: every trainer image form becomes the same uint8 [H, W, 3] arrays, bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imreward.rl.images import to_uint8_images
from rl.rl_helpers import input_forms, uint8_batch


def test_every_form_gives_the_same_pixels():
    batch = uint8_batch(3)
    for form, images in input_forms(batch).items():
        arrays = to_uint8_images(images)
        assert len(arrays) == 3, form
        for array, expected in zip(arrays, batch):
            assert array.dtype == np.uint8 and array.flags.c_contiguous and np.array_equal(array, expected), form
    batch_copy = batch.copy()
    arrays = to_uint8_images(batch)
    batch[:] = 0  # a trainer reusing its buffer does not change what was submitted
    assert np.array_equal(arrays[2], batch_copy[2])
    as_list = to_uint8_images([torch.from_numpy(image).permute(2, 0, 1).float() / 255 for image in batch_copy])
    assert all(np.array_equal(array, expected) for array, expected in zip(as_list, batch_copy))


def test_floats_are_rounded_and_clamped_as_flow_grpo_does():
    pixels = torch.tensor([-0.2, 0.0, 0.5 / 255, 1.5 / 255, 0.5, 1.0, 1.3]).view(1, 1, 1, 7).expand(1, 3, 1, 7)
    expected = (pixels * 255).round().clamp(0, 255).to(torch.uint8)[0, 0, 0].tolist()
    assert expected == [0, 0, 0, 2, 128, 255, 255]  # round half to even, then clamp
    assert to_uint8_images(pixels)[0][0, :, 0].tolist() == expected
    assert to_uint8_images(pixels.numpy())[0][0, :, 1].tolist() == expected
    half = pixels.to(torch.bfloat16)
    assert to_uint8_images(half)[0][0, :, 2].tolist() == (half.float() * 255).round().clamp(0, 255)[0, 0, 0].tolist()


def test_non_rgb_pil_images_are_converted():
    gray = Image.new("L", (5, 4), 77)
    assert to_uint8_images([gray])[0].tolist() == np.full((4, 5, 3), 77, np.uint8).tolist()


@pytest.mark.parametrize("images, error, message", [
    (torch.rand(2, 4, 8, 8), ValueError, r"\[N, 3, H, W\]"),
    (torch.rand(3, 8, 8), ValueError, "4 dimensions"),
    (torch.full((1, 3, 2, 2), float("nan")), ValueError, "NaN"),
    (torch.zeros(1, 2, 2, 5, dtype=torch.uint8), ValueError, r"\[N, H, W, 3\]"),
    (torch.zeros(1, 2, 2, 3, dtype=torch.int32), TypeError, "float in \\[0, 1\\] or uint8"),
    ("image.png", TypeError, "tensor, an array or a list"),
    ([b"png bytes"], TypeError, r"images\[0\]"),
])
def test_bad_images_are_refused(images, error, message):
    with pytest.raises(error, match=message):
        to_uint8_images(images)
