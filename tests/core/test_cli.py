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
