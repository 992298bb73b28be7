import json
import zipfile

import pytest
from sqlalchemy import select

from imreward.annotate.importer import InvalidSource, import_path
from imreward.annotate.models import Prompt

from annotate.annotate_helpers import PROMPTS, build_platform, write_image


@pytest.fixture
def empty_platform(sqlite_url, tmp_path):
    return build_platform(sqlite_url, tmp_path, prompt_folders=None)


def stored_prompts(platform) -> dict[str, tuple[str, list[str]]]:
    with platform.sessions() as session:
        prompts = session.scalars(select(Prompt).order_by(Prompt.id)).all()
        return {p.external_id: (p.text, [i.media_path for i in p.images]) for p in prompts}


def test_folder_per_prompt_imports_text_and_images_in_name_order(empty_platform, prompt_folders):
    with empty_platform.sessions() as session:
        report = import_path(session, empty_platform.media_root, prompt_folders)
    assert report.imported == ["p1", "p2", "p3"]
    stored = stored_prompts(empty_platform)
    assert {key: text for key, (text, _) in stored.items()} == PROMPTS
    first_images = stored["p1"][1]
    assert first_images == ["prompts/1/0.png", "prompts/1/1.png", "prompts/1/2.png"]
    original = (prompt_folders / "p1" / "2.png").read_bytes()
    assert (empty_platform.media_root / first_images[2]).read_bytes() == original


def test_reimport_skips_prompts_already_present(empty_platform, prompt_folders):
    with empty_platform.sessions() as session:
        import_path(session, empty_platform.media_root, prompt_folders)
        report = import_path(session, empty_platform.media_root, prompt_folders)
    assert report.imported == [] and report.skipped_existing == ["p1", "p2", "p3"]
    assert len(stored_prompts(empty_platform)) == 3


@pytest.mark.parametrize("layout", ["json", "jsonl"])
def test_manifest_accepts_images_or_generations(empty_platform, tmp_path, layout):
    source = tmp_path / "manifest"
    for name in ("a.png", "b.png", "sub/c.png"):
        write_image(source / name, 10)
    records = [
        {"id": "m1", "prompt": "two apples", "images": ["a.png", "b.png"]},
        {"id": 7, "prompt": "a pear", "generations": ["b.png", "sub/c.png"], "ranking": [1, 2]},
    ]
    manifest = source / f"manifest.{layout}"
    if layout == "json":
        manifest.write_text(json.dumps(records))
    else:
        manifest.write_text("\n".join(json.dumps(record) for record in records) + "\n")
    with empty_platform.sessions() as session:
        report = import_path(session, empty_platform.media_root, manifest)
    assert report.imported == ["m1", "7"]
    assert stored_prompts(empty_platform)["7"][0] == "a pear"
    assert len(stored_prompts(empty_platform)["7"][1]) == 2


def test_manifest_paths_may_not_leave_its_folder(empty_platform, tmp_path):
    write_image(tmp_path / "outside.png", 1)
    write_image(tmp_path / "m" / "a.png", 1)
    manifest = tmp_path / "m" / "manifest.json"
    manifest.write_text(json.dumps([{"id": "x", "prompt": "p", "images": ["a.png", "../outside.png"]}]))
    with empty_platform.sessions() as session, pytest.raises(InvalidSource, match="leaves"):
        import_path(session, empty_platform.media_root, manifest)


def test_zip_of_prompt_folders_imports(empty_platform, prompt_folders, tmp_path):
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(prompt_folders.rglob("*")):
            zipped.write(path, path.relative_to(prompt_folders.parent))
    with empty_platform.sessions() as session:
        report = import_path(session, empty_platform.media_root, archive)
    assert report.imported == ["p1", "p2", "p3"]


def test_zip_members_escaping_the_archive_are_refused(empty_platform, tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../../escaped.txt", "gotcha")
    with empty_platform.sessions() as session, pytest.raises(InvalidSource, match="leaves"):
        import_path(session, empty_platform.media_root, archive)
    assert not (tmp_path / "escaped.txt").exists()


def test_prompt_with_a_single_image_is_refused(empty_platform, tmp_path):
    (tmp_path / "one" / "q").mkdir(parents=True)
    (tmp_path / "one" / "q" / "prompt.txt").write_text("lonely")
    write_image(tmp_path / "one" / "q" / "0.png", 3)
    with empty_platform.sessions() as session, pytest.raises(InvalidSource, match="two images"):
        import_path(session, empty_platform.media_root, tmp_path / "one")
