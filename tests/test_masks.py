"""Tests for cogfun.masks: conditioning builders, resize_mask, noise, inpaint latents."""

import math

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLCogVideoX

from cogfun import masks as M

SF = 1.15258426  # CogVideoX-2B VAE scaling factor
SF32 = float(torch.tensor(SF, dtype=torch.float32))  # what a float32 mask channel holds exactly


class FakeVAE:
    """Encode callable `(1, 3, F, H, W) -> (1, 4, F_lat, H/8, W/8)` that counts its calls.

    Latent frame 0 = pixel frame 0, latent frame k = mean of pixel frames 4k-3..4k; spatial 8x8
    mean; channel mean times (1, 2, 3, 4).
    """

    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        b, _, f, h, w = x.shape
        g = x.mean(dim=1, keepdim=True)  # (B, 1, F, H, W)
        first = g[:, :, :1]
        rest = g[:, :, 1:].reshape(b, 1, (f - 1) // 4, 4, h, w).mean(dim=3)
        g = torch.cat([first, rest], dim=2)  # (B, 1, F_lat, H, W)
        g = F.avg_pool3d(g, (1, 8, 8))  # (B, 1, F_lat, H/8, W/8)
        return g * torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1, 1)


def _image(value, h=16, w=16, batch=None):
    shape = (3, h, w) if batch is None else (batch, 3, h, w)
    return torch.full(shape, float(value))


def _mask_channel_per_frame(latents):
    """(B, F_lat, 1 + C, H, W) -> the mask channel of sample 0, one value per latent frame."""
    ch = latents[0, :, 0]  # (F_lat, H, W)
    assert torch.equal(ch, ch[:, :1, :1].expand_as(ch)), "mask channel should be spatially constant"
    return ch[:, 0, 0].tolist()


# ---------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------


def test_text_to_video_is_all_regenerate_and_never_calls_the_vae():
    cond = M.text_to_video(9, 16, 24, batch_size=2)
    assert cond.video is None and cond.mode == "text_to_video"
    assert cond.mask.shape == (2, 1, 9, 16, 24) and bool((cond.mask == 1).all())
    vae = FakeVAE()
    out = M.inpaint_latents(vae, cond, SF, latent_shape=(2, 3, 4, 2, 3))
    assert out.shape == (2, 3, 5, 2, 3)
    assert bool((out == 0).all())
    assert vae.calls == 0
    with pytest.raises(ValueError, match="pass latent_shape"):
        M.inpaint_latents(vae, cond, SF)


def test_image_to_video_repeats_the_start_and_keeps_frame_0():
    cond = M.image_to_video(_image(0.25), num_frames=5)
    assert cond.mode == "image_to_video"
    assert cond.video.shape == (1, 3, 5, 16, 16) and bool((cond.video == 0.25).all())
    assert cond.mask[0, 0, :, 0, 0].tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]


def test_start_end_puts_the_end_image_on_the_last_frame():
    cond = M.image_to_video(_image(0.25, batch=2), num_frames=9, end_image=_image(-0.5))
    assert cond.mode == "start_end_to_video"
    assert cond.video[:, :, :-1].unique().tolist() == [0.25]
    assert cond.video[:, :, -1].unique().tolist() == [-0.5]
    assert cond.mask[1, 0, :, 3, 3].tolist() == [0.0] + [1.0] * 7 + [0.0]


def test_video_to_video_regenerates_everything():
    video = torch.rand(3, 5, 16, 16) * 2 - 1
    cond = M.video_to_video(video)
    assert cond.video.shape == (1, 3, 5, 16, 16) and torch.equal(cond.video[0], video)
    assert bool((cond.mask == 1).all())
    vae = FakeVAE()
    out = M.inpaint_latents(vae, cond, SF, latent_shape=(1, 2, 4, 2, 2))
    assert bool((out == 0).all()) and vae.calls == 0


def test_inpaint_mask_tiled_equals_per_frame():
    torch.manual_seed(0)
    video = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    img = (torch.rand(16, 16) > 0.5).float()  # (H, W)
    per_frame = img.expand(5, 16, 16)  # (F, H, W)
    full = img.expand(2, 1, 5, 16, 16)  # (B, 1, F, H, W)
    as_uint8 = (img * 255).to(torch.uint8).unsqueeze(0)  # (1, H, W) in [0, 255]
    as_bool = img.bool()[None, None].expand(2, 1, 16, 16)  # (B, 1, H, W)
    conds = [M.inpaint(video, m) for m in (img, per_frame, full, as_uint8, as_bool)]
    for c in conds[1:]:
        assert torch.equal(c.mask, conds[0].mask)
    assert torch.equal(conds[0].mask[1, 0, 4], img)
    lat = [M.inpaint_latents(FakeVAE(), c, SF) for c in conds[:2]]
    assert torch.equal(lat[0], lat[1])


def test_inpaint_binarises_at_the_threshold():
    video = torch.zeros(1, 3, 1, 8, 8)
    soft = torch.tensor([0.0, 0.49, 0.5, 1.0]).repeat_interleave(16).view(8, 8)
    assert M.inpaint(video, soft).mask[0, 0, 0, :, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    # [0, 255] floats are divided by 255 first: 120 -> 0.47 (keep), 200 -> 0.78 (regenerate)
    soft255 = torch.tensor([0.0, 120.0, 200.0, 255.0]).repeat_interleave(16).view(8, 8)
    assert M.inpaint(video, soft255).mask[0, 0, 0, :, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    # the reference's mask-file threshold 240/255: 200 is kept
    got = M.inpaint(video, soft255, threshold=240 / 255).mask[0, 0, 0, :, 0].tolist()
    assert got == [0, 0, 0, 0, 0, 0, 1, 1]


def test_continuation_keeps_the_overlap_and_repeats_the_last_frame():
    prev = torch.linspace(-1, 1, 7).view(1, 1, 7, 1, 1).expand(2, 3, 7, 8, 8)
    cond = M.continuation(prev, num_frames=9, overlap=4)
    assert cond.mode == "continuation"
    got = cond.video[1, 2, :, 5, 5]
    want = prev[0, 0, 3:, 0, 0].tolist() + [1.0] * 5
    assert torch.allclose(got, torch.tensor(want))
    assert cond.mask[0, 0, :, 0, 0].tolist() == [0.0] * 4 + [1.0] * 5


# ---------------------------------------------------------------------------------------------
# Pixel helpers
# ---------------------------------------------------------------------------------------------


def test_masked_video_fills_minus_one_exactly():
    video = torch.tensor([0.3, -0.2, 0.9, 1.0]).view(1, 1, 4, 1, 1).expand(1, 3, 4, 2, 2)
    mask = torch.tensor([0.0, 1.0, 0.0, 1.0]).view(1, 1, 4, 1, 1).expand(1, 1, 4, 2, 2)
    out = M.masked_video(video, mask)
    assert out.shape == (1, 3, 4, 2, 2)
    assert out[0, 1, :, 1, 0].tolist() == pytest.approx([0.3, -1.0, 0.9, -1.0])
    assert bool((out[:, :, 1] == -1).all()) and bool((out[:, :, 3] == -1).all())


def test_noise_never_touches_minus_one_pixels_and_matches_the_seeded_draw():
    torch.manual_seed(1)
    video = torch.rand(2, 3, 5, 8, 8) * 2 - 1
    mask = (torch.rand(2, 1, 5, 8, 8) > 0.5).float()
    mv = M.masked_video(video, mask)
    out = M.add_noise_to_reference_video(mv, 0.0563, torch.Generator().manual_seed(7))
    regen = mask.expand_as(mv) == 1
    assert torch.equal(out[regen], mv[regen])  # still exactly -1
    noise = torch.randn(mv.shape, generator=torch.Generator().manual_seed(7)) * 0.0563
    assert torch.allclose(out[~regen], (mv + noise)[~regen])
    assert not torch.equal(out[~regen], mv[~regen])


def test_noise_with_training_sigma_draws_sigma_then_noise():
    video = torch.zeros(3, 3, 1, 4, 4)
    g = torch.Generator().manual_seed(3)
    out = M.add_noise_to_reference_video(video, None, g)
    g = torch.Generator().manual_seed(3)
    sigma = M.training_noise_sigma(3, g)
    noise = torch.randn(video.shape, generator=g) * sigma.view(3, 1, 1, 1, 1)
    assert torch.allclose(out, noise)


def test_training_noise_sigma_is_lognormal_minus3_half():
    sigma = M.training_noise_sigma(20000, torch.Generator().manual_seed(0))
    log = sigma.log()
    assert abs(log.mean().item() - (-3.0)) < 0.02
    assert abs(log.std().item() - 0.5) < 0.02
    assert bool((sigma > 0).all())


# ---------------------------------------------------------------------------------------------
# resize_mask
# ---------------------------------------------------------------------------------------------


def test_resize_mask_hand_checked_small_example():
    # 5 pixel frames of 2x2 -> 2 latent frames of 1x1.
    mask = torch.zeros(1, 1, 5, 2, 2)
    mask[0, 0, 0] = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # mean 0.25
    for t, v in zip(range(1, 5), [1.0, 0.0, 1.0, 0.0]):
        mask[0, 0, t] = v
    # reference: frame 0 -> mean of the 2x2 (0.25); frames 1..4 sampled at 1.5 -> frames 2, 3
    ref = M.resize_mask(mask, (2, 1, 1))
    assert ref.shape == (1, 1, 2, 1, 1)
    assert ref.flatten().tolist() == pytest.approx([0.25, 0.5])
    # max: frame 0 -> 1; frames 1..4 -> 1
    assert M.resize_mask(mask, (2, 1, 1), method="max").flatten().tolist() == [1.0, 1.0]
    # all frames together (reference option): 5 -> 2 samples at 0.75 and 3.25
    both = M.resize_mask(mask, (2, 1, 1), process_first_frame_only=False).flatten().tolist()
    want0 = 0.25 * 0.25 + 0.75 * 1.0  # frames 0 and 1
    want1 = 0.75 * 1.0 + 0.25 * 0.0  # frames 3 and 4
    assert both == pytest.approx([want0, want1])


def test_resize_mask_spatial_samples_the_centre_pixels_of_each_cell():
    # one frame 16x16 -> 2x2: cell i samples the mean of pixels 8i+3 and 8i+4 per axis
    cols = torch.zeros(16)
    cols[3], cols[4], cols[12] = 1.0, 1.0, 1.0
    mask = cols.view(1, 1, 1, 1, 16).expand(1, 1, 1, 16, 16)
    got = M.resize_mask(mask, (1, 2, 2))[0, 0, 0]
    assert got.tolist() == [[1.0, 0.5], [1.0, 0.5]]
    got = M.resize_mask(mask, (1, 2, 2), method="max")[0, 0, 0]
    assert got.tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_resize_mask_reads_the_size_from_transformer_layout_latents():
    mask = torch.rand(2, 1, 9, 16, 16)
    latents = torch.zeros(2, 3, 16, 2, 2)  # (B, F_lat, C, H_lat, W_lat)
    assert torch.equal(M.resize_mask(mask, latents), M.resize_mask(mask, (3, 2, 2)))
    assert M.resize_mask(mask, latents).shape == (2, 1, 3, 2, 2)


# ---------------------------------------------------------------------------------------------
# Inpaint latents
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_frames", [9, 49])
def test_image_to_video_mask_channel_is_scaling_factor_then_zeros(num_frames):
    cond = M.image_to_video(_image(0.5), num_frames)
    vae = FakeVAE()
    out = M.inpaint_latents(vae, cond, SF)
    f_lat = (num_frames - 1) // 4 + 1
    assert out.shape == (1, f_lat, 5, 2, 2)
    assert _mask_channel_per_frame(out) == [SF32] + [0.0] * (f_lat - 1)
    # masked latents: fake encode of the masked video (frame 0 = 0.5, the rest -1) times SF
    want = vae(M.masked_video(cond.video, cond.mask)) * SF  # (1, 4, F_lat, 2, 2)
    assert torch.allclose(out[:, :, 1:], want.permute(0, 2, 1, 3, 4))
    assert out[0, 0, 1:, 0, 0].tolist() == pytest.approx([0.5 * SF * k for k in (1, 2, 3, 4)])
    assert out[0, 1, 1:, 0, 0].tolist() == pytest.approx([-SF * k for k in (1, 2, 3, 4)])


def test_start_end_at_49_frames_the_reference_drops_the_end_mask():
    cond = M.image_to_video(_image(0.5), 49, end_image=_image(-0.5))
    ref = M.inpaint_latents(FakeVAE(), cond, SF)
    # Quirk: trilinear (align_corners=False) 48 -> 12 frames makes latent frame k read pixel
    # frames 4k-2 and 4k-1; pixel frame 48 (the end image) is never read, so the last latent mask
    # is 0 and the mask channel is identical to plain image-to-video.
    assert _mask_channel_per_frame(ref) == [SF32] + [0.0] * 12
    mx = M.inpaint_latents(FakeVAE(), cond, SF, resize_method="max")
    assert _mask_channel_per_frame(mx) == [SF32] + [0.0] * 11 + [SF32]
    # the end image still reaches the model through the masked latents: last latent frame =
    # mean of pixel frames 45..48 = (-1 - 1 - 1 - 0.5) / 4
    assert ref[0, 12, 1, 0, 0].item() == pytest.approx(-3.5 / 4 * SF)


def test_fully_masked_samples_are_zero_per_sample_and_batch_invariant():
    torch.manual_seed(2)
    video = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    mask = torch.ones(2, 1, 5, 16, 16)
    mask[0, :, 0] = 0  # sample 0 keeps frame 0, sample 1 regenerates everything
    cond = M.Conditioning(video=video, mask=mask, mode="inpaint")
    vae = FakeVAE()
    out = M.inpaint_latents(vae, cond, SF)
    assert vae.calls == 1
    assert bool((out[1] == 0).all())
    alone = M.inpaint_latents(FakeVAE(), M.Conditioning(video[:1], mask[:1], "inpaint"), SF)
    assert torch.equal(out[:1], alone)
    # zero_fully_masked=False encodes the all -1 video (the reference's 10 % training case)
    vae = FakeVAE()
    enc = M.inpaint_latents(vae, cond, SF, zero_fully_masked=False)
    assert vae.calls == 2
    assert enc[1, :, 0].abs().max().item() == 0.0  # nothing known
    per_channel = enc[1, :, 1:, 0, 0]  # (F_lat, C), spatially constant
    assert torch.equal(enc[1, :, 1:], per_channel[..., None, None].expand(2, 4, 2, 2))
    assert per_channel.tolist() == [pytest.approx([-SF * k for k in (1, 2, 3, 4)])] * 2


def test_noise_aug_zero_sigma_changes_nothing_and_nonzero_changes_only_latents():
    cond = M.image_to_video(_image(0.5), 5)
    plain = M.inpaint_latents(FakeVAE(), cond, SF)
    assert torch.equal(M.inpaint_latents(FakeVAE(), cond, SF, noise_aug_sigma=0.0), plain)
    g = torch.Generator().manual_seed(0)
    noisy = M.inpaint_latents(FakeVAE(), cond, SF, noise_aug_sigma=0.0563, generator=g)
    assert torch.equal(noisy[:, :, 0], plain[:, :, 0])
    assert not torch.equal(noisy[:, 0, 1:], plain[:, 0, 1:])  # frame 0 was noised
    assert torch.equal(noisy[:, 1, 1:], plain[:, 1, 1:])  # frames 1..4 are -1: untouched


@pytest.fixture(scope="module")
def tiny_vae():
    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(
        block_out_channels=(8, 8, 8, 8), latent_channels=4, layers_per_block=1, norm_num_groups=4
    )
    return vae.eval()


def test_real_vae_encode_path_and_latent_shape(tiny_vae):
    torch.manual_seed(0)
    start = torch.rand(3, 32, 32) * 2 - 1
    cond = M.image_to_video(start, 9)
    with torch.no_grad():
        out = M.inpaint_latents(tiny_vae, cond)  # scaling factor from the VAE config
        want = tiny_vae.encode(M.masked_video(cond.video, cond.mask)).latent_dist.mode() * SF
    assert out.shape == (1, 3, 5, 4, 4)  # 9 frames -> 3, 32x32 -> 4x4, 1 + 4 channels
    assert _mask_channel_per_frame(out) == pytest.approx([SF, 0.0, 0.0])
    assert torch.allclose(out[:, :, 1:], want.permute(0, 2, 1, 3, 4), atol=1e-6)


def test_real_vae_text_to_video_is_zero_without_encoding(tiny_vae, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the VAE must not be called for text-to-video")

    monkeypatch.setattr(tiny_vae, "encode", boom)
    out = M.inpaint_latents(tiny_vae, M.text_to_video(9, 32, 32, batch_size=2))
    assert out.shape == (2, 3, 5, 4, 4) and bool((out == 0).all())


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_errors_name_the_rule_and_the_fix():
    video = torch.zeros(1, 3, 9, 16, 16)
    rule = "mask has 7 frames but the video has 9; give one mask image or one per frame"
    with pytest.raises(ValueError, match=rule):
        M.inpaint(video, torch.zeros(7, 16, 16))
    with pytest.raises(ValueError, match="mask is 8x16 but the video is 16x16"):
        M.inpaint(video, torch.zeros(8, 16))
    with pytest.raises(ValueError, match="mask has batch 3 but the video has batch 1"):
        M.inpaint(video, torch.zeros(3, 1, 16, 16))
    with pytest.raises(ValueError, match="end_image needs a start_image"):
        M.image_to_video(None, 9, end_image=_image(0))
    with pytest.raises(ValueError, match="start_image is 16x16 but end_image is 8x16"):
        M.image_to_video(_image(0), 9, end_image=_image(0, h=8))
    with pytest.raises(ValueError, match=r"num_frames must be 4k\+1 \(got 48\); try 45 or 49"):
        M.text_to_video(48, 16, 16)
    with pytest.raises(ValueError, match="num_frames must be 4k"):
        M.video_to_video(torch.zeros(1, 3, 8, 16, 16))
    with pytest.raises(ValueError, match="num_frames must be 4k"):
        M.image_to_video(_image(0), 10)
    with pytest.raises(ValueError, match=r"overlap must be in \[1, num_frames\)"):
        M.continuation(torch.zeros(1, 3, 9, 8, 8), num_frames=5, overlap=5)
    with pytest.raises(ValueError, match="previous_frames has 2 frames but overlap is 4"):
        M.continuation(torch.zeros(1, 3, 2, 8, 8), num_frames=9, overlap=4)
    with pytest.raises(ValueError, match=r"must be in \[-1, 1\]"):
        M.image_to_video(_image(255), 9)
    with pytest.raises(ValueError, match="mode must be one of"):
        M.Conditioning(video=None, mask=torch.ones(1, 1, 1, 8, 8), mode="i2v")
    with pytest.raises(ValueError, match="needs a video"):
        M.Conditioning(video=None, mask=torch.zeros(1, 1, 1, 8, 8), mode="inpaint")
    with pytest.raises(ValueError, match="method must be one of"):
        M.resize_mask(torch.zeros(1, 1, 5, 8, 8), (2, 1, 1), method="nearest")
    with pytest.raises(ValueError, match="scaling_factor is required"):
        M.inpaint_latents(FakeVAE(), M.image_to_video(_image(0), 5))
    with pytest.raises(ValueError, match="the VAE gives latents"):
        cond = M.image_to_video(_image(0), 5)
        M.inpaint_latents(FakeVAE(), cond, SF, latent_shape=(1, 3, 4, 2, 2))
    assert math.isclose(M.INFERENCE_NOISE_SIGMA, 0.0563)
