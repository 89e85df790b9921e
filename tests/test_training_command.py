"""Tests for cogfun.training.command (the ``cogfun train`` parser) and the accelerate configs."""

import argparse
from pathlib import Path

import pytest

import cogfun.training
from cogfun.training.command import add_train_parser, main

CONFIGS = Path(cogfun.training.__file__).parent / "accelerate_configs"


def test_add_train_parser_registers_train():
    parser = argparse.ArgumentParser(prog="cogfun")
    add_train_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", "c.yaml", "--set", "max_steps=3", "--set", "lora=true", "--resume"])
    assert (args.config, args.set, args.resume) == ("c.yaml", ["max_steps=3", "lora=true"], "latest")
    assert callable(args.func)
    args = parser.parse_args(["train", "c.yaml", "--resume", "runs/x/1"])
    assert args.resume == "runs/x/1" and args.set == []
    assert parser.parse_args(["train", "c.yaml"]).resume is None


def test_bad_config_exits_2_with_the_fix(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("kind: transformer\nmax_stepz: 3\n")
    assert main([str(path)]) == 2
    assert "unknown transformer config keys ['max_stepz']; valid keys:" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.yaml")]) == 2


@pytest.mark.parametrize("name", ["cpu_2proc", "ddp", "deepspeed_zero2", "deepspeed_zero3", "fsdp"])
def test_accelerate_configs_parse(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    expected = {"cpu_2proc": "MULTI_GPU", "ddp": "MULTI_GPU", "fsdp": "FSDP"}.get(name, "DEEPSPEED")
    assert config.distributed_type.value == expected
    if name == "fsdp":
        from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock

        assert config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == CogVideoXBlock.__name__
    if name.startswith("deepspeed"):
        assert config.deepspeed_config["gradient_clipping"] == 0.05
        assert config.deepspeed_config["zero_stage"] == int(name[-1])
