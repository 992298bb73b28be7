import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from imreward.annotate import labels
from imreward.annotate.exporter import dense_ranks, export_dataset
from imreward.data.loading import load_preference_data

from annotate.annotate_helpers import PROMPTS, assignment_id_of, complete_assignment

DB_COLUMNS = [
    "image_path", "prompt_id", "prompt", "classification", "image_amount_in_total", "rank",
    "overall_rating", "image_text_alignment_rating", "fidelity_rating", "harmlessness_rating",
    "issue_distorted_body", "issue_distorted_face", "issue_artifacts", "issue_text_errors",
    "issue_unsafe_content", "annotator_count",
]


def export(platform, out_dir):
    with platform.sessions() as session:
        return export_dataset(session, platform.media_root, out_dir, split="train")


def test_dense_ranks_share_ranks_for_equal_scores():
    assert dense_ranks([2.0, 1.0, 2.0, 3.5]) == [2, 1, 2, 3]


def test_single_annotator_labels_are_exported_exactly(platform, tmp_path):
    platform.assign(["p1", "p2"], ["alice"])
    complete_assignment(
        platform, "alice", "p1", "Animals", ranks=[2, 1, 2], overall=[4, 6, 4],
        issues={0: ["distorted_face", "text_errors"], 2: ["unsafe_content"]},
        alignment=3, fidelity=5, harmlessness=2,
    )  # p2 stays unfinished and must not be exported
    out = tmp_path / "export"
    report = export(platform, out)

    assert (report.exported_prompts, report.dropped_prompts, report.images) == (1, 0, 3)
    records = json.loads((out / "train.json").read_text())
    assert records == [{
        "id": "p1",
        "prompt": PROMPTS["p1"],
        "generations": ["images/1/0.png", "images/1/1.png", "images/1/2.png"],
        "ranking": [2, 1, 2],
    }]
    for relative in records[0]["generations"]:
        media_copy = platform.media_root / "prompts" / "1" / Path(relative).name
        assert (out / relative).read_bytes() == media_copy.read_bytes()

    table = pq.read_table(out / "metadata-train.parquet")
    assert table.column_names == DB_COLUMNS
    rows = table.to_pylist()
    common = {
        "prompt_id": "p1", "prompt": PROMPTS["p1"], "classification": "Animals",
        "image_amount_in_total": 3, "image_text_alignment_rating": 3.0, "fidelity_rating": 5.0,
        "harmlessness_rating": 2.0, "issue_distorted_body": False, "issue_artifacts": False,
        "annotator_count": 1,
    }
    assert rows == [
        {**common, "image_path": "images/1/0.png", "rank": 2, "overall_rating": 4.0,
         "issue_distorted_face": True, "issue_text_errors": True, "issue_unsafe_content": False},
        {**common, "image_path": "images/1/1.png", "rank": 1, "overall_rating": 6.0,
         "issue_distorted_face": False, "issue_text_errors": False, "issue_unsafe_content": False},
        {**common, "image_path": "images/1/2.png", "rank": 2, "overall_rating": 4.0,
         "issue_distorted_face": False, "issue_text_errors": False, "issue_unsafe_content": True},
    ]


def test_several_annotators_are_combined(platform, tmp_path):
    platform.assign(["p1"], ["alice", "bob", "carol"])
    complete_assignment(platform, "alice", "p1", "Animals", [1, 2, 3], [7, 5, 3], issues={1: ["artifacts"]})
    complete_assignment(platform, "bob", "p1", "Animals", [1, 3, 2], [6, 2, 4])
    complete_assignment(platform, "carol", "p1", "Arts", [2, 1, 3], [5, 6, 1])
    export(platform, tmp_path / "out")

    rows = pq.read_table(tmp_path / "out" / "metadata-train.parquet").to_pylist()
    # Mean ranks 4/3, 2, 8/3 order the images 1, 2, 3; ratings are averaged.
    assert [row["rank"] for row in rows] == [1, 2, 3]
    assert [row["overall_rating"] for row in rows] == [6.0, pytest.approx(13 / 3), pytest.approx(8 / 3)]
    assert {row["classification"] for row in rows} == {"Animals"}
    assert [row["issue_artifacts"] for row in rows] == [False, True, False]
    assert {row["annotator_count"] for row in rows} == {3}


def test_prompts_flagged_by_half_the_annotators_are_dropped(platform, tmp_path):
    platform.assign(["p2"], ["alice", "bob"])
    complete_assignment(platform, "alice", "p2", "Arts", [1, 2, 3], [7, 5, 3])
    bob = platform.user("bob")
    with platform.sessions() as session:
        assignment = labels.owned_assignment(session, assignment_id_of(session, bob.id, "p2"), bob)
        labels.save_prompt_label(session, assignment, "harmful", True)
        session.expire_all()
        labels.complete(session, labels.owned_assignment(session, assignment.id, bob))
    report = export(platform, tmp_path / "out")
    assert (report.exported_prompts, report.dropped_prompts) == (0, 1)
    assert json.loads((tmp_path / "out" / "train.json").read_text()) == []


@pytest.fixture
def exported_pair_of_prompts(platform, tmp_path):
    platform.assign(["p1", "p2"], ["alice"])
    complete_assignment(platform, "alice", "p1", "Animals", [1, 2, 2], [7, 5, 5])
    complete_assignment(platform, "alice", "p2", "Arts", [3, 1, 2], [2, 7, 5])
    out = tmp_path / "export"
    export(platform, out)
    return out


@pytest.mark.parametrize("data_file", ["train.json", "."], ids=["training-json", "imagerewarddb"])
def test_trainer_reader_loads_the_export(exported_pair_of_prompts, data_file):
    records, _ = load_preference_data(exported_pair_of_prompts / data_file, split="train")
    by_id = {record.prompt_id: record for record in records}
    assert sorted(by_id) == ["p1", "p2"]
    assert by_id["p1"].prompt == PROMPTS["p1"] and by_id["p1"].ranks == (1, 2, 2)
    assert by_id["p2"].ranks == (3, 1, 2)
    assert all(Path(image.path).is_file() for record in records for image in record.images)


def test_exported_set_trains_without_edits(exported_pair_of_prompts, tmp_path):
    """A tiny run of `imreward train`: the training JSON to train, the ImageRewardDB table to validate."""
    import imreward
    from imreward.cli import main
    from imreward.testing import tiny_config

    config = tmp_path / "tiny.json"
    tiny_config(image_size=32).save(config)
    run = tmp_path / "run"
    main([
        "train", "--train", str(exported_pair_of_prompts / "train.json"),
        "--val", str(exported_pair_of_prompts / "metadata-train.parquet"),
        "--output", str(run), "--model-config", str(config), "--max-steps", "2", "--batch-size", "2",
        "--num-workers", "0", "--device", "cpu", "--no-tensorboard", "--quiet",
    ])
    assert (run / "metrics.jsonl").read_text().strip()
    trained = imreward.load(run / "best", device="cpu")
    records, _ = load_preference_data(exported_pair_of_prompts / "train.json", split="train")
    assert len(trained.score(PROMPTS["p1"], [image.path for image in records[0].images])) == 3
