"""DiT's adaLN-Zero initialisation of the CogVideoX-Fun transformer (cogfun.models.initialisation)."""

import pytest
import torch

from cogfun.models.initialisation import adaln_zero_init, initialise
from cogfun.models.presets import build_transformer
from cogfun.pipelines.components import build_components


def _inputs(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    x = torch.randn(2, 3, 16, 8, 8, generator=g)
    inpaint = torch.randn(2, 3, 17, 8, 8, generator=g)
    text = torch.randn(2, cfg.max_text_seq_length, cfg.text_embed_dim, generator=g)
    return dict(hidden_states=x, encoder_hidden_states=text, timestep=torch.tensor([10, 900]),
                inpaint_latents=inpaint, return_dict=False)


def test_adaln_zero_starts_at_zero_output_and_identity_blocks():
    model = build_transformer("tiny", init="adaln-zero")
    with torch.no_grad():
        out = model(**_inputs(model))[0]
    assert out.shape == (2, 3, 16, 8, 8)
    assert torch.count_nonzero(out) == 0  # proj_out is zero
    # every block is the identity: its gates (from the zeroed modulation) are zero
    block = model.transformer_blocks[0]
    h, e, temb = torch.randn(2, 24, 32), torch.randn(2, 5, 32), torch.randn(2, model.config.time_embed_dim)
    with torch.no_grad():
        h_out, e_out = block(h, e, temb)
    assert torch.equal(h_out, h) and torch.equal(e_out, e)


def test_adaln_zero_model_still_learns_through_the_gates():
    model = build_transformer("tiny", init="adaln-zero").train()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)

    def step():
        optimiser.zero_grad()
        (model(**_inputs(model))[0] - 1).square().mean().backward()
        grads = {name: float(p.grad.abs().sum()) if p.grad is not None else 0.0
                 for name, p in model.named_parameters()}
        optimiser.step()
        return grads

    first = step()  # the output is zero and so is proj_out: only proj_out can move
    assert first["proj_out.weight"] > 0 and first["proj_out.bias"] > 0
    assert first["transformer_blocks.0.norm1.linear.weight"] == 0 and first["norm_out.linear.weight"] == 0
    second = step()  # once proj_out is non-zero, the gradient reaches the blocks' modulations (the gates open)
    assert second["transformer_blocks.0.norm1.linear.weight"] > 0
    assert second["norm_out.linear.weight"] > 0
    third = step()  # and, with the gates open, the attention itself
    assert third["transformer_blocks.0.attn1.to_q.weight"] > 0


def test_default_init_is_unchanged_and_seeded():
    a, b = build_transformer("tiny", seed=3), build_transformer("tiny", seed=3, init="default")
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name
    assert a.proj_out.weight.abs().sum() > 0


def test_adaln_zero_is_deterministic_for_a_seed_and_reaches_write_initial_model():
    a = build_components("tiny", seed=1, init="adaln-zero")["transformer"]
    b = adaln_zero_init(build_transformer("tiny", seed=1))
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name
    assert torch.count_nonzero(a.proj_out.weight) == 0


def test_unknown_init_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="default, adaln-zero"):
        initialise(build_transformer("tiny"), "xavier")
