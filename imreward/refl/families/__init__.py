"""Generator families ReFL can tune, one module each: a new family is one ``GeneratorFamily``
subclass registered in ``FAMILIES``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from imreward.refl.families.base import Conditioning, GeneratorFamily
from imreward.refl.families.flux import FluxFamily
from imreward.refl.families.sd3 import SD3Family
from imreward.refl.families.unet import UNetFamily

FAMILIES: dict[str, GeneratorFamily] = {family.name: family for family in (UNetFamily(), SD3Family(), FluxFamily())}

__all__ = ["FAMILIES", "Conditioning", "GeneratorFamily", "family_of", "family_of_folder"]


def family_of(pipeline) -> GeneratorFamily:
    """The family of a loaded diffusers pipeline; ``ValueError`` when none supports it."""
    for family in FAMILIES.values():
        if family.matches(pipeline):
            return family
    raise ValueError(f"{type(pipeline).__name__} is not a pipeline ReFL supports "
                     f"({', '.join(name for family in FAMILIES.values() for name in family.pipeline_classes)})")


def family_of_folder(folder: str | os.PathLike) -> GeneratorFamily:
    """The family named by a pipeline folder's ``model_index.json`` (``_class_name``)."""
    index = Path(folder) / "model_index.json"
    try:
        class_name = json.loads(index.read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError) as error:
        raise ValueError(f"{index}: cannot read the pipeline index ({error})") from error
    for family in FAMILIES.values():
        if class_name in family.pipeline_classes:
            return family
    supported = ", ".join(name for family in FAMILIES.values() for name in family.pipeline_classes)
    raise ValueError(f"{index}: pipeline class {class_name!r} is not supported (supported: {supported})")
