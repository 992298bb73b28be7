"""Files a crash can tear: the metrics log's last line, and the swap of best/ (two renames)."""

from pathlib import Path

import pytest

from imreward.jsonl_log import append_jsonl_log, read_jsonl_log, repair_jsonl_log
from imreward.train.checkpoint import recover_folder, replace_folder


def write_version(text: str):
    def write(folder: Path) -> None:
        folder.mkdir()
        (folder / "model.txt").write_text(text)
    return write


def test_a_torn_last_line_is_dropped_and_cut_before_the_next_append(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n{"split": "train", "st')  # killed mid-write
    assert read_jsonl_log(log) == [{"step": 1}, {"step": 2}]
    append_jsonl_log(log, {"step": 3})
    assert log.read_text() == '{"step": 1}\n{"step": 2}\n{"step": 3}\n'
    log.write_text('{"step": 1}\n{"step": 2}')  # complete, only its newline lost: kept
    repair_jsonl_log(log)
    assert read_jsonl_log(log) == [{"step": 1}, {"step": 2}] and log.read_text().endswith("}\n")
    log.write_text('{"step": 1}\nnot json\n{"step": 3}\n')  # a broken line in the middle is no crash's doing
    with pytest.raises(ValueError, match="metrics.jsonl:2: not a JSON object"):
        read_jsonl_log(log)
    log.write_text("x" * 200_000)  # one torn line longer than the chunk read from the end
    repair_jsonl_log(log)
    assert log.read_text() == "" and read_jsonl_log(tmp_path / "missing.jsonl") == []


def test_a_crash_between_the_two_renames_of_a_folder_swap_is_recovered(tmp_path):
    best = tmp_path / "best"
    replace_folder(best, write_version("first"))
    replace_folder(best, write_version("second"))
    assert (best / "model.txt").read_text() == "second" and sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    best.rename(tmp_path / "best.old")  # the state a crash after the first rename leaves
    write_version("third")(tmp_path / "best.tmp")
    recover_folder(best)
    assert (best / "model.txt").read_text() == "second"
    best.rename(tmp_path / "best.old")  # crashed there again; the next save fails (a full disk)

    def failing_write(folder: Path) -> None:
        folder.mkdir()
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_folder(best, failing_write)
    assert (best / "model.txt").read_text() == "second"  # put back first, not deleted as a leftover
