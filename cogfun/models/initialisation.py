"""How a transformer trained from scratch starts: PyTorch's defaults, or DiT's adaLN-Zero.

diffusers' ``CogVideoXTransformer3DModel`` has no weight initialisation of its own: its layers start with
PyTorch's defaults (Kaiming-uniform linears), which is fine for loading a released checkpoint and is what the
toy recipe used until the overfitting check (experiments/toy-model/DIAGNOSIS.md) showed the model could not learn six
clips by heart. DiT (Peebles & Xie 2023, section 3.2) starts every block as the identity: the adaptive-norm
modulations that make each block's shift, scale and gate are zero, so every residual branch is gated off until
the gradient opens it, and the output projection is zero, so the first prediction is zero. The same holds for
CogVideoX's blocks, whose ``CogVideoXLayerNormZero`` returns the gate that multiplies the attention and the
feed-forward outputs (docs/design.md, "The transformer"). The architecture is unchanged; only the starting point.

``adaln_zero_init(model)``, in DiT's recipe:

- every ``nn.Linear``: Xavier-uniform weights, zero bias; the patch projection as a linear (Xavier on its
  flattened weight);
- the timestep MLP: normal(0, 0.02) weights;
- each block's ``norm1.linear`` and ``norm2.linear`` (shift, scale, gate for video and text) and the output
  ``norm_out.linear``: zero;
- ``proj_out``: zero.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["INITIALISATIONS", "adaln_zero_init", "initialise"]

INITIALISATIONS = ("default", "adaln-zero")


@torch.no_grad()
def adaln_zero_init(model: nn.Module) -> nn.Module:
    """Re-initialise a CogVideoX(-Fun) transformer in place the DiT way (module docstring); returns it."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    proj = model.patch_embed.proj
    nn.init.xavier_uniform_(proj.weight.view(proj.weight.shape[0], -1))
    if proj.bias is not None:
        nn.init.zeros_(proj.bias)
    for layer in (model.time_embedding.linear_1, model.time_embedding.linear_2):
        nn.init.normal_(layer.weight, std=0.02)
    zeroed = [model.norm_out.linear, model.proj_out]
    for block in model.transformer_blocks:
        zeroed += [block.norm1.linear, block.norm2.linear]
    for layer in zeroed:
        nn.init.zeros_(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    return model


def initialise(model: nn.Module, init: str) -> nn.Module:
    """Apply the named initialisation (``"default"`` leaves PyTorch's as built)."""
    if init not in INITIALISATIONS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITIALISATIONS)}")
    return adaln_zero_init(model) if init == "adaln-zero" else model
