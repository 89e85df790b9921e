"""cogfun's transformer against diffusers' ``CogVideoXTransformer3DModel`` on the same weights, in the situations
diffusers' own test suite for that model covers: sincos and RoPE configs, CogVideoX 1.5 (``patch_size_t=2``) with
and without rotary embeddings passed, save/load and sharded checkpoints, fused QKV projections, gradient
checkpointing, and training steps with EMA. The inpaint channels are plain input channels to diffusers' class."""

import copy

import pytest
import torch
from diffusers import CogVideoXTransformer3DModel
from diffusers.training_utils import EMAModel

from cogfun.models.presets import build_transformer
from cogfun.models.transformer import CogVideoXFunTransformer3DModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

FUN_ONLY_KEYS = ("pos_embed_mode", "rope_spacing", "add_noise_in_inpaint_model")
CONFIGS = {
    # the extrapolate table is what diffusers computes at a non-sample grid
    "sincos": dict(pos_embed_mode="extrapolate"),
    "rope": dict(use_rotary_positional_embeddings=True, rope_spacing="diffusers"),
    "v1.5": dict(use_rotary_positional_embeddings=True, rope_spacing="diffusers", patch_size_t=2, patch_bias=False),
}


def pair(name: str, seed: int = 0):
    model = build_transformer("tiny", seed=seed, **CONFIGS[name])
    config = {k: v for k, v in model.config.items() if not k.startswith("_") and k not in FUN_ONLY_KEYS}
    twin = CogVideoXTransformer3DModel(**config).eval()
    twin.load_state_dict(model.state_dict(), strict=True)
    return model, twin


def inputs(model, frames=2, height=8, width=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    latents = torch.randn(2, frames, cfg.out_channels, height, width, generator=g)
    inpaint = torch.randn(2, frames, cfg.in_channels - cfg.out_channels, height, width, generator=g)
    text = torch.randn(2, cfg.max_text_seq_length, cfg.text_embed_dim, generator=g)
    return latents, inpaint, text, torch.tensor([999, 10])


def both(model, twin, latents, inpaint, text, t, rope=True):
    """Outputs of cogfun's class (inpaint latents apart) and diffusers' (concatenated), the same RoPE passed."""
    rotary = model.rope_for(latents) if rope else None
    ours = model(latents, text, t, inpaint_latents=inpaint, image_rotary_emb=rotary).sample
    theirs = twin(torch.cat([latents, inpaint], dim=2), text, t, image_rotary_emb=rotary).sample
    return ours, theirs


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("rope", [True, False])
def test_forward_matches(name, rope):
    model, twin = pair(name)
    with torch.no_grad():
        ours, theirs = both(model, twin, *inputs(model))
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("shard", [None, "100KB"])
def test_save_load_and_sharded_checkpoints(tmp_path, name, shard):
    model, twin = pair(name)
    kwargs = {} if shard is None else {"max_shard_size": shard}
    model.save_pretrained(tmp_path / "ours", **kwargs)
    twin.save_pretrained(tmp_path / "theirs", **kwargs)
    if shard is not None:
        assert len(list((tmp_path / "ours").glob("*.safetensors"))) > 1  # really sharded
    ours_loaded = CogVideoXFunTransformer3DModel.from_pretrained(tmp_path / "ours").eval()
    theirs_loaded = CogVideoXTransformer3DModel.from_pretrained(tmp_path / "theirs").eval()
    # each class reads the other's folder too (same keys)
    cross = CogVideoXFunTransformer3DModel.from_pretrained(tmp_path / "theirs", **CONFIGS[name]).eval()
    data = inputs(model)
    with torch.no_grad():
        expected, _ = both(model, twin, *data)
        ours, theirs = both(ours_loaded, theirs_loaded, *data)
        crossed, _ = both(cross, twin, *data)
    for got in (ours, theirs, crossed):
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["sincos", "rope"])
def test_fused_qkv_projections(name):
    model, twin = pair(name)
    data = inputs(model)
    with torch.no_grad():
        before, _ = both(model, twin, *data)
        model.fuse_qkv_projections()
        twin.fuse_qkv_projections()
        fused, fused_twin = both(model, twin, *data)
        model.unfuse_qkv_projections()
        after, _ = both(model, twin, *data)
    torch.testing.assert_close(fused, before, atol=1e-5, rtol=0)
    torch.testing.assert_close(fused, fused_twin, atol=1e-6, rtol=0)
    torch.testing.assert_close(after, before, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_gradient_checkpointing_gives_the_same_gradients(name):
    model, twin = pair(name)
    data = inputs(model)
    grads = {}
    for label, m, checkpointing in (("plain", model, False), ("ckpt", copy.deepcopy(model), True),
                                    ("diffusers", twin, True)):
        m.train()
        if checkpointing:
            m.enable_gradient_checkpointing()
            assert m.is_gradient_checkpointing
        m.zero_grad()
        out = both(model if m is twin else m, twin, *data)[1 if m is twin else 0]
        out.square().mean().backward()
        grads[label] = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    assert grads["plain"].keys() == grads["ckpt"].keys() == grads["diffusers"].keys()
    for n in grads["plain"]:
        torch.testing.assert_close(grads["ckpt"][n], grads["plain"][n], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(grads["diffusers"][n], grads["plain"][n], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", ["sincos", "v1.5"])
def test_training_steps_with_ema_match(name):
    model, twin = pair(name)
    data = inputs(model)
    runs = {}
    for label, m in (("ours", model), ("diffusers", twin)):
        m.train()
        optimiser = torch.optim.AdamW(m.parameters(), lr=1e-3)
        ema = EMAModel(m.parameters(), decay=0.9)
        losses = []
        for step in range(3):
            optimiser.zero_grad()
            out = both(model, twin, *data)[0 if m is model else 1]
            loss = (out - 1).square().mean()
            loss.backward()
            optimiser.step()
            ema.step(m.parameters())
            losses.append(float(loss.detach()))
        runs[label] = (losses, [p.detach().clone() for p in ema.shadow_params])
    assert runs["ours"][0] == pytest.approx(runs["diffusers"][0], abs=1e-6)
    assert runs["ours"][0][-1] < runs["ours"][0][0]  # it trains
    for a, b in zip(runs["ours"][1], runs["diffusers"][1]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
