"""Tests for cogfun.training.checkpoint: RNG states, checkpoints, keep-last, run folders, layout."""

import json
import random

import numpy as np
import pytest
import torch

from cogfun.models.presets import build_scheduler, build_transformer, build_vae
from cogfun.models.text_encoder import build_tiny_t5_encoder, build_toy_tokenizer
from cogfun.training.checkpoint import (
    checkpoint_path,
    create_run_dir,
    finalize_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_rng_state,
    save_checkpoint,
    save_model_folder,
    save_rng_state,
)
from cogfun.training.config import TransformerTrainConfig, load_config


def _draws(generator):
    return (random.random(), float(np.random.rand()), float(torch.rand(1)), float(torch.rand(1, generator=generator)))


def test_rng_states_round_trip_through_weights_only_files(tmp_path):
    generator = torch.Generator().manual_seed(5)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    _draws(generator)
    save_rng_state(tmp_path, rank=0, generator=generator)
    expected = [_draws(generator) for _ in range(3)]
    _draws(generator)
    other = torch.Generator().manual_seed(99)
    load_rng_state(tmp_path, rank=0, generator=other)
    assert [_draws(other) for _ in range(3)] == expected
    state = torch.load(tmp_path / "rng_rank0.pt", weights_only=True)  # no pickled objects
    assert set(state) >= {"python", "numpy", "torch", "generator"}
    with pytest.raises(ValueError, match="same number of processes"):
        load_rng_state(tmp_path, rank=1)


def _model_and_optimizer(seed):
    model = build_transformer("tiny", meta=False, seed=seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=3e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    return model, optimizer, scheduler


def test_checkpoint_restores_model_optimizer_and_schedule(tmp_path):
    model, optimizer, scheduler = _model_and_optimizer(0)
    for _ in range(2):  # a couple of real steps so the optimizer has state
        loss = sum(p.square().sum() for p in model.parameters())
        loss.backward()
        optimizer.step(), optimizer.zero_grad(), scheduler.step()
    config = TransformerTrainConfig(max_steps=7)
    tmp = tmp_path / "run" / "checkpoints" / "checkpoint-000002.tmp"
    save_checkpoint(tmp, config, {"transformer": model}, optimizer, scheduler, {"global_step": 2, "stage": 0})
    final = finalize_checkpoint(tmp, checkpoint_path(tmp_path / "run", 2))
    assert final.name == "checkpoint-000002" and (final / "COMPLETE").is_file()
    assert (final / "transformer" / "diffusion_pytorch_model.safetensors").is_file()
    assert load_config(final / "config.yaml") == config  # the checkpoint embeds the config

    other, other_opt, other_sched = _model_and_optimizer(1)
    state = load_checkpoint(final, {"transformer": other}, other_opt, other_sched)
    assert state == {"global_step": 2, "stage": 0}
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    assert other_sched.get_last_lr() == scheduler.get_last_lr()
    exp_avg = [s["exp_avg"] for s in optimizer.state_dict()["state"].values()]
    assert all(torch.equal(a, s["exp_avg"]) for a, s in zip(exp_avg, other_opt.state_dict()["state"].values()))
    for name in ("optimizer.pt", "lr_scheduler.pt"):
        torch.load(final / name, weights_only=True)


def test_latest_checkpoint_ignores_incomplete_and_keeps_last_n(tmp_path):
    run = tmp_path / "run"
    model, optimizer, scheduler = _model_and_optimizer(0)
    assert latest_checkpoint(run) is None
    for step in (2, 4, 6):
        tmp = checkpoint_path(run, step).with_name(f"checkpoint-{step:06d}.tmp")
        state = {"global_step": step}
        save_checkpoint(tmp, TransformerTrainConfig(), {"transformer": model}, optimizer, scheduler, state)
        finalize_checkpoint(tmp, checkpoint_path(run, step), keep_last=2)
    assert [p.name for p in list_checkpoints(run)] == ["checkpoint-000004", "checkpoint-000006"]
    # a killed save: the folder exists without COMPLETE, and is ignored
    checkpoint_path(run, 8).mkdir()
    assert latest_checkpoint(run).name == "checkpoint-000006"


def test_run_folders_are_never_reused(tmp_path):
    a = create_run_dir(tmp_path, "exp")
    b = create_run_dir(tmp_path, "exp")
    assert a != b and a.parent == b.parent == tmp_path / "exp"
    named = create_run_dir(tmp_path, "exp", "first")
    assert named.name == "first"
    with pytest.raises(ValueError, match="already exists; resume it with --resume"):
        create_run_dir(tmp_path, "exp", "first")


def test_model_folder_in_released_layout(tmp_path):
    tokenizer = build_toy_tokenizer(["a", "b"], model_max_length=16)
    parts = dict(
        transformer=build_transformer("tiny", meta=False),
        vae=build_vae("tiny"),
        text_encoder=build_tiny_t5_encoder(len(tokenizer)),
        tokenizer=tokenizer,
        scheduler=build_scheduler(),
    )
    folder = save_model_folder(tmp_path / "model", **parts)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "CogVideoXFunPipeline"
    for name in ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (folder / name).is_dir() and name in index
    assert not list(folder.rglob("*.bin"))  # safetensors only
    with pytest.raises(ValueError, match="never overwritten"):
        save_model_folder(tmp_path / "model", **parts)
