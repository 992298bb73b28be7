"""Hostile imports: zip bombs, files that are not images, ids the database cannot hold, a full
disk (issue 12, items 2, 3 and 8)."""

import errno
import io
import json
import struct
import tempfile
import zipfile
import zlib

import pytest
from sqlalchemy import func, select

from imreward.annotate import importer
from imreward.annotate.cli import main
from imreward.annotate.importer import ImportLimits, InvalidSource, import_path
from imreward.annotate.models import Prompt

from annotate.annotate_helpers import build_platform, write_image, write_prompt_folders

TINY = ImportLimits(max_members=10, max_member_bytes=64 * 1024, max_total_bytes=256 * 1024, max_ratio=20)


@pytest.fixture
def empty(sqlite_url, tmp_path):
    return build_platform(sqlite_url, tmp_path, prompt_folders=None)


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def prompt_count(platform) -> int:
    with platform.sessions() as session:
        return session.scalar(select(func.count(Prompt.id)))


def media_files(platform) -> list:
    return [path for path in platform.media_root.rglob("*") if path.is_file()]


def zip_of(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def png_bytes(shade: int = 10, size=(16, 16)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (shade, 0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


def one_prompt(extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    return {"p/prompt.txt": b"a cat", "p/0.png": png_bytes(1), "p/1.png": png_bytes(2), **(extra or {})}


def assert_refused(platform, archive, scratch, match: str, limits: ImportLimits = TINY):
    with platform.sessions() as session, pytest.raises(InvalidSource, match=match):
        import_path(session, platform.media_root, archive, limits)
    assert prompt_count(platform) == 0 and media_files(platform) == []
    assert list(scratch.iterdir()) == []


def test_highly_compressible_member_is_refused(empty, tmp_path, scratch):
    archive = zip_of(tmp_path / "bomb.zip", one_prompt({"p/2.png": bytes(48 * 1024)}))
    assert_refused(empty, archive, scratch, "expands more than 20 times")


def test_too_many_members_are_refused(empty, tmp_path, scratch):
    archive = zip_of(tmp_path / "many.zip", one_prompt({f"p/x{n}.txt": b"." for n in range(10)}))
    assert_refused(empty, archive, scratch, "at most 10")


def test_total_size_is_limited(empty, tmp_path, scratch):
    noise = {f"p/n{n}.bin": bytes(range(256)) * 100 for n in range(5)}  # 5 x 25.6 kB
    archive = zip_of(tmp_path / "total.zip", one_prompt(noise))
    limits = ImportLimits(max_member_bytes=64 * 1024, max_total_bytes=100 * 1024, max_ratio=10_000)
    assert_refused(empty, archive, scratch, "more than 102400 bytes", limits)


def lie_about_size(path, member: str, declared: int) -> None:
    """Rewrite the local and central headers of `member` to declare `declared` bytes."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    struct.pack_into("<I", data, info.header_offset + 22, declared)  # local header: uncompressed size
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(member)] != member.encode():
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, central + 24, declared)  # central header: uncompressed size
    path.write_bytes(bytes(data))


def test_member_lying_about_its_size_is_refused(empty, tmp_path, scratch):
    archive = zip_of(tmp_path / "liar.zip", one_prompt({"p/2.png": bytes(1024 * 1024)}))
    lie_about_size(archive, "p/2.png", 1000)
    with zipfile.ZipFile(archive) as check:
        assert check.getinfo("p/2.png").file_size == 1000  # the declared sizes pass the checks
    assert_refused(empty, archive, scratch, "not a readable zip|expands more than", TINY)


def test_extraction_counts_the_bytes_actually_read():
    """Whatever the zip reader returns is counted, not what the header declared."""
    info = zipfile.ZipInfo("p/0.png")
    info.file_size, info.compress_size = 10, 10  # declared
    stream = io.BytesIO(bytes(300 * 1024))  # what actually comes out
    with pytest.raises(InvalidSource, match="more than 65536 bytes"):
        importer._copy_bounded(stream, io.BytesIO(), info, ImportLimits(max_member_bytes=64 * 1024, max_ratio=1e9), 10**9)


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk (valid CRC) for an image of the given size, and no pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


def gif_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("P", (8, 8)).save(buffer, "GIF")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("1.png", b"<!doctype html><script>alert(1)</script>", "1.png refused"),
        ("1.jpg", b"\x7fELF\x02\x01\x01" + bytes(200), "1.jpg refused"),
        ("1.png", b"MZ\x90\x00" + bytes(200), "1.png refused"),
        ("1.png", png_header_claiming(100_000, 100_000), "1.png refused"),
        ("1.png", gif_bytes(), "GIF is not accepted"),
        ("1.webp", b"", "1.webp refused"),
    ],
)
def test_files_that_are_not_allowed_images_are_refused(empty, tmp_path, scratch, name, content, match):
    folder = tmp_path / "incoming" / "p"
    write_image(folder / "0.png", 5)
    (folder / "prompt.txt").write_text("a dog")
    (folder / name).write_bytes(content)
    with empty.sessions() as session, pytest.raises(InvalidSource, match=match):
        import_path(session, empty.media_root, tmp_path / "incoming")
    assert prompt_count(empty) == 0 and media_files(empty) == []


def test_image_sides_and_pixels_are_limited(empty, tmp_path):
    folder = tmp_path / "incoming" / "p"
    write_image(folder / "0.png", 5)
    (folder / "prompt.txt").write_text("a dog")
    (folder / "1.png").write_bytes(png_bytes(size=(300, 20)))
    with empty.sessions() as session:
        with pytest.raises(InvalidSource, match="largest side allowed is 256"):
            import_path(session, empty.media_root, tmp_path / "incoming", ImportLimits(max_side=256))
        with pytest.raises(InvalidSource, match="1.png refused"):
            import_path(session, empty.media_root, tmp_path / "incoming", ImportLimits(max_pixels=2000))


def test_images_are_stored_under_the_suffix_of_their_real_format(empty, tmp_path):
    from PIL import Image

    folder = tmp_path / "incoming" / "p"
    write_image(folder / "0.png", 5)
    (folder / "prompt.txt").write_text("a dog")
    Image.new("RGB", (8, 8)).save(folder / "1.png", "JPEG")  # a JPEG named .png
    with empty.sessions() as session:
        import_path(session, empty.media_root, tmp_path / "incoming")
    assert sorted(p.name for p in media_files(empty)) == ["0.png", "1.jpg"]


def test_prompt_ids_the_database_cannot_hold_are_refused(db_url, tmp_path):
    platform = build_platform(db_url, tmp_path, prompt_folders=None)
    source = tmp_path / "manifest"
    write_image(source / "a.png", 1)
    write_image(source / "b.png", 2)
    for bad_id in ["x" * 300, "nul\x00id", ""]:
        (source / "manifest.json").write_text(json.dumps([{"id": bad_id, "prompt": "p", "images": ["a.png", "b.png"]}]))
        with platform.sessions() as session, pytest.raises(InvalidSource, match="prompt id"):
            import_path(session, platform.media_root, source / "manifest.json")
    (source / "manifest.json").write_text(json.dumps([{"id": "ok", "prompt": "a\x00b", "images": ["a.png", "b.png"]}]))
    with platform.sessions() as session, pytest.raises(InvalidSource, match="control characters"):
        import_path(session, platform.media_root, source / "manifest.json")
    assert prompt_count(platform) == 0


def test_a_full_disk_leaves_no_partial_import(empty, tmp_path, monkeypatch):
    source = write_prompt_folders(tmp_path / "incoming")
    real_copy, calls = importer.shutil.copyfile, []

    def copy_until_full(src, dst):
        calls.append(dst)
        if len(calls) == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy(src, dst)

    monkeypatch.setattr(importer.shutil, "copyfile", copy_until_full)
    with empty.sessions() as session, pytest.raises(OSError, match="No space left"):
        import_path(session, empty.media_root, source)
    assert prompt_count(empty) == 0
    assert list(empty.media_root.rglob("*")) == []


@pytest.mark.parametrize("kind", ["missing", "not-a-zip", "bad-json", "bad-layout"])
def test_cli_import_of_an_invalid_source_is_a_clear_error(tmp_path, capsys, kind):
    source = {
        "missing": tmp_path / "nothing-here",
        "not-a-zip": tmp_path / "fake.zip",
        "bad-json": tmp_path / "manifest.json",
        "bad-layout": tmp_path / "folder",
    }[kind]
    if kind == "not-a-zip":
        source.write_text("hello")
    elif kind == "bad-json":
        source.write_text("[{")
    elif kind == "bad-layout":
        (source / "p1").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_info:
        main(["annotate", "import", str(source), "--db", str(tmp_path / "x.db"), "--media", str(tmp_path / "m")])
    message = str(exit_info.value.code)
    assert message.startswith("error:") and str(source.name) in message
    assert "Traceback" not in capsys.readouterr().err
