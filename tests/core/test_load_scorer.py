"""``imreward.load_scorer`` as every command resolves a scorer: registered names, paths, ``module:function``
factories defined in a user's module, and the errors that list what exists."""

import json
import textwrap

import pytest
import torch

import imreward
from imreward.cli import main
from imreward.errors import ScorerOptionError, UnknownScorerError

# A user's module: a factory returning a non-ImageReward scorer (mean brightness of the image).
USER_MODULE = textwrap.dedent('''
    import torch
    from imreward.scoring import RewardScorer

    class Brightness(RewardScorer):
        image_mean = (0.0, 0.0, 0.0)
        image_std = (1.0, 1.0, 1.0)
        image_size = 16

        def __init__(self, scale):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(float(scale)))

        @property
        def device(self):
            return self.scale.device

        @property
        def compute_dtype(self):
            return self.scale.dtype

        def encode_prompts(self, prompts):
            return {}

        def forward(self, pixel_values, **text):
            return self.scale * pixel_values.float().mean(dim=(1, 2, 3))

    calls = []

    def make_brightness(device=None, download_root=None, scale=2.0):
        calls.append({"device": device, "download_root": download_root, "scale": scale})
        return Brightness(scale).to(device or "cpu").eval()

    def needs_nothing():
        return Brightness(1.0).eval()
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    folder = tmp_path / "user_code"
    folder.mkdir()
    (folder / "my_scorers.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    import my_scorers

    yield my_scorers
    monkeypatch.delitem(__import__("sys").modules, "my_scorers")


def test_a_factory_named_module_colon_function_builds_the_scorer(user_module):
    scorer = imreward.load_scorer("my_scorers:make_brightness", device="cpu", download_root="cache", scale=3.0)
    assert user_module.calls == [{"device": "cpu", "download_root": "cache", "scale": 3.0}]
    white = torch.ones(1, 3, 16, 16)
    assert scorer.score_tensor(white, "any").item() == pytest.approx(3.0)


def test_options_a_factory_does_not_take_are_dropped_when_unset_and_refused_when_set(user_module):
    assert imreward.load_scorer("my_scorers:needs_nothing").score_tensor(torch.ones(1, 3, 16, 16), "x").item() == 1
    with pytest.raises(ScorerOptionError, match="my_scorers:needs_nothing.*device"):
        imreward.load_scorer("my_scorers:needs_nothing", device="cpu")


def test_unknown_scorers_name_the_registered_ones():
    with pytest.raises(UnknownScorerError) as caught:
        imreward.load_scorer("no-such-scorer")
    message = str(caught.value)
    assert message.startswith("unknown scorer 'no-such-scorer'")
    assert all(name in message for name in imreward.available_scores())
    with pytest.raises(UnknownScorerError, match="could not be imported.*PYTHONPATH"):
        imreward.load_scorer("no_such_module_here:factory")


def test_score_command_uses_a_factory_scorer(user_module, image_files, capsys):
    assert main(["score", "--model", "my_scorers:make_brightness", "--device", "cpu", "--prompt", "a cat",
                 "--threads", "1", *map(str, image_files)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 and all(0 < row["score"] < 2 for row in rows)
    assert len({row["score"] for row in rows}) == 3


def test_score_command_errors_are_one_line(user_module, image_files, capsys):
    assert main(["score", "--model", "nothing-like-this", "--prompt", "a", str(image_files[0])]) == 2
    error = capsys.readouterr().err
    assert error.startswith("imreward: error: unknown scorer 'nothing-like-this'") and "CLIP" in error
    assert main(["score", "--model", "my_scorers:make_brightness", "--med-config", "m.json", "--prompt", "a",
                 str(image_files[0])]) == 2
    assert "does not take the option(s) med_config" in capsys.readouterr().err


def test_score_command_keeps_the_imagereward_options(model, image_files, tmp_path, capsys):
    model.save_pretrained(tmp_path / "tiny")
    with pytest.warns(UserWarning, match="max_length 40 exceeds"):  # the option reached the model
        assert main(["score", "--model", str(tmp_path / "tiny"), "--max-length", "40", "--dtype", "float32",
                     "--prompt", "a cat", str(image_files[0])]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["score"] == pytest.approx(model.score("a cat", image_files[0]), abs=1e-6)
