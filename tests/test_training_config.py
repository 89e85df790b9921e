"""Tests for cogfun.training.config: typed overrides, unknown keys, YAML round trip."""

import pytest

from cogfun.training.config import (
    LORA_TARGET_MODULES,
    TransformerTrainConfig,
    VAETrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    resolve_lora_targets,
    save_config,
)


def test_defaults_follow_the_reference_recipe():
    cfg = TransformerTrainConfig()
    assert (cfg.learning_rate, cfg.weight_decay, cfg.max_grad_norm) == (2e-5, 3e-2, 0.05)
    assert (cfg.text_dropout, cfg.t2v_zero_prob) == (0.1, 0.9)
    assert (cfg.lora_rank, cfg.lora_alpha) == (64, 32)
    assert cfg.lora_target_modules == LORA_TARGET_MODULES == "qkv"  # what the reference's peft LoRA adapts
    assert resolve_lora_targets(cfg.lora_target_modules) == ("to_q", "to_k", "to_v")
    assert cfg.mask_probabilities == (0.05, 0.2, 0.2, 0.2, 0.05, 0.05, 0.05, 0.1, 0.05, 0.05)
    assert VAETrainConfig().kind == "vae"


def test_overrides_are_typed():
    cfg = apply_overrides(
        TransformerTrainConfig(),
        [
            "max_steps=20",
            "learning_rate=1e-4",
            "lora=true",
            "stages=[[0, 80], [10, 160]]",
            "base_sizes=[64]",
            "run_name=007",
            "checkpoints_total_limit=null",
            "transformer_overrides={num_layers: 1}",
            "noise_aug=false",
        ],
    )
    assert cfg.max_steps == 20 and isinstance(cfg.max_steps, int)
    assert cfg.learning_rate == 1e-4 and isinstance(cfg.learning_rate, float)
    assert cfg.lora is True
    assert cfg.stages == ((0, 80), (10, 160)) and cfg.base_sizes == (64,)
    assert cfg.run_name == "007"  # string fields keep the text
    assert cfg.checkpoints_total_limit is None
    assert cfg.transformer_overrides == {"num_layers": 1}
    assert cfg.noise_aug is False
    # ints are accepted where floats are expected
    assert apply_overrides(cfg, ["learning_rate=1"]).learning_rate == 1.0


@pytest.mark.parametrize(
    "override, message",
    [
        ("max_steps=abc", "max_steps must be an int"),
        ("max_steps=2.5", "max_steps must be an int"),
        ("lora=maybe", "lora must be true or false"),
        ("stages=5", "stages must be a list"),
        ("stages=[[0, 80, 3]]", r"stages\[0\] must have 2 items"),
        ("max_steps", "must look like key=value"),
        ("lr_scheduler=exp", "lr_scheduler must be one of"),
        ("max_frames=16", r"max_frames must be 4k\+1 \(got 16\); try 13"),
        ("mask_probabilities=[0.5, 0.5]", "needs 10 values"),
        ("loss_weighting=min-snr", r"loss_weighting must be one of \['uniform', 'capped-snr'\]"),
        ("snr_gamma=0", "snr_gamma must be > 0"),
        ("object_weight=0.5", r"object_weight must be >= 1 \(got 0.5\); 1 turns the weighting off"),
        ("object_threshold=0", "object_threshold must be > 0"),
    ],
)
def test_bad_overrides_raise(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(TransformerTrainConfig(), [override])


def test_unknown_key_names_valid_keys():
    with pytest.raises(ValueError, match=r"unknown transformer config key 'max_step' \(did you mean 'max_steps'\?\); valid keys: .*max_steps"):
        apply_overrides(TransformerTrainConfig(), ["max_step=3"])
    with pytest.raises(ValueError, match=r"unknown vae config keys \['lora'\]; valid keys: .*crop_frames"):
        config_from_dict({"kind": "vae", "lora": True})


def test_yaml_round_trip(tmp_path):
    cfg = apply_overrides(
        TransformerTrainConfig(), ["stages=[[0, 80], [3, 160]]", "validation_prompts=[a, b c]", "lora=true"]
    )
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(path)
    assert again == cfg
    assert config_to_dict(again)["stages"] == [[0, 80], [3, 160]]
    vae = VAETrainConfig(crop_frames=5, kl_weight=1e-5)
    assert load_config(save_config(vae, tmp_path / "vae.yaml")) == vae


def test_load_config_with_overrides_and_kind(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("kind: vae\ncrop_frames: 9\nlearning_rate: 1.0e-4\n")
    cfg = load_config(path, ["crop_height=16"])
    assert isinstance(cfg, VAETrainConfig) and cfg.crop_height == 16 and cfg.learning_rate == 1e-4
    with pytest.raises(ValueError, match="kind cannot be overridden"):
        load_config(path, ["kind=transformer"])
    with pytest.raises(ValueError, match="crop_frames must be 4k"):
        load_config(path, ["crop_frames=8"])
    with pytest.raises(ValueError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_lora_targets_take_a_preset_name_or_module_names(tmp_path):
    cfg = apply_overrides(TransformerTrainConfig(), ["lora_target_modules=qkv-ff"])
    assert resolve_lora_targets(cfg.lora_target_modules) == ("to_q", "to_k", "to_v", "ff.net.0.proj", "ff.net.2")
    cfg = apply_overrides(TransformerTrainConfig(), ["lora_target_modules=[to_q, to_out.0]"])
    assert cfg.lora_target_modules == ("to_q", "to_out.0")
    assert load_config(save_config(cfg, tmp_path / "c.yaml")) == cfg
    with pytest.raises(ValueError, match=r"'ff' is no preset; use one of \['qkv', 'qkv-ff'\]"):
        apply_overrides(TransformerTrainConfig(), ["lora_target_modules=ff"])
    with pytest.raises(ValueError, match="lora_target_modules is empty"):
        apply_overrides(TransformerTrainConfig(), ["lora_target_modules=[]"])
