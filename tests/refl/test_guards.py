"""Reward-hacking guards: monitor curves, the stop rule, the best checkpoint; the CLI on flow folders."""

from __future__ import annotations

import json

import pytest
from refl.refl_helpers import FLOW_RESOLUTION, ScriptedMonitor, flow_pipeline, flow_trainer

from imreward.cli import main
from imreward.refl.guards import DropLimit, MonitorGuard, parse_drop_limits

VALIDATION_PROMPTS = ["held out one", "held out two", "held out three"]


def test_guard_keeps_the_best_reward_before_a_drop_and_stops_on_it():
    guard = MonitorGuard.from_spec(0.2)
    assert guard.observe(0, 0.1, {"aesthetic": 5.0, "clip": 0.30})  # the start is the first best
    assert guard.observe(10, 0.4, {"aesthetic": 4.9, "clip": 0.31})
    assert not guard.observe(20, 0.3, {"aesthetic": 4.85, "clip": 0.29})  # lower reward: not the best
    assert not guard.stopped
    assert not guard.observe(30, 0.9, {"aesthetic": 4.7, "clip": 0.30})  # aesthetic fell 0.3 > 0.2
    assert guard.stopped and guard.stopped_at == 30 and "'aesthetic'" in guard.reason
    assert (guard.best_step, guard.best_reward) == (10, 0.4)
    restored = MonitorGuard.from_spec(0.2)
    restored.load_state_dict(guard.state_dict())
    assert restored == guard
    watcher = MonitorGuard()  # no limit: records references, never stops or picks a best
    assert not watcher.observe(0, 1.0, {"clip": 0.3}) and not watcher.observe(5, 2.0, {"clip": -9.0})
    assert not watcher.stopped and watcher.reference == {"clip": 0.3}


def test_limits_are_per_monitor_absolute_or_relative_to_the_start():
    guard = MonitorGuard.from_spec(["clip=2", "aesthetic=5%"], ["clip", "aesthetic", "other"])
    assert guard.limits == {"clip": DropLimit(2.0), "aesthetic": DropLimit(0.05, relative=True)}
    assert guard.limit_of("other") is None  # recorded, never stops the run
    assert guard.observe(0, 0.1, {"clip": 25.0, "aesthetic": 5.0, "other": 1.0})
    assert guard.observe(1, 0.2, {"clip": 23.5, "aesthetic": 4.8, "other": -50.0})  # 1.5 < 2 and 4% < 5%
    assert not guard.observe(2, 0.3, {"clip": 24.0, "aesthetic": 4.7, "other": 1.0})  # 6% of 5.0 > 5%
    assert guard.stopped_at == 2 and "'aesthetic'" in guard.reason and "5% of the start" in guard.reason
    fallen = MonitorGuard.from_spec({"clip": 2})
    fallen.observe(0, 0.0, {"clip": 25.0})
    fallen.observe(1, 1.0, {"clip": 22.9})
    assert fallen.stopped_at == 1
    default, named = parse_drop_limits(["10%", "clip=0.5"])
    assert default == DropLimit(0.1, relative=True) and named == {"clip": DropLimit(0.5)}
    assert parse_drop_limits(0.3) == (DropLimit(0.3), {})
    with pytest.raises(ValueError, match="not a monitor"):
        parse_drop_limits(["clp=1"], ["clip"])
    with pytest.raises(ValueError, match="percentage"):
        parse_drop_limits("a lot")
    with pytest.raises(ValueError, match="more than one limit"):
        parse_drop_limits(["1", "2"])


def test_monitor_drop_stops_training_and_keeps_the_best_weights(tmp_path):
    # The monitor starts at 1.0, dips by 25% (within its 30%), then falls by 50% at the third validation
    # (step 2); the steady one stays within its absolute limit. Both have only score_batch.
    monitor, steady = ScriptedMonitor([1.0, 0.75, 0.5]), ScriptedMonitor([3.0])
    settings = dict(max_steps=6, validation_every=1, validation_prompts=VALIDATION_PROMPTS,
                    stop_when_monitor_drops={"scripted": "30%", "steady": 0.01}, checkpoint_every=2)
    trainer = flow_trainer(tmp_path, "flux", monitors={"scripted": monitor, "steady": steady}, **settings)
    history = trainer.train()
    assert len(history) == 2 and trainer.step == 2 and trainer.guard.stopped_at == 2
    prompts, images = monitor.calls[0]
    assert prompts == VALIDATION_PROMPTS and [image.size for image in images] == [(FLOW_RESOLUTION,) * 2] * 3
    resumed = flow_trainer(tmp_path, "flux", monitors={"scripted": ScriptedMonitor([1.0]),
                                                       "steady": ScriptedMonitor([3.0])}, **settings)
    assert resumed.resume("latest") == 2 and resumed.guard == trainer.guard
    assert resumed.train() == [] and resumed.step == 2  # a stopped run stays stopped
    records = [json.loads(line) for line in (tmp_path / "validation.jsonl").read_text().splitlines()]
    assert [(r["step"], r["monitors"]["scripted"], r["monitors"]["steady"]) for r in records] == [
        (0, 1.0, 3.0), (1, 0.75, 3.0), (2, 0.5, 3.0)]
    best = max(records[:2], key=lambda record: record["mean_reward"])
    saved = json.loads((tmp_path / "best" / "best.json").read_text())
    assert saved["step"] == best["step"] and saved["mean_reward"] == pytest.approx(best["mean_reward"])
    assert (tmp_path / "best" / "transformer" / "diffusion_pytorch_model.safetensors").is_file()
    assert (tmp_path / "validation" / "curves.png").is_file()
    from PIL import Image

    pair = Image.open(tmp_path / "validation" / "before_after_step_000002.png")
    assert pair.size == (2 * FLOW_RESOLUTION + 3 * 2, 3 * FLOW_RESOLUTION + 4 * 2)  # 3 prompts x (before, after)


def test_refl_command_tunes_a_flux_folder_with_monitors_and_lora(tmp_path, capsys):
    flow_pipeline("flux").save_pretrained(tmp_path / "flux")
    (tmp_path / "prompts.txt").write_text("a cat\na dog\na red house\nheld out prompt\n")
    exit_code = main([
        "refl", "--pipeline", str(tmp_path / "flux"), "--prompts", str(tmp_path / "prompts.txt"),
        "--output-dir", str(tmp_path / "run"), "--reward", "brightness", "--resolution", str(FLOW_RESOLUTION),
        "--num-inference-steps", "3", "--method", "draft-k", "--backprop-steps", "2", "--lora-rank", "4",
        "--lora-alpha", "8",
        "--monitor", "refl.refl_helpers:dark_monitor", "--stop-when-monitor-drops", "10", "--max-steps", "2",
        "--validation-count", "1", "--validation-every", "1", "--checkpoint-every", "0", "--learning-rate", "1e-3"])
    assert exit_code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 2 and summary["stopped"] is None and summary["best_step"] in (0, 1, 2)
    assert (tmp_path / "run" / "best" / "best.json").is_file() and summary["best"] == str(tmp_path / "run" / "best")
    records = [json.loads(line) for line in (tmp_path / "run" / "validation.jsonl").read_text().splitlines()]
    for record in records:  # the dark monitor is 1 - the (single-prompt) brightness reward
        assert record["monitors"]["refl.refl_helpers:dark_monitor"] == pytest.approx(1 - record["mean_reward"],
                                                                                      abs=1e-5)
    for folder in ("final", "best"):  # both exports carry the rank and alpha, for diffusers and for peft
        from safetensors import safe_open

        with safe_open(str(tmp_path / "run" / folder / "pytorch_lora_weights.safetensors"), "pt") as weights:
            adapter = json.loads(weights.metadata()["lora_adapter_metadata"])  # diffusers' "component.field"
        peft_config = json.loads((tmp_path / "run" / folder / "peft" / "adapter_config.json").read_text())
        assert (adapter["transformer.r"], adapter["transformer.lora_alpha"]) == (4, 8)
        assert (peft_config["r"], peft_config["lora_alpha"]) == (4, 8)


def test_refl_command_rejects_unsupported_folders_and_lonely_stop_rules(tmp_path):
    (tmp_path / "prompts.txt").write_text("a\nb\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyPipeline"}))
    common = ["refl", "--prompts", str(tmp_path / "prompts.txt"), "--output-dir", str(tmp_path / "out"),
              "--reward", "brightness", "--validation-count", "1"]
    with pytest.raises(SystemExit, match="KandinskyPipeline.*not supported"):
        main(common + ["--pipeline", str(tmp_path / "other")])
    with pytest.raises(SystemExit, match="needs at least one monitor"):
        main(common + ["--random-pipeline", "tiny-flux", "--stop-when-monitor-drops", "0.1"])


@pytest.mark.parametrize("switch_off", [["--validation-count", "0"], ["--validation-every", "0"]])
def test_monitors_without_validations_are_refused(tmp_path, switch_off):
    (tmp_path / "prompts.txt").write_text("a\nb\nc\n")
    common = ["refl", "--prompts", str(tmp_path / "prompts.txt"), "--output-dir", str(tmp_path / "out"),
              "--reward", "brightness", "--random-pipeline", "tiny-flux", "--validation-count", "1",
              "--monitor", "refl.refl_helpers:dark_monitor"]
    with pytest.raises(SystemExit, match="act only at validations, which are off.*--validation-every"):
        main(common + ["--stop-when-monitor-drops", "0.1"] + switch_off)
    with pytest.raises(SystemExit, match="monitors act only at validations"):
        main(common + switch_off)
    assert not (tmp_path / "out").exists()
