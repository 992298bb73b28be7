"""score_batch(decode="gpu"): nvJPEG on a CUDA model, a clean fall-back to Pillow elsewhere, the same checks."""

import io

import pytest
import torch
from PIL import Image

from imreward.gpu_decode import gpu_preprocess
from imreward.image_io import WEB_FORMATS, ImageLoadError
from imreward.testing import tiny_model

from conftest import make_image

MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=95)
    return buffer.getvalue()


def test_a_cpu_model_falls_back_to_pillow_with_a_warning(tmp_path):
    model = tiny_model(seed=0)
    images = [encoded(make_image(40, 50, seed=i), fmt) for i, fmt in enumerate(["JPEG", "PNG", "JPEG"])]
    with pytest.warns(UserWarning, match="decoding with Pillow"):
        scores = model.score_batch("a cat", images, decode="gpu")
    assert scores == model.score_batch("a cat", images)
    with pytest.raises(ValueError, match="decode must be"):
        model.score_batch("a cat", images, decode="nvjpeg")


def test_only_checked_rgb_jpegs_take_the_tensor_path():
    image = make_image(60, 90, seed=3)
    sources = [encoded(image, "JPEG"), encoded(image, "PNG"), encoded(image.convert("CMYK"), "JPEG"),
               encoded(image, "TIFF"), b"not an image"]
    results = gpu_preprocess(sources, torch.device("cpu"), 32, MEAN, STD, WEB_FORMATS, 10**6)
    assert results[0].shape == (3, 32, 32)
    assert results[1] is None and results[2] is None  # PNG and CMYK JPEG: the PIL path
    assert isinstance(results[3], ImageLoadError) and "format TIFF is not accepted" in str(results[3])
    assert isinstance(results[4], ImageLoadError)
    too_big = gpu_preprocess(sources[:1], torch.device("cpu"), 32, MEAN, STD, WEB_FORMATS, 59 * 90)
    assert isinstance(too_big[0], ImageLoadError)
    pil = tiny_model().pil_preprocess(Image.open(io.BytesIO(sources[0])))  # same decoder on the CPU: resize only
    assert (results[0] - pil).abs().mean() * STD[0] < 0.01


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_decoded_scores_stay_close_to_the_pil_path():
    model = tiny_model(seed=0).cuda()
    images = [encoded(make_image(200 + 10 * i, 300, seed=i), "JPEG") for i in range(8)]
    pil = torch.tensor(model.score_batch("a cat", images))
    gpu = torch.tensor(model.score_batch("a cat", images, decode="gpu"))
    assert (gpu - pil).abs().max() < 0.05
