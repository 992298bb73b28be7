import csv
import json

import pytest
from PIL import Image

from imreward.cli import main


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, model):
    folder = tmp_path_factory.mktemp("model") / "tiny"
    model.save_pretrained(folder)
    return folder


def test_score_prints_one_json_line_per_image(saved_model, image_files, capsys, model):
    assert main(["score", "--model", str(saved_model), "--device", "cpu", "--prompt", "a cat",
                 *map(str, image_files)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["image"] for row in rows] == list(map(str, image_files))
    expected = model.score("a cat", image_files)
    assert [row["score"] for row in rows] == pytest.approx(expected, abs=1e-6)


def test_rank_and_csv_output(saved_model, image_files, tmp_path, model):
    output = tmp_path / "ranks.csv"
    assert main(["rank", "--model", str(saved_model), "--prompt", "a dog", "--format", "csv", "-o", str(output),
                 *map(str, image_files)]) == 0
    rows = list(csv.DictReader(output.open()))
    ranking, _ = model.inference_rank("a dog", image_files)
    assert [int(row["rank"]) for row in rows] == ranking


def test_csv_cells_that_a_spreadsheet_would_run_are_escaped(saved_model, image_files, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    prompts = ['=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "@SUM(A1)", "a plain -prompt"]
    pairs.write_text("".join(json.dumps({"prompt": p, "image": str(image_files[0])}) + "\n" for p in prompts))
    output = tmp_path / "scores.csv"
    assert main(["score", "--model", str(saved_model), "--input", str(pairs), "--format", "csv", "-o", str(output),
                 "-q"]) == 0
    rows = list(csv.DictReader(output.open()))
    assert [row["prompt"] for row in rows] == ["'" + p for p in prompts[:3]] + ["a plain -prompt"]
    assert all(float(row["score"]) == float(row["score"]) for row in rows)  # scores stay numbers, negative ones too


def test_jsonl_input_with_a_bad_image_scores_the_rest_and_fails(saved_model, image_files, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG garbage")
    pairs = tmp_path / "pairs.jsonl"
    items = [(f"prompt {i}", str(path)) for i, path in enumerate([image_files[0], bad, image_files[1]])]
    pairs.write_text("".join(json.dumps({"prompt": p, "image": i}) + "\n" for p, i in items))
    assert main(["score", "--model", str(saved_model), "--input", str(pairs), "-q"]) == 1
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [row["score"] is None for row in rows] == [False, True, False]
    assert "broken.png" in rows[1]["error"] and "broken.png" in captured.err
    assert "1 of 3 images failed" in captured.err


def test_missing_inputs_are_a_usage_error(saved_model):
    with pytest.raises(SystemExit, match="give --prompt and images"):
        main(["score", "--model", str(saved_model)])


def test_a_missing_model_is_reported_without_a_traceback(tmp_path, capsys, image_files):
    assert main(["score", "--model", str(tmp_path / "nowhere.pt"), "--prompt", "x", str(image_files[0])]) == 2
    assert "imreward: error:" in capsys.readouterr().err


def test_models_lists_each_scorer_with_source_size_licence_and_training_data(capsys, monkeypatch):
    from imreward import hub

    monkeypatch.setitem(hub._SCORERS, "test-scorer", hub.ScorerInfo(
        "tests:unused", source="hf://someone/test-scorer/weights.safetensors", licence="CC-BY-NC-4.0",
        size="ViT-B/32, 151M", trained_on="10k made-up comparisons"))
    monkeypatch.setitem(hub._SCORERS, "bare", hub.ScorerInfo("tests:unused"))
    assert main(["models", "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed["test-scorer"] == {"name": "test-scorer", "source": "hf://someone/test-scorer/weights.safetensors",
                                     "licence": "CC-BY-NC-4.0", "size": "ViT-B/32, 151M",
                                     "trained_on": "10k made-up comparisons"}
    assert listed["ImageReward-v1.0"]["licence"] == "Apache-2.0" and listed["CLIP"]["licence"] == "MIT"
    assert set(listed) >= {"ImageReward-v1.0", "CLIP", "BLIP", "Aesthetic", "bare"}

    monkeypatch.setenv("COLUMNS", "200")
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "LICENCE", "SIZE", "TRAINED", "ON", "SOURCE"]
    row = next(line for line in lines if line.startswith("test-scorer"))
    assert row.split("  ")[0] == "test-scorer" and "CC-BY-NC-4.0" in row and "10k made-up comparisons" in row
    assert next(line for line in lines if line.startswith("bare")).split() == ["bare", "-", "-", "-", "-"]


def test_model_table_wraps_long_cells_to_the_width():
    from imreward.cli import format_table

    rows = [{"name": "m", "text": "one two three four five six"}]
    table = format_table(rows, (("name", "NAME"), ("text", "TEXT")), ("text",), width=20)
    assert table.splitlines() == ["NAME  TEXT", "m     one two three", "      four five six"]


def test_score_accepts_web_formats_unless_widened(saved_model, image_files, tmp_path, capsys):
    tiff = tmp_path / "d.tiff"
    Image.open(image_files[0]).save(tiff)
    arguments = ["score", "--model", str(saved_model), "--device", "cpu", "--prompt", "a cat", str(tiff)]
    assert main(arguments) == 1
    captured = capsys.readouterr()
    assert "d.tiff: image format TIFF is not accepted" in json.loads(captured.out)["error"]
    assert main([*arguments, "--image-formats", "png,jpeg,webp,tiff"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] is not None
    with pytest.raises(SystemExit, match="--image-formats: image format EPS is never accepted"):
        main([*arguments, "--image-formats", "png,eps"])
