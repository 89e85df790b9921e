"""run_as_pair: the VAE on a CPU batch of one runs as a pair (fast conv3d path) with the same values."""

import torch

from cogfun.models.cpu_batching import run_as_pair
from cogfun.models.presets import build_vae


def test_pair_gives_the_single_result_and_leaves_batches_alone():
    torch.set_num_threads(1)
    vae = build_vae("toy", seed=0).eval()
    x = torch.rand(1, 3, 9, 32, 48) * 2 - 1
    calls = []

    def decode_shape(z):
        calls.append(z.shape[0])
        return vae.decode(z).sample

    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()  # the slow single-sample path, the reference value
        paired = run_as_pair(lambda v: vae.encode(v).latent_dist.mode(), x)
        torch.testing.assert_close(paired, z, atol=1e-5, rtol=1e-5)
        assert paired.shape == z.shape == (1, 16, 3, 4, 6)
        single = vae.decode(z).sample
        torch.testing.assert_close(run_as_pair(decode_shape, z), single, atol=1e-5, rtol=1e-5)
        run_as_pair(decode_shape, torch.cat([z, z]))
    assert calls == [2, 2]  # a single sample ran as a pair; a batch of two ran as it is
