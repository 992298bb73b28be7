"""FID against pytorch-fid (the reference implementation) on the same seeded Inception weights."""

from unittest import mock

import numpy as np
import pytest
import torch
from eval.fid_helpers import write_pattern_image

from imreward.eval.fid import (FID_INCEPTION, FeatureCache, FidAgainstReference, fid_weights_path,
                               frechet_distance, load_fid_inception)
from imreward.hub import ModelDownloadError
from imreward.models.baselines import PublishedWeights


def _exact_fid(reference: np.ndarray, generated: np.ndarray) -> float:
    """FID from two feature sets with tr sqrt(S1 S2) as the nuclear norm of A B^T (S1 = A^T A,
    S2 = B^T B): exact even when the covariances are singular (fewer images than 2048 features)."""
    a = (reference - reference.mean(0)) / np.sqrt(len(reference) - 1)
    b = (generated - generated.mean(0)) / np.sqrt(len(generated) - 1)
    cross = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    return float(((reference.mean(0) - generated.mean(0)) ** 2).sum() + (a * a).sum() + (b * b).sum() - 2 * cross)


def test_fid_equals_pytorch_fid_on_the_same_weights_and_images(tmp_path, seeded_fid_weights):
    from pytorch_fid import fid_score, inception

    reference = [write_pattern_image(tmp_path / "reference" / f"r{i}.png", i) for i in range(4)]
    generated = [write_pattern_image(tmp_path / "generated" / f"g{i}.png", 3 * i + 1) for i in range(3)]
    state = torch.load(seeded_fid_weights, weights_only=True)
    with mock.patch.object(inception, "load_state_dict_from_url", lambda *args, **kwargs: state):
        network = inception.InceptionV3([3])
    activations = [fid_score.get_activations(files, network, batch_size=4, num_workers=0)
                   for files in (reference, generated)]
    expected = _exact_fid(*activations)
    # Not pytorch-fid's calculate_frechet_distance: its scipy sqrtm of a singular 2048 x 2048 product
    # takes a minute on one core and was 1.1e-3 off the exact value on such a set.

    cache = FeatureCache(tmp_path / "cache", lambda: load_fid_inception(seeded_fid_weights), "seeded", batch_size=3)
    errors: list[str] = []
    metric = FidAgainstReference(cache.statistics(reference, errors))
    features = cache.features(generated, errors)
    assert expected > 10 and errors == []
    np.testing.assert_allclose(features, activations[1], rtol=1e-5, atol=1e-5)
    assert metric.fid(features) == pytest.approx(expected, abs=1e-3)
    low, high = metric.interval(features, n_resamples=30)
    assert low <= high and np.isfinite([low, high]).all()

    # Cached per file list: a second pass computes nothing; touching a file invalidates its set.
    cache.computed = 0
    assert np.array_equal(cache.features(generated, []), features) and cache.statistics(reference, []).images == 4
    assert cache.computed == 0
    generated[0].write_bytes(generated[0].read_bytes())
    cache.features(generated, [])
    assert cache.computed == 3


def test_frechet_distance_matches_pytorch_fid_and_the_diagonal_closed_form():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 16)), rng.normal(size=(40, 16)) * 1.5 + 0.3
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    mu1, mu2 = a.mean(0), b.mean(0)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(calculate_frechet_distance(mu1, s1, mu2, s2), abs=1e-6)
    d1, d2 = rng.uniform(0.5, 2, 16), rng.uniform(0.5, 2, 16)
    closed = ((mu1 - mu2) ** 2).sum() + (d1 + d2 - 2 * np.sqrt(d1 * d2)).sum()
    assert frechet_distance(mu1, np.diag(d1), mu2, np.diag(d2)) == pytest.approx(closed, abs=1e-9)


def test_the_weights_download_is_checked_against_its_sha256(tmp_path):
    source = tmp_path / "served.pth"
    torch.save({"w": torch.ones(2)}, source)
    from imreward.models.baselines import file_sha256, fetch_weights

    good = PublishedWeights(url=source.as_uri(), filename="fid.pth", sha256=file_sha256(source))
    assert fetch_weights(good, tmp_path / "cache").read_bytes() == source.read_bytes()
    bad = PublishedWeights(url=source.as_uri(), filename="bad.pth", sha256="0" * 64)
    with pytest.raises(ModelDownloadError, match="could not download"):
        fetch_weights(bad, tmp_path / "cache")
    assert not (tmp_path / "cache" / "bad.pth").exists()
    # A local copy is used as given; the published file is what is fetched otherwise.
    assert fid_weights_path(source) == source
    assert FID_INCEPTION.sha256.startswith(FID_INCEPTION.filename.split("-")[-1].split(".")[0])


def test_an_undecodable_image_is_reported_and_left_out(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    cache = FeatureCache(tmp_path / "cache", lambda: torch.nn.Conv2d(3, 1, 1), "none")
    errors: list[str] = []
    assert cache.features([broken], errors).shape == (0, 2048)
    assert len(errors) == 1 and "broken.png" in errors[0] and "cannot decode" in errors[0]
    again: list[str] = []
    assert cache.features([broken], again).shape == (0, 2048) and again == errors  # the cached verdict
