"""Append-only JSON-lines logs (training metrics, ReFL validation records) that survive a crash.

A process killed while appending can leave a last line without its newline, or cut inside the
JSON. Readers drop such a torn tail (a complete record that only lacks its newline is kept), and
the next append first cuts it off, so the log never holds a broken line in its middle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

TAIL_CHUNK = 64 * 1024


def _parsed(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def read_jsonl_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a log (``[]`` if there is no file), without a torn last line.

    Raises:
        ValueError: a line before the last is not a JSON object (the file is not such a log),
            naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = _parsed(line)
        if record is None:
            if number == len(lines):  # the unterminated last line: torn by a crash
                break
            raise ValueError(f"{path}:{number}: not a JSON object")
        records.append(record)
    return records


def repair_jsonl_log(path: str | os.PathLike) -> None:
    """End the log at its last complete line: cut a torn tail, or add the newline a complete last
    record lacks."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("r+b") as stream:
        end = stream.seek(0, os.SEEK_END)
        stream.seek(end - 1)
        if stream.read(1) == b"\n":
            return
        start = end
        while start > 0:  # the start of the unterminated last line
            start = max(0, start - TAIL_CHUNK)
            stream.seek(start)
            newline = stream.read(end - start).rfind(b"\n")
            if newline >= 0:
                start += newline + 1
                break
        stream.seek(start)
        if _parsed(stream.read(end - start)) is not None:
            stream.write(b"\n")
        else:
            stream.truncate(start)


def append_jsonl_log(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one record as a line, after cutting a torn tail a crash left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    repair_jsonl_log(path)
    with path.open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")


def rewrite_jsonl_log(path: str | os.PathLike, records: list[dict[str, Any]]) -> None:
    """Replace the log with ``records`` atomically (a crash leaves the old or the new file)."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    os.replace(temporary, path)
