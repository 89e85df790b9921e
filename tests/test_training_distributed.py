"""A real two-process data-parallel run on the CPU (gloo) through ``accelerate launch``."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from cogfun.data.toy import write_toy_dataset
from cogfun.models.presets import build_transformer
from cogfun.training.trainer import parameter_checksum

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_process_run_keeps_ranks_equal_on_disjoint_batches(tmp_path):
    write_toy_dataset(tmp_path / "data", 8, sizes=((32, 32, 9),), seed=0)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(dict(
        kind="transformer", name="ddp", run_name="run", output_dir=str(tmp_path / "runs"),
        metadata=str(tmp_path / "data" / "metadata.json"), stages=[[0, 12]], base_sizes=[32], max_frames=9,
        num_ratios=3, min_ratio=0.5, max_ratio=2.0, batch_size=1, max_steps=3, checkpointing_steps=3,
        learning_rate=1e-3, max_grad_norm=1.0, record_batches=True, num_threads=1,
    )))
    launcher = Path(sys.executable).with_name("accelerate")
    command = [
        str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1",
        "--main_process_port", str(_free_port()), "-m", "cogfun.training.trainer", str(config_file),
    ]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    run_dir = tmp_path / "runs" / "ddp" / "run"
    assert "2 process(es)" in done.stderr

    # Both ranks end with the same parameters (and they moved from the initialisation).
    finals = [json.loads((run_dir / f"final_state_rank{r}.json").read_text()) for r in (0, 1)]
    assert finals[0]["sha256"] == finals[1]["sha256"] and finals[0]["global_step"] == 3
    assert finals[0]["sha256"] != parameter_checksum(build_transformer("tiny", meta=False, seed=0))["sha256"]

    # The sampler gave each rank its own batches.
    seen = [[tuple(b["index"]) for b in _jsonl(run_dir / f"batches_rank{r}.jsonl")] for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 3
    flat = [i for rank in seen for batch in rank for i in batch]
    assert len(flat) == len(set(flat)) == 6  # disjoint across ranks and steps (one epoch of 8 clips)

    # Metrics count both ranks' tokens; the checkpoint holds one RNG file per rank.
    metrics = _jsonl(run_dir / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert all(m["tokens"] == 2 * 12 for m in metrics)
    checkpoint = run_dir / "checkpoints" / "checkpoint-000003"
    assert (checkpoint / "rng_rank0.pt").is_file() and (checkpoint / "rng_rank1.pt").is_file()
    assert json.loads((checkpoint / "training_state.json").read_text())["world_size"] == 2
    assert (run_dir / "model" / "model_index.json").is_file()
