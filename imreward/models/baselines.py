"""The paper's baseline scorers: where their published weights live, how they are fetched, and
their registry names are the original package's ("CLIP", "BLIP", "Aesthetic"; see ``imreward.hub``).

Weights are downloaded on first use (never at import) into ``download_root`` or
``~/.cache/imreward`` and reused from there; a file whose checksum is published is verified.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from imreward.hub import ModelDownloadError

DEFAULT_CACHE = Path("~/.cache/imreward")


@dataclass(frozen=True)
class PublishedWeights:
    """One published weights file; ``sha256`` when its publisher gives one."""

    url: str
    filename: str
    sha256: str | None = None


CLIP_VIT_L14 = PublishedWeights(
    url="https://openaipublic.azureedge.net/clip/models/"
        "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
    filename="ViT-L-14.pt",
    sha256="b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
)
BLIP_LARGE = PublishedWeights(
    url="https://storage.googleapis.com/sfr-vision-language-research/BLIP/models/model_large.pth",
    filename="model_large.pth",
)
AESTHETIC_MLP = PublishedWeights(
    url="https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/"
        "sac%2Blogos%2Bava1-l14-linearMSE.pth",
    filename="sac+logos+ava1-l14-linearMSE.pth",
)

def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_weights(weights: PublishedWeights, download_root: str | os.PathLike | None = None) -> Path:
    """Path of the cached weights file, downloading it first if needed.

    A cached file whose checksum does not match the published one is downloaded again; a download
    that does not match raises ``ModelDownloadError`` and leaves nothing in the cache.
    """
    folder = Path(download_root or DEFAULT_CACHE).expanduser()
    target = folder / weights.filename
    if target.is_file() and (weights.sha256 is None or file_sha256(target) == weights.sha256):
        return target
    folder.mkdir(parents=True, exist_ok=True)
    try:
        # Writes to a temporary file and checks the hash before moving it into place.
        torch.hub.download_url_to_file(weights.url, str(target), hash_prefix=weights.sha256, progress=True)
    except Exception as error:
        raise ModelDownloadError(
            f"could not download {weights.url} to {target}: {type(error).__name__}: {error}\n"
            f"Without network, copy {weights.filename} into {folder} (or pass checkpoint=PATH)."
        ) from error
    return target


def resolve_checkpoint(weights: PublishedWeights, checkpoint: str | os.PathLike | None,
                       download_root: str | os.PathLike | None) -> Path:
    """A user-given checkpoint path (used as is), else the cached or downloaded published file."""
    if checkpoint is None:
        return fetch_weights(weights, download_root)
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return path
