"""The thread policy every command applies: --threads wins, OMP_NUM_THREADS is kept, small models get one."""

import pytest
import torch

from imreward import threads
from imreward.cli import build_parser
from imreward.threads import choose_threads, set_threads


@pytest.fixture
def clean_environment(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 8)


def test_explicit_threads_win(clean_environment, monkeypatch, model):
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert choose_threads(3, model) == 3
    with pytest.raises(ValueError, match="at least 1"):
        choose_threads(0)


def test_omp_num_threads_from_the_environment_is_kept(clean_environment, monkeypatch, model):
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert choose_threads(None, model) is None


def test_small_models_get_one_thread_large_ones_the_cores_per_process(clean_environment, monkeypatch, model):
    assert choose_threads(None, model) == 1  # the tiny model: about 1M parameters
    assert choose_threads(None, [model, model]) == 1
    monkeypatch.setattr(threads, "SMALL_MODEL_PARAMETERS", 1000)
    assert choose_threads(None, model) == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")  # torchrun: three processes share the 8 cores
    assert choose_threads(None, model) == 2
    assert choose_threads(None) == 2  # no model known: the cores per process


def test_set_threads_applies_the_choice(clean_environment, single_cpu_thread, model):
    assert set_threads(2, model) == 2 == torch.get_num_threads()
    assert set_threads(None, model) == 1 == torch.get_num_threads()


@pytest.mark.parametrize("command", [
    ["score", "a.png"], ["rank", "a.png"], ["eval", "--data", "d", "--images", "i"],
    ["benchmark", "--prompts", "p", "--generations", "g"], ["train", "--train", "a", "--val", "b", "--output", "o"],
    ["refl", "--prompts", "p", "--output-dir", "o"], ["score-dataset", "in", "-o", "x"]])
def test_every_command_takes_threads(command):
    assert build_parser().parse_args(command + ["--threads", "3"]).threads == 3
    assert build_parser().parse_args(command).threads is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(command + ["--threads", "0"])


def test_a_scorer_without_parameters_gets_the_default_for_unknown_sizes(monkeypatch):
    """A ``module:function`` scorer need not be an ``nn.Module``: it has no size to go by."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)

    class ProtocolOnlyScorer:
        def score(self, prompt, image):
            return 0.0

    assert choose_threads(None, ProtocolOnlyScorer()) == choose_threads(None, None)
    assert choose_threads(None, [ProtocolOnlyScorer(), torch.nn.Linear(2, 2)]) == 1
