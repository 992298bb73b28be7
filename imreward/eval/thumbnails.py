"""Small JPEG copies of the images an HTML report shows, made once and kept beside the report.

A thumbnail is named by a digest of the image's identity as the score cache keys it (resolved path
or archive member, size and modification time; inline bytes by their hash) and the thumbnail size,
so a re-run reuses every thumbnail whose image did not change, and a changed image gets a new one.
Images are decoded by ``imreward.image_io`` (its format allow-list and decompression-bomb check).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from imreward.data.records import ImageReader, ImageSource
from imreward.errors import ImageLoadError
from imreward.eval.cache import image_key

THUMBNAIL_FOLDER = "thumbs"
THUMBNAIL_SIZE = 192


class Thumbnails:
    """``get(image)`` -> the thumbnail's path relative to the report folder, or None if unreadable."""

    def __init__(self, report_dir: str | os.PathLike, size: int = THUMBNAIL_SIZE) -> None:
        self.report_dir = Path(report_dir)
        self.folder = self.report_dir / THUMBNAIL_FOLDER
        self.size = size
        self.reader = ImageReader()
        self.made = 0
        self._known: dict[object, str | None] = {}

    def get(self, image: str | os.PathLike | ImageSource) -> str | None:
        source = image if isinstance(image, ImageSource) else ImageSource(os.fspath(image))
        if source in self._known:
            return self._known[source]
        try:
            key = image_key(source)
        except OSError:
            self._known[source] = None
            return None
        name = hashlib.sha256(repr((key, self.size)).encode()).hexdigest()[:32] + ".jpg"
        target = self.folder / name
        if not target.is_file() and not self._make(source, target):
            self._known[source] = None
            return None
        self._known[source] = f"{THUMBNAIL_FOLDER}/{name}"
        return self._known[source]

    def _make(self, source: ImageSource, target: Path) -> bool:
        from imreward.image_io import load_image

        try:
            data = self.reader.read(source)
            image = load_image(data).convert("RGB")
        except (OSError, KeyError, ValueError, ImageLoadError):
            return False
        image.thumbnail((self.size, self.size))
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        image.save(partial, format="JPEG", quality=82)
        os.replace(partial, target)  # an interrupted run never leaves a truncated thumbnail
        self.made += 1
        return True
