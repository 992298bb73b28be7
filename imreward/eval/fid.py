"""Fréchet Inception Distance (Heusel et al., 2017) as the ImageReward paper reports it for generators.

The network is pytorch-fid's ``InceptionV3`` (its port of TensorFlow's FID Inception, 2048-d pool
features), built from the ``pytorch-fid`` package and given the published
``pt_inception-2015-12-05-6726825d.pth`` weights, which are downloaded by URL, checked against
their SHA-256 and read with ``torch.load(weights_only=True)`` (no object is unpickled).
Images are read as RGB in [0, 1] and resized bilinearly to 299 x 299, as pytorch-fid does.

The Fréchet distance is computed from eigenvalues rather than with ``scipy.linalg.sqrtm``:
tr sqrt(S_ref S) equals the sum of square roots of the eigenvalues of (X_c R)(X_c R)^T / (n - 1),
with R = S_ref^(1/2) and X_c the centred features, an n x n problem. This is exact, stays
accurate when n < 2048 (where S is singular) and makes resampling images cheap: R is computed
once and each resample costs one n x n eigenvalue problem. The interval is a delete-d jackknife
over halves of the images (``FidAgainstReference.interval``), not a bootstrap with replacement.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from imreward.errors import ImageLoadError
from imreward.image_io import load_image
from imreward.models.baselines import PublishedWeights, file_sha256, resolve_checkpoint

FID_INCEPTION = PublishedWeights(
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    filename="pt_inception-2015-12-05-6726825d.pth",
    sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
)
INCEPTION_SIZE = 299
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# Bump when feature extraction changes, so cached statistics from older code are not reused.
FEATURES_VERSION = 1


def fid_weights_path(weights: str | os.PathLike | None = None,
                     download_root: str | os.PathLike | None = None) -> Path:
    """``weights`` when given (a local copy, used as is), else the published FID weights file,
    downloaded into ``download_root`` (default ``~/.cache/imreward``) and checksum-verified."""
    return resolve_checkpoint(FID_INCEPTION, weights, download_root)


def load_fid_inception(weights: str | os.PathLike, device: str | torch.device | None = None) -> torch.nn.Module:
    """pytorch-fid's FID ``InceptionV3`` returning the 2048-d pool features, in eval mode, with the
    state dict in the weights file ``weights`` (pytorch-fid's published layout)."""
    from pytorch_fid import inception

    state_dict = torch.load(weights, map_location="cpu", weights_only=True)
    # pytorch-fid fetches its weights itself inside the constructor; hand it the verified state dict
    # instead, so the architecture is the package's own and nothing is unpickled or downloaded.
    with mock.patch.object(inception, "load_state_dict_from_url", lambda *args, **kwargs: state_dict):
        model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    return model.eval().to(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def image_files(folder: str | os.PathLike) -> list[Path]:
    """Every image (``.png``, ``.jpg``, ``.jpeg``, ``.webp``, any case) under ``folder``, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"FID reference folder {folder} does not exist")
    return sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())


def _read_image(path: Path) -> torch.Tensor:
    """(3, 299, 299) in [0, 1]: decoded as pytorch-fid does (RGB, no EXIF rotation), with the
    package's checks on corrupt files and decompression bombs."""
    array = np.asarray(load_image(path).convert("RGB"), dtype=np.float32) / 255.0
    pixels = torch.from_numpy(array).permute(2, 0, 1)[None]
    return torch.nn.functional.interpolate(pixels, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear",
                                           align_corners=False)[0]


@torch.no_grad()
def inception_features(model: torch.nn.Module, paths: Sequence[Path], batch_size: int = 32,
                       errors: list[str] | None = None) -> np.ndarray:
    """(n, 2048) float64 pool features of the images that decode; failures go to ``errors``."""
    device = next(model.parameters()).device
    features, batch = [], []

    def flush() -> None:
        if batch:
            features.append(model(torch.stack(batch).to(device))[0].flatten(1).double().cpu().numpy())
            batch.clear()

    for path in paths:
        try:
            batch.append(_read_image(path))
        except (ImageLoadError, OSError) as error:
            if errors is None:
                raise
            errors.append(f"{path}: {type(error).__name__}: {error}")
        if len(batch) == batch_size:
            flush()
    flush()
    return np.concatenate(features) if features else np.zeros((0, 2048))


def files_key(paths: Sequence[Path], weights_tag: str) -> str:
    """A digest of the file list with sizes and mtimes (and the network), naming cached features."""
    entries = [(str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns) for path in paths]
    text = json.dumps([FEATURES_VERSION, weights_tag, sorted(entries)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class FeatureCache:
    """Inception features (generated images) and statistics (reference folders) per image set, as
    ``.npz`` files named by ``files_key`` and read with ``allow_pickle=False``."""

    def __init__(self, folder: str | os.PathLike, get_model: Callable[[], torch.nn.Module], weights_tag: str,
                 batch_size: int = 32) -> None:
        """``get_model()`` gives the network, called (so loaded) only when some set is not cached;
        ``weights_tag`` names the weights (their SHA-256) in the cache keys."""
        self.folder, self.weights_tag, self.batch_size = Path(folder), weights_tag, batch_size
        self.get_model = functools.cache(get_model)
        self.computed = 0

    def _cached(self, kind: str, paths: Sequence[Path], errors: list[str], compute) -> dict[str, np.ndarray]:
        target = self.folder / f"{kind}-{files_key(paths, self.weights_tag)}.npz"
        if target.is_file():
            with np.load(target, allow_pickle=False) as stored:
                arrays = dict(stored)
        else:
            failed: list[str] = []
            features = inception_features(self.get_model(), paths, self.batch_size, failed)
            self.computed += len(paths)
            arrays = {**compute(features), "errors": np.array(failed, dtype=str)}
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.stem + ".partial.npz")
            np.savez(partial, **arrays)
            os.replace(partial, target)  # an interrupted write never leaves a truncated cache file
        errors.extend(str(error) for error in arrays["errors"])
        return arrays

    def features(self, paths: Sequence[Path], errors: list[str]) -> np.ndarray:
        """(n, 2048) features of ``paths``; images that fail to decode are left out, named in ``errors``."""
        return self._cached("features", paths, errors, lambda features: {"features": features})["features"]

    def statistics(self, paths: Sequence[Path], errors: list[str]) -> "ReferenceStatistics":
        """Mean and covariance of the features of ``paths`` (only these are kept, not the features)."""
        def summarise(features: np.ndarray) -> dict[str, np.ndarray]:
            stats = ReferenceStatistics.from_features(features)
            return {"mu": stats.mu, "sigma": stats.sigma, "images": np.array(stats.images)}

        arrays = self._cached("statistics", paths, errors, summarise)
        return ReferenceStatistics(arrays["mu"], arrays["sigma"], int(arrays["images"]))


@dataclass(frozen=True)
class ReferenceStatistics:
    """Mean and covariance of a reference set's features, with the covariance's square root."""

    mu: np.ndarray
    sigma: np.ndarray
    images: int

    @classmethod
    def from_features(cls, features: np.ndarray) -> "ReferenceStatistics":
        if features.shape[0] < 2:
            raise ValueError(f"FID needs at least 2 reference images, got {features.shape[0]}")
        return cls(features.mean(axis=0), np.cov(features, rowvar=False), features.shape[0])

    @property
    def sigma_sqrt(self) -> np.ndarray:
        return _psd_sqrt(self.sigma)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) of two Gaussians."""
    root = _psd_sqrt(sigma1)
    cross = np.linalg.eigvalsh(root @ sigma2 @ root)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2)
                 - 2 * np.sqrt(np.clip(cross, 0, None)).sum())


class FidAgainstReference:
    """FID of feature sets against fixed reference statistics, with a bootstrap over images."""

    def __init__(self, reference: ReferenceStatistics) -> None:
        self.reference = reference
        self.root = reference.sigma_sqrt
        self.reference_trace = float(np.trace(reference.sigma))

    def _fid(self, features: np.ndarray, projected: np.ndarray) -> float:
        n = features.shape[0]
        centred = projected - projected.mean(axis=0)
        gram = centred @ centred.T if n <= centred.shape[1] else centred.T @ centred
        cross = np.sqrt(np.clip(np.linalg.eigvalsh(gram / (n - 1)), 0, None)).sum()
        mean = features.mean(axis=0)
        trace = float(((features - mean) ** 2).sum() / (n - 1))
        return float(((mean - self.reference.mu) ** 2).sum() + trace + self.reference_trace - 2 * cross)

    def project(self, features: np.ndarray) -> np.ndarray:
        """``features`` times the reference covariance's square root (what ``fid`` and ``interval`` use;
        compute it once when calling both)."""
        return features @ self.root

    def fid(self, features: np.ndarray, projected: np.ndarray | None = None) -> float:
        if features.shape[0] < 2:
            return float("nan")
        return self._fid(features, self.project(features) if projected is None else projected)

    def interval(self, features: np.ndarray, n_resamples: int = 100, confidence: float = 0.95,
                 seed: int = 0, projected: np.ndarray | None = None) -> tuple[float, float]:
        """FID ± z · SE, the standard error by the delete-d jackknife (Shao & Wu 1989) over random
        halves drawn without replacement: FID of r = max(2, n // 2) images, n_resamples times, and
        SE^2 = r / (n - r) · mean squared deviation of those values; the reference statistics are
        held fixed. Resampling with replacement would repeat images and bias every resample's FID
        upwards (its percentile interval could exclude the FID itself); this interval is centred
        on the FID of all images. FID is still biased upwards for few images, so generators with
        different image counts are not directly comparable."""
        from scipy import stats

        n = features.shape[0]
        if n < 3 or n_resamples < 2:
            return float("nan"), float("nan")
        projected = self.project(features) if projected is None else projected
        rng = np.random.default_rng(seed)
        retained = max(2, n // 2)
        values = []
        for _ in range(n_resamples):
            index = rng.choice(n, retained, replace=False)
            values.append(self._fid(features[index], projected[index]))
        error = float(np.sqrt(retained / (n - retained) * np.var(values)))
        spread = float(stats.norm.ppf(0.5 + confidence / 2)) * error
        value = self._fid(features, projected)
        return max(0.0, value - spread), value + spread


INTERVAL_METHOD = ("FID ± 1.96 SE, the standard error by the delete-d jackknife over random halves of the "
                   "generator's images drawn without replacement (reference fixed)")


class ReferenceFid:
    """FID of image sets against the images under one reference folder (recursively), with the
    network loaded (and its weights downloaded) only when some features are not cached yet."""

    def __init__(self, reference_dir: str | os.PathLike, cache_dir: str | os.PathLike,
                 weights: str | os.PathLike | None = None, download_root: str | os.PathLike | None = None,
                 device: str | None = None, batch_size: int = 32) -> None:
        self.reference_dir = Path(reference_dir)
        self.reference_paths = image_files(reference_dir)
        if len(self.reference_paths) < 2:
            raise ValueError(f"FID reference folder {reference_dir} holds {len(self.reference_paths)} images "
                             f"({', '.join(IMAGE_SUFFIXES)}); it needs at least 2")
        tag = FID_INCEPTION.sha256 if weights is None else file_sha256(weights)
        self.cache = FeatureCache(cache_dir, lambda: load_fid_inception(fid_weights_path(weights, download_root),
                                                                        device), tag, batch_size)
        self.errors: list[str] = []
        self._metric: FidAgainstReference | None = None

    @property
    def metric(self) -> FidAgainstReference:
        if self._metric is None:
            self._metric = FidAgainstReference(self.cache.statistics(self.reference_paths, self.errors))
        return self._metric

    def evaluate(self, paths: Sequence[Path], n_resamples: int = 100, seed: int = 0) -> dict[str, float]:
        """{"value", "low", "high", "images"}: FID of ``paths`` and its jackknife interval over images."""
        features = self.cache.features(paths, self.errors)
        projected = self.metric.project(features)
        low, high = self.metric.interval(features, n_resamples, seed=seed, projected=projected)
        return {"value": self.metric.fid(features, projected), "low": low, "high": high,
                "images": int(features.shape[0])}
