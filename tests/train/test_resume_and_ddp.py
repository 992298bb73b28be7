"""A run killed with SIGKILL resumes to the same end as an uninterrupted run; two gloo processes under
torchrun take the same steps as one process with the same global batch."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from imreward.hub import read_state_dict
from imreward.train import TrainConfig, train
from imreward.train.checkpoint import CHECKPOINT_FILE, load_training_state
from imreward.train.metrics_log import METRICS_FILE, read_metrics

from .conftest import tiny_run

KILL_AT_STEP = 10  # in the second epoch (8 steps each), one step after the checkpoint of step 9

# Runs the trainer, announcing and then stalling at step KILL_AT_STEP + 1 so the kill lands mid-epoch.
KILLED_RUN = textwrap.dedent("""
    import pathlib, sys, time, torch
    torch.set_num_threads(1)
    from imreward.train import TrainConfig
    from imreward.train import trainer
    settings, marker, kill_at = sys.argv[1], pathlib.Path(sys.argv[2]), int(sys.argv[3])
    original_step = trainer.Trainer._train_step
    def stalling_step(self, batches):
        if self.progress["global_step"] == kill_at:
            marker.write_text("ready")
            time.sleep(600)
        return original_step(self, batches)
    trainer.Trainer._train_step = stalling_step
    trainer.train(TrainConfig(**eval(settings)))
""")


def _subprocess_env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "PYTHONUNBUFFERED": "1"}


def _settings(data, output, config_file):
    return dict(train_data=str(data), val_data=str(data), test_data=str(data), output_dir=str(output),
                model_config=str(config_file), batch_size=2, epochs=2, eval_every=4, checkpoint_every=3,
                num_workers=1, lr=1e-3, device="cpu", progress=False, tensorboard=False, seed=3)


def _wait_for(path, process, timeout=240.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"training subprocess exited early: {process.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "training subprocess did not reach the kill point"
        time.sleep(0.2)


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(synthetic_data, tiny_config_file, tmp_path):
    killed, marker = tmp_path / "killed", tmp_path / "marker"
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, repr(_settings(synthetic_data, killed, tiny_config_file)), str(marker),
         str(KILL_AT_STEP)], env=_subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(marker, process)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert load_training_state(killed / CHECKPOINT_FILE)["progress"]["global_step"] == 9
    assert max(r["step"] for r in read_metrics(killed)) == KILL_AT_STEP  # steps past the checkpoint were logged
    assert not (killed / "result.json").exists()
    with (killed / METRICS_FILE).open("a") as log:  # as if killed while writing a line
        log.write('{"split": "train", "step": 11, "lo')
    (killed / "best").rename(killed / "best.old")  # as if killed between the two renames of best/

    resumed = train(TrainConfig(**_settings(synthetic_data, killed, tiny_config_file), resume=True))
    straight = train(TrainConfig(**_settings(synthetic_data, tmp_path / "straight", tiny_config_file)))

    assert resumed.global_step == straight.global_step == 16
    assert (resumed.best_step, resumed.best_val, resumed.final_val, resumed.test) == \
        (straight.best_step, straight.best_val, straight.final_val, straight.test)
    assert read_metrics(killed) == read_metrics(tmp_path / "straight")
    for name in ("final", "best"):
        a = read_state_dict(killed / name / "model.safetensors")
        b = read_state_dict(tmp_path / "straight" / name / "model.safetensors")
        assert all(torch.equal(a[key], b[key]) for key in a), name


def test_two_gloo_processes_match_one_process(synthetic_data, deterministic_config_file, tmp_path):
    arguments = ["train", "--train", str(synthetic_data), "--val", str(synthetic_data), "--model-config",
                 str(deterministic_config_file), "--batch-size", "4", "--max-steps", "3", "--lr", "1e-3",
                 "--seed", "1", "--num-workers", "0", "--device", "cpu", "--quiet", "--no-tensorboard"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "imreward.cli", *arguments, "--output", str(tmp_path / "ddp")]
    finished = subprocess.run(command, env=_subprocess_env(), capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    summaries = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["steps"] == 3  # only rank 0 prints the summary
    single = train(tiny_run(synthetic_data, tmp_path / "single", deterministic_config_file, max_steps=3, seed=1))

    ddp_result = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert ddp_result["global_step"] == single.global_step == 3
    assert ddp_result["final_val"]["pairs"] == single.final_val["pairs"]
    assert ddp_result["final_val"]["loss"] == pytest.approx(single.final_val["loss"], rel=1e-4)
    ddp_weights = read_state_dict(tmp_path / "ddp" / "final" / "model.safetensors")
    single_weights = read_state_dict(single.final_dir / "model.safetensors")
    # The head is linear, so its biases shift every reward alike: a pairwise loss gives them a zero gradient,
    # which Adam turns from float noise into arbitrary steps. Every other tensor must match.
    shift_only = {key for key in single_weights if key.startswith("mlp.") and key.endswith(".bias")}
    for key in set(single_weights) - shift_only:
        torch.testing.assert_close(ddp_weights[key], single_weights[key], rtol=1e-4, atol=1e-5, msg=key)
    ddp_train = [r for r in read_metrics(tmp_path / "ddp") if r["split"] == "train"]
    single_train = [r for r in read_metrics(tmp_path / "single") if r["split"] == "train"]
    assert [r["pairs"] for r in ddp_train] == [r["pairs"] for r in single_train]
    assert [r["loss"] for r in ddp_train] == pytest.approx([r["loss"] for r in single_train], rel=1e-4)
