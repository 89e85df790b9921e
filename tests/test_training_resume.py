"""A run killed by SIGKILL and resumed gives the losses of an uninterrupted run, step for step."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from cogfun.data.toy import write_toy_dataset
from cogfun.training.config import load_config
from cogfun.training.trainer import train

REPO = Path(__file__).resolve().parents[1]


def _losses(run_dir):
    return {r["step"]: r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def test_sigkilled_run_resumes_with_identical_losses(tmp_path):
    write_toy_dataset(tmp_path / "data", 6, sizes=((32, 32, 9), (32, 64, 9)), seed=0)
    config_file = tmp_path / "config.yaml"
    # Everything that must be restored is on: two stages, gradient accumulation, a warm-up +
    # cosine LR schedule, EMA, noise augmentation, text dropout, random clip starts.
    config_file.write_text(yaml.safe_dump(dict(
        kind="transformer", name="resume", output_dir=str(tmp_path / "runs"),
        metadata=str(tmp_path / "data" / "metadata.json"),
        stages=[[0, 12], [6, 20]], base_sizes=[32], max_frames=9, num_ratios=3, min_ratio=0.5, max_ratio=2.0,
        batch_size=1, gradient_accumulation_steps=2, max_steps=12, checkpointing_steps=4, learning_rate=1e-3,
        lr_scheduler="cosine", lr_warmup_steps=3, use_ema=True, ema_decay=0.9, noise_aug=True, text_dropout=0.3,
        max_grad_norm=1.0, cpu=True, num_threads=1,
    )))

    # 1. The uninterrupted run, in this process.
    run_a = train(load_config(config_file, ["run_name=a"]))

    # 2. The same run in a subprocess, killed with SIGKILL once checkpoint 4 is complete.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    run_b = tmp_path / "runs" / "resume" / "b"
    command = [sys.executable, "-m", "cogfun.training.trainer", str(config_file), "--set", "run_name=b"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (run_b / "checkpoints" / "checkpoint-000004" / "COMPLETE").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "checkpoint 4 never appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_b / "model").exists()  # it really died mid-run
    killed_at = max(_losses(run_b))
    assert 4 <= killed_at < 12

    # 3. Resume through the command module.
    resume = [sys.executable, "-m", "cogfun.training.command", str(config_file), "--set", "run_name=b", "--resume"]
    done = subprocess.run(resume, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from checkpoint-0000" in done.stderr

    losses_a, losses_b = _losses(run_a), _losses(run_b)
    assert sorted(losses_b) == list(range(1, 13))  # every step logged once
    for step in range(1, 13):
        assert abs(losses_a[step] - losses_b[step]) <= 1e-6, (step, losses_a[step], losses_b[step])
    # the final weights (raw and EMA) are the same too
    final_a = json.loads((run_a / "final_state_rank0.json").read_text())
    final_b = json.loads((run_b / "final_state_rank0.json").read_text())
    assert final_a["sha256"] == final_b["sha256"]
    ema_a = load_file(run_a / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    ema_b = load_file(run_b / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
