"""Prompt files and image-caption pairs."""

from __future__ import annotations

import json

import pytest
import torch

from imreward.refl.data import CaptionedImages, load_prompts


def test_prompts_from_refl_style_json(tmp_path):
    path = tmp_path / "refl_data.json"
    path.write_text(json.dumps([{"text": " a cat ", "image": "000044-0048"}, {"prompt": "a dog"}, "a bird"]))
    assert load_prompts(path) == ["a cat", "a dog", "a bird"]


def test_prompts_from_jsonl_and_text(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"caption": "one"}\n\n{"text": "two"}\n')
    (tmp_path / "p.txt").write_text("first prompt\n\n  second prompt  \n")
    assert load_prompts(tmp_path / "p.jsonl") == ["one", "two"]
    assert load_prompts(tmp_path / "p.txt") == ["first prompt", "second prompt"]


def test_bad_prompt_files_raise(tmp_path):
    (tmp_path / "no_text.json").write_text(json.dumps([{"image": "x"}]))
    (tmp_path / "empty.txt").write_text("\n \n")
    (tmp_path / "object.json").write_text("{}")
    with pytest.raises(ValueError, match=r"no_text.json\[0\]"):
        load_prompts(tmp_path / "no_text.json")
    with pytest.raises(ValueError, match="no prompts"):
        load_prompts(tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="JSON list"):
        load_prompts(tmp_path / "object.json")


def test_captioned_images_scale_pixels_to_minus_one_one(captioned_images):
    data = CaptionedImages(captioned_images, resolution=8)
    assert len(data) == 3
    pixels, caption = data[0]
    assert caption == "a plain colour number 0"
    assert pixels.shape == (3, 8, 8)
    torch.testing.assert_close(pixels[:, 4, 4], torch.tensor([1.0, -1.0, -1.0]))


def test_captioned_images_need_image_paths(tmp_path):
    (tmp_path / "pairs.json").write_text(json.dumps([{"text": "no image"}]))
    with pytest.raises(ValueError, match="image"):
        CaptionedImages(tmp_path / "pairs.json", resolution=8)
