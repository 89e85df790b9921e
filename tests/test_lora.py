"""LoRA in and out: cogfun's export, diffusers' loader and VideoX-Fun's two file layouts give the trained model.

A rank-64 / alpha-32 LoRA (the reference recipe: the update is scaled by 0.5) with random non-zero A and B on
the tiny transformer is saved, reloaded into a fresh pipeline and rebuilt from VideoX-Fun's kohya-style and
peft-style files; each must reproduce the adapted transformer's output to 1e-5. A lost alpha would apply the
update at scale 1 instead of 0.5, which these tests see (they check that such a load differs).
"""

import copy

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from cogfun.models.lora_conversion import (
    check_lora_targets,
    convert_lora_state_dict,
    save_lora_adapter,
)
from cogfun.pipelines.components import build_components
from cogfun.pipelines.pipeline import CogVideoXFunPipeline
from cogfun.training.config import LORA_TARGET_PRESETS, TransformerTrainConfig, resolve_lora_targets

RANK, ALPHA = 64, 32
TARGETS = LORA_TARGET_PRESETS["qkv-ff"]


@pytest.fixture(scope="module")
def components():
    return build_components("tiny")


def fresh_pipe(components) -> CogVideoXFunPipeline:
    return CogVideoXFunPipeline(**{**components, "transformer": copy.deepcopy(components["transformer"])})


def outputs(transformer) -> torch.Tensor:
    """The transformer's prediction on fixed inputs ``(2, 3, 16, 8, 8)``."""
    g = torch.Generator().manual_seed(0)
    cfg = transformer.config
    kwargs = dict(
        hidden_states=torch.randn(2, 3, 16, 8, 8, generator=g),
        inpaint_latents=torch.randn(2, 3, 17, 8, 8, generator=g),
        encoder_hidden_states=torch.randn(2, cfg.max_text_seq_length, cfg.text_embed_dim, generator=g),
        timestep=torch.tensor([10, 900]),
        return_dict=False,
    )
    with torch.no_grad():
        return transformer(**kwargs)[0]


@pytest.fixture(scope="module")
def trained(components):
    """The base transformer with a rank-64 / alpha-32 adapter whose A and B are random and non-zero."""
    from peft import LoraConfig

    model = copy.deepcopy(components["transformer"])
    model.add_adapter(LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=list(TARGETS), init_lora_weights=True))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


@pytest.fixture(scope="module")
def adapter(trained) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """module path -> (A (rank, in), B (out, rank)) of the trained adapter."""
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(trained)
    modules = sorted({k.split(".lora_")[0] for k in state})
    return {m: (state[f"{m}.lora_A.weight"], state[f"{m}.lora_B.weight"]) for m in modules}


def kohya_state(adapter, alpha=ALPHA) -> dict[str, torch.Tensor]:
    """VideoX-Fun's kohya-style network file: ``lora_unet__<path with _>.lora_down/lora_up.weight`` + ``.alpha``."""
    state = {}
    for module, (down, up) in adapter.items():
        name = "lora_unet__" + module.replace(".", "_")
        state[f"{name}.lora_down.weight"] = down.clone()
        state[f"{name}.lora_up.weight"] = up.clone()
        state[f"{name}.alpha"] = torch.tensor(float(alpha))
    return state


def test_outputs_see_the_adapter_and_its_alpha(components, trained, adapter):
    base, adapted = outputs(components["transformer"]), outputs(trained)
    assert (adapted - base).abs().max() > 1e-2
    doubled = copy.deepcopy(trained)
    doubled.set_adapters("default", 2.0)  # what a loader that lost alpha would run
    assert (outputs(doubled) - adapted).abs().max() > 1e-2


def test_export_keeps_alpha_and_reloads_exactly(components, trained, tmp_path):
    save_lora_adapter(trained, tmp_path)
    file = tmp_path / "pytorch_lora_weights.safetensors"
    with safe_open(file, framework="pt") as f:
        import json

        meta = json.loads(f.metadata()["lora_adapter_metadata"])
        assert all(k.startswith("transformer.") for k in f.keys())
    assert (meta["transformer.r"], meta["transformer.lora_alpha"]) == (RANK, ALPHA)

    pipe = fresh_pipe(components)
    lora = pipe.load_lora_weights(tmp_path, adapter_name="style")
    assert lora.unplaced == [] and lora.source == "diffusers"
    torch.testing.assert_close(outputs(pipe.transformer), outputs(trained), atol=1e-5, rtol=0)

    # diffusers' own pipeline class restores the same alpha from the file (any diffusers user gets it)
    from diffusers import CogVideoXPipeline

    state, metadata = CogVideoXPipeline.lora_state_dict(tmp_path, return_lora_metadata=True)
    assert metadata["transformer.lora_alpha"] == ALPHA


def test_videox_fun_kohya_file(components, trained, adapter, tmp_path):
    state = kohya_state(adapter)
    state["lora_te_encoder_block_0_layer_0_SelfAttention_q.lora_down.weight"] = torch.zeros(RANK, 8)
    state["lora_unet__no_such_module.lora_down.weight"] = torch.zeros(RANK, 8)
    save_file(state, tmp_path / "videox_fun_lora.safetensors")

    pipe = fresh_pipe(components)
    with pytest.warns(UserWarning, match="no_such_module") as record:
        lora = pipe.load_lora_weights(str(tmp_path / "videox_fun_lora.safetensors"))
    assert "lora_te_encoder_block_0_layer_0_SelfAttention_q" in str(record[0].message)
    assert sorted(lora.unplaced) == [
        "lora_te_encoder_block_0_layer_0_SelfAttention_q.lora_down.weight",
        "lora_unet__no_such_module.lora_down.weight",
    ]
    assert lora.source == "kohya" and lora.metadata["transformer.lora_alpha"] == ALPHA
    torch.testing.assert_close(outputs(pipe.transformer), outputs(trained), atol=1e-5, rtol=0)


@pytest.mark.parametrize("prefix,infix", [("", ""), ("diffusion_model.", ""), ("", ".default")])
def test_videox_fun_peft_file(components, trained, adapter, prefix, infix):
    state = {}
    for module, (down, up) in adapter.items():
        state[f"{prefix}{module}.lora_A{infix}.weight"] = down.clone()
        state[f"{prefix}{module}.lora_B{infix}.weight"] = up.clone()

    pipe = fresh_pipe(components)
    lora = pipe.load_lora_weights(state, network_alpha=ALPHA)
    assert lora.unplaced == [] and lora.source == "peft"
    torch.testing.assert_close(outputs(pipe.transformer), outputs(trained), atol=1e-5, rtol=0)

    # without network_alpha: alpha = rank, the reference's merge_lora for such files (twice the trained scale)
    pipe = fresh_pipe(components)
    pipe.load_lora_weights(state)
    assert (outputs(pipe.transformer) - outputs(trained)).abs().max() > 1e-2


def test_kohya_ranks_and_alphas_per_module_match_the_reference_merge(components, adapter):
    """Per-module alpha (and rank) as VideoX-Fun's merge_lora applies them: W += alpha / rank * up @ down."""
    state = kohya_state(adapter)
    odd = "transformer_blocks.1.attn1.to_v"
    odd_key = "lora_unet__" + odd.replace(".", "_")
    state[f"{odd_key}.alpha"] = torch.tensor(8.0)
    state[f"{odd_key}.lora_down.weight"] = state[f"{odd_key}.lora_down.weight"][:16].clone()
    state[f"{odd_key}.lora_up.weight"] = state[f"{odd_key}.lora_up.weight"][:, :16].clone()
    del state["lora_unet__transformer_blocks_0_attn1_to_q.alpha"]  # no alpha: alpha = rank

    merged = copy.deepcopy(components["transformer"])
    modules = dict(merged.named_modules())
    with torch.no_grad():
        for module in adapter:
            key = "lora_unet__" + module.replace(".", "_")
            down, up = state[f"{key}.lora_down.weight"], state[f"{key}.lora_up.weight"]
            alpha = float(state[f"{key}.alpha"]) if f"{key}.alpha" in state else down.shape[0]
            modules[module].weight += alpha / down.shape[0] * up @ down

    pipe = fresh_pipe(components)
    pipe.load_lora_weights(state)
    torch.testing.assert_close(outputs(pipe.transformer), outputs(merged), atol=1e-5, rtol=0)


def test_shape_mismatch_names_the_key_and_both_shapes(components, adapter):
    state = kohya_state(adapter)
    key = "lora_unet__transformer_blocks_0_ff_net_2.lora_up.weight"
    state[key] = torch.zeros(48, RANK)  # ff.net.2 writes 32 features
    pipe = fresh_pipe(components)
    with pytest.raises(ValueError, match=rf"{key}.*\(48, 64\).*\(32, 64\)"):
        pipe.load_lora_weights(state)
    with pytest.raises(ValueError, match="transformer_blocks.0.ff.net.2"):
        convert_lora_state_dict(state, pipe.transformer)


def test_scale_zero_gives_the_base_model_and_unload_restores_it(components, trained, tmp_path):
    save_lora_adapter(trained, tmp_path)
    base = outputs(components["transformer"])
    pipe = fresh_pipe(components)
    pipe.load_lora_weights(tmp_path, adapter_name="style")
    assert pipe.get_active_adapters() == ["style"]

    pipe.set_adapters("style", 0.0)
    torch.testing.assert_close(outputs(pipe.transformer), base, atol=1e-6, rtol=0)
    pipe.set_adapters("style", 1.0)
    torch.testing.assert_close(outputs(pipe.transformer), outputs(trained), atol=1e-5, rtol=0)

    pipe.fuse_lora()
    torch.testing.assert_close(outputs(pipe.transformer), outputs(trained), atol=1e-5, rtol=0)
    pipe.unfuse_lora()
    pipe.unload_lora_weights()
    torch.testing.assert_close(outputs(pipe.transformer), base, atol=1e-5, rtol=0)
    assert not any("lora_" in name for name, _ in pipe.transformer.named_parameters())


def test_network_alpha_is_refused_for_a_file_that_stores_alpha(components, trained, tmp_path):
    save_lora_adapter(trained, tmp_path)
    with pytest.raises(ValueError, match="drop network_alpha"):
        fresh_pipe(components).load_lora_weights(tmp_path, network_alpha=ALPHA)


def test_target_presets_and_names_that_match_no_module(components):
    assert resolve_lora_targets("qkv") == ("to_q", "to_k", "to_v")
    assert resolve_lora_targets("qkv-ff") == ("to_q", "to_k", "to_v", "ff.net.0.proj", "ff.net.2")
    assert resolve_lora_targets(["to_q", "to_out.0"]) == ("to_q", "to_out.0")
    assert TransformerTrainConfig().lora_target_modules == "qkv"  # the reference's set
    with pytest.raises(ValueError, match="no preset"):
        TransformerTrainConfig(lora_target_modules="attention")

    check_lora_targets(components["transformer"], TARGETS)
    # VideoX-Fun's documented "ff.0" / "ff.2": peft would train to_q/to_k/to_v only and say nothing
    with pytest.raises(ValueError, match=r"\['ff.0', 'ff.2'\].*ff.net.0.proj"):
        check_lora_targets(components["transformer"], ["to_q", "to_k", "to_v", "ff.0", "ff.2"])
