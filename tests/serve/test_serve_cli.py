"""``imreward serve`` options reach torch, the app and uvicorn (uvicorn.run replaced: no server starts)."""

from __future__ import annotations

import pytest
import torch
import uvicorn

from imreward.cli import main as cli_main
from imreward.cli import parse_model_spec
from imreward.serve.connections import FILE_DESCRIPTOR_RESERVE, fit_file_limit
from imreward.serve.connection_limits import ConnectionLimits


@pytest.fixture
def captured_run(monkeypatch) -> dict:
    """What ``uvicorn.run`` was called with, and torch's thread count at that moment."""
    captured = {}

    def fake_run(app, **options) -> None:
        captured.update(app=app, options=options, threads=torch.get_num_threads())

    threads = torch.get_num_threads()
    monkeypatch.setattr(uvicorn, "run", fake_run)
    yield captured
    torch.set_num_threads(threads)


def test_threads_limits_and_models_are_passed_on(captured_run, model_dirs):
    wanted_threads = 1 if torch.get_num_threads() > 1 else 2
    assert cli_main(["serve", "--model", f"first={model_dirs['tiny']}", "--model", str(model_dirs["other"]),
                     "--device", "cpu", "--threads", str(wanted_threads), "--limit-concurrency", "5",
                     "--max-queued-images", "3", "--port", "8123", "--keep-alive-timeout", "2",
                     "--header-timeout", "3", "--body-timeout", "4", "--max-connections", "50"]) == 0
    assert captured_run["threads"] == wanted_threads
    assert captured_run["options"]["limit_concurrency"] == 5
    assert captured_run["options"]["timeout_keep_alive"] == 2
    protocol_settings = captured_run["options"]["http"].limits
    assert (protocol_settings.header_timeout_s, protocol_settings.body_timeout_s) == (3, 4)
    assert protocol_settings.max_connections == 50
    assert captured_run["options"]["port"] == 8123 and captured_run["options"]["host"] == "127.0.0.1"
    service = captured_run["app"].state.service
    assert service.settings.max_queued_images == 3
    assert list(service.models) == ["first", model_dirs["other"].name]


def test_defaults_leave_threads_and_limits_alone(captured_run, model_dirs):
    threads = torch.get_num_threads()
    assert cli_main(["serve", "--model", str(model_dirs["tiny"]), "--device", "cpu"]) == 0
    assert captured_run["threads"] == threads
    assert captured_run["options"]["limit_concurrency"] is None
    assert captured_run["app"].state.service.settings.max_queued_images == 512


def test_bad_thread_count_and_duplicate_names_are_refused(captured_run, model_dirs):
    with pytest.raises(SystemExit, match="--threads must be at least 1"):
        cli_main(["serve", "--model", str(model_dirs["tiny"]), "--threads", "0"])
    with pytest.raises(SystemExit, match="two models are named 'x'"):
        cli_main(["serve", "--model", f"x={model_dirs['tiny']}", "--model", f"x={model_dirs['other']}",
                  "--device", "cpu"])
    with pytest.raises(SystemExit, match="header_timeout_s must be positive"):
        cli_main(["serve", "--model", str(model_dirs["tiny"]), "--device", "cpu", "--header-timeout", "0"])
    assert captured_run == {}


@pytest.mark.parametrize("token", ["", " s3cret", "s3cret\n", "two words"])
def test_an_empty_or_spaced_token_is_refused_at_start_up(captured_run, model_dirs, monkeypatch, token):
    monkeypatch.setenv("IMREWARD_SERVE_TOKEN", token)
    with pytest.raises(SystemExit, match="token must not be empty or contain spaces"):
        cli_main(["serve", "--model", str(model_dirs["tiny"]), "--device", "cpu"])
    assert captured_run == {}


def test_max_connections_fit_the_open_file_limit():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert fit_file_limit(ConnectionLimits(max_connections=10)) == 10
    if hard != resource.RLIM_INFINITY:
        assert fit_file_limit(ConnectionLimits(max_connections=10 * hard)) == hard - FILE_DESCRIPTOR_RESERVE
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard  # raised as far as allowed


def test_model_spec_names():
    assert parse_model_spec("fast=/models/a") == ("fast", "/models/a")
    assert parse_model_spec("/models/b/") == ("b", "/models/b/")
    assert parse_model_spec("ImageReward-v1.0") == ("ImageReward-v1.0", "ImageReward-v1.0")
