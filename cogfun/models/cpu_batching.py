"""A CPU speed-up for the 3D VAE: never run its convolutions on a batch of one.

PyTorch sends a 3D convolution over a batch of one to its slow reference kernel (``slow_conv3d``) on the CPU; from
a batch of two it takes the fast (mkldnn) path. Measured on this project's 2-core machine with the toy VAE at
64x96x17: encoding two copies of a clip took 0.19-0.27 s, one copy 0.66-0.68 s. :func:`run_as_pair` runs a VAE
call on two copies and keeps one: the same values (to float rounding; the tests pin 1e-5), a third of the time.
On a GPU, or with a batch of two or more, it calls the function as it is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def run_as_pair(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn(x)``, computed on ``[x, x]`` when ``x`` is a CPU batch of one (then the first result is returned).

    Args:
        fn: a batch-wise function, e.g. ``lambda v: vae.decode(v).sample``.
        x: ``(B, ...)``.
    """
    if x.device.type != "cpu" or x.shape[0] != 1:
        return fn(x)
    return fn(x.expand(2, *x.shape[1:]))[:1]
