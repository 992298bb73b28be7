import io

import numpy as np
import pytest
import torch
from PIL import Image

from imreward.image_io import ImageLoadError, load_image
from imreward.preprocess import (MAX_RESIZED_PIXELS, HFCLIPPilPreprocessor, PilPreprocessor, preprocess_tensor,
                                 resized_size)

from conftest import make_image


def test_missing_empty_and_corrupt_files_name_the_file(tmp_path):
    missing = tmp_path / "missing.png"
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.jpg"
    buffer = io.BytesIO()
    make_image(64, 64).save(buffer, format="JPEG")
    corrupt.write_bytes(buffer.getvalue()[:200])
    for path, reason in [(missing, "no such file"), (empty, "empty"), (corrupt, "cannot decode")]:
        with pytest.raises(ImageLoadError, match=reason) as error:
            load_image(path)
        assert str(path) in str(error.value)


def test_unsupported_type_raises_type_error_naming_it():
    with pytest.raises(TypeError, match="dict"):
        load_image({"not": "an image"})


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (300, 300)).save(path)
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(path, max_pixels=300 * 299)
    assert load_image(path, max_pixels=300 * 300).size == (300, 300)


def test_arrays_and_tensors_match_the_pil_image():
    image = make_image(30, 40, seed=3)
    array = np.array(image)
    expected = np.asarray(image)
    assert np.array_equal(np.asarray(load_image(array)), expected)
    assert np.array_equal(np.asarray(load_image(array.astype(np.float32) / 255)), expected)
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    assert np.array_equal(np.asarray(load_image(tensor)), expected)
    assert np.array_equal(np.asarray(load_image(tensor.float() / 255)), expected)
    with pytest.raises(ImageLoadError, match="shape"):
        load_image(np.zeros((4, 4, 5), np.uint8))


def test_bytes_are_decoded():
    buffer = io.BytesIO()
    make_image(20, 30).save(buffer, format="PNG")
    assert load_image(buffer.getvalue()).size == (30, 20)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "La", "L", "P", "PA", "CMYK", "I;16", "I", "F", "1", "YCbCr"])
def test_every_mode_preprocesses_to_rgb(mode):
    image = make_image(50, 70, seed=1).convert("RGBA" if mode in ("La", "PA", "LA") else "RGB")
    if mode == "I;16":
        image = Image.fromarray((np.asarray(image.convert("L")).astype(np.uint16) * 40))
    else:
        image = image.convert("LA").convert("La") if mode == "La" else image.convert(mode)
    assert image.mode == mode
    pixels = PilPreprocessor(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))(image)
    assert pixels.shape == (3, 32, 32) and torch.isfinite(pixels).all()
    if mode == "PA":  # converted first: the original's order would give an all-black image
        assert pixels.std() > 0.1


def test_resize_then_crop_follows_the_original_order():
    # The original resizes a palette image in its own mode (nearest), then converts to RGB.
    image = make_image(90, 120, seed=2).convert("P")
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Resize, ToTensor

    original = Compose([Resize(64, interpolation=InterpolationMode.BICUBIC), CenterCrop(64),
                        lambda im: im.convert("RGB"), ToTensor()])(image)
    ours = PilPreprocessor(64, (0, 0, 0), (1, 1, 1))(image)
    assert torch.equal(ours, original)


def test_resized_size_truncates_the_long_side():
    assert resized_size(480, 640, 224) == (224, 298)  # 224 * 640 / 480 = 298.67
    assert resized_size(1000, 300, 224) == (746, 224)


@pytest.mark.parametrize("preprocessor", [PilPreprocessor, HFCLIPPilPreprocessor])
def test_extreme_aspect_ratios_are_refused_before_resizing(preprocessor):
    # Resizing the short side of 8192x1 to 224 would allocate 1.8 M x 224 pixels (+478 MB before this check).
    preprocess = preprocessor(224, (0, 0, 0), (1, 1, 1))
    with pytest.raises(ImageLoadError, match="aspect ratio 8192:1"):
        preprocess(Image.new("L", (8192, 1)))
    with pytest.raises(ImageLoadError, match="more than the limit"):
        preprocess_tensor(torch.zeros(1, 3, 1, 8192), 224, (0, 0, 0), (1, 1, 1))
    assert preprocess(Image.new("L", (1, 300))).shape == (3, 224, 224)  # 300:1, within the bound
    ratio = MAX_RESIZED_PIXELS // 224**2  # the widest shape within the bound
    assert resized_size(1, ratio, 224) == (224, 224 * ratio)


def test_an_extreme_aspect_ratio_fails_only_its_own_item():
    from imreward.testing import tiny_model

    model = tiny_model().eval()  # 32 px: a 65536x1 image would be resized to 2 M x 32
    strip = io.BytesIO()
    Image.new("L", (65536, 1)).save(strip, format="PNG")
    errors = {}
    scores = model.score_batch("a cat", [strip.getvalue(), make_image(40, 48, seed=1)],
                               on_error=lambda index, error: errors.setdefault(index, str(error)))
    assert scores[0] is None and "aspect ratio 65536:1" in errors[0] and scores[1] is not None


def test_tensor_preprocessing_is_close_to_pil_and_differentiable():
    image = make_image(150, 200, seed=4)
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    reference = PilPreprocessor(64, mean, std)(image)
    pixels = (torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255)[None].requires_grad_()
    ours = preprocess_tensor(pixels, 64, mean, std)
    assert ours.shape == (1, 3, 64, 64)
    difference = (ours[0] - reference).abs() * torch.tensor(std).view(3, 1, 1)  # back in [0, 1] pixel units
    assert difference.mean() < 0.01 and difference.max() < 0.2
    ours.sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="B, 3, H, W"):
        preprocess_tensor(torch.rand(3, 10, 10), 64, mean, std)
