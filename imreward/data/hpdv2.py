"""The HPD v2 test set (Wu et al. 2023, ``ymhao/HPDv2`` on the hub), read where it lies.

A folder holds ``test.json`` (a list of ``{"prompt", "image_path": [file names], "rank": [ints],
...}``; a lower rank is preferred, as HPSv2's own evaluation compares it with the order of
descending scores) and the images, either unpacked under ``test/`` or as the published
``test.tar.gz``, whose members are read from the archive (one pass, kept in memory) instead of
being unpacked. Only the test split has rankings; the train annotations are pairwise.

Under the evaluation policy a prompt whose images all share one rank is kept (HPSv2's
``evaluation.py`` scores every prompt, and such a prompt earns 1.0 under its rule); it gives no
pair, so rules that compare only ranked pairs leave it out by themselves.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path, PurePosixPath

from imreward.data.loading import DataStats, RawImage, build_records
from imreward.data.records import ImageSource, PromptRecord

SPLITS = ("test",)


def is_hpdv2_folder(path: Path, split: str) -> bool:
    """An HPD v2 folder (its ranked test annotations with their images), whichever ``split`` was asked."""
    return any((path / f"{name}.json").is_file() and ((path / name).is_dir() or (path / f"{name}.tar.gz").is_file())
               for name in SPLITS)


def _tar_members(archive: Path) -> dict[str, tuple[str, int]]:
    """File name (and path without a leading ``./``) -> (member name, size)."""
    members: dict[str, tuple[str, int]] = {}
    with tarfile.open(archive) as opened:
        for member in opened:
            if member.isfile():
                name = member.name.removeprefix("./")
                members[name] = (member.name, member.size)
                members.setdefault(PurePosixPath(name).name, (member.name, member.size))
    return members


def read_hpdv2(path: str | Path, split: str = "test", policy: str = "eval") -> tuple[list[PromptRecord], DataStats]:
    """Records of the HPD v2 test annotations; ``path`` is the folder or the ``test.json`` itself."""
    if split not in SPLITS:
        raise ValueError(f"HPD v2 has rankings only for the test split, not {split!r}")
    path = Path(path)
    annotations = path if path.suffix == ".json" else path / f"{split}.json"
    if not annotations.is_file():
        raise FileNotFoundError(f"{annotations} not found: pass an HPD v2 folder holding {split}.json")
    root = annotations.parent
    entries = json.loads(annotations.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise ValueError(f"{annotations}: expected a JSON list of prompts")
    archive = root / f"{split}.tar.gz"
    members = _tar_members(archive) if not (root / split).is_dir() and archive.is_file() else None
    groups: dict[str, tuple[str, list[RawImage]]] = {}
    for number, entry in enumerate(entries):
        try:
            prompt, names, ranks = entry["prompt"], list(entry["image_path"]), [int(r) for r in entry["rank"]]
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{annotations}: entry {number} needs 'prompt', an 'image_path' list and an "
                             f"integer 'rank' list ({error!r})") from error
        if len(names) != len(ranks):
            raise ValueError(f"{annotations}: entry {number}: {len(names)} images but {len(ranks)} ranks")
        images = []
        for name, rank in zip(names, ranks):
            if members is None:
                file = root / split / name
                size = file.stat().st_size if file.is_file() else None
                images.append(RawImage(ImageSource(str(file)), rank, size))
            else:
                found = members.get(f"{split}/{name}") or members.get(name) or members.get(PurePosixPath(name).name)
                member, size = found if found else (name, None)
                images.append(RawImage(ImageSource(str(archive), member), rank, size))
        groups[str(number)] = (prompt, images)
    return build_records(groups, policy, keep_ties=policy == "eval")
