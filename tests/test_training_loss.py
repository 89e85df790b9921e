"""Tests for cogfun.training.loss: the v-prediction MSE, text dropout and zeroed inpaint latents."""

import math

import pytest
import torch

from cogfun.masks import Conditioning, inpaint_latents, resize_mask, training_noise_sigma
from cogfun.models.presets import build_transformer, build_vae
from cogfun.models.text_encoder import build_tiny_t5_encoder, build_toy_tokenizer, encode_prompts
from cogfun.training.loss import (
    PromptCache,
    build_training_scheduler,
    drop_text,
    draw_training_masks,
    object_cell_weights,
    timestep_loss_weights,
    training_inpaint_latents,
    training_loss,
    v_prediction_loss,
)
from cogfun.training.random_masks import MASK_KINDS


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tiny():
    transformer = build_transformer("tiny", meta=False, seed=0).eval()
    vae = build_vae("tiny", seed=0).eval()
    tokenizer = build_toy_tokenizer(["a", "red", "circle", "moving", "left"], model_max_length=16)
    encoder = build_tiny_t5_encoder(len(tokenizer), d_model=32, seed=0)
    return transformer, vae, tokenizer, encoder


def _hand_alphas_cumprod():
    """scaled_linear betas 0.00085..0.012, rescaled to zero terminal SNR (Lin et al. 2023)."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    root = torch.cumprod(1 - betas, 0).sqrt()
    root = (root - root[-1]) * root[0] / (root[0] - root[-1])
    return root**2


def test_training_scheduler_is_the_reference_ddpm():
    scheduler = build_training_scheduler()
    assert type(scheduler).__name__ == "DDPMScheduler"
    assert scheduler.config.prediction_type == "v_prediction"
    assert "snr_shift_scale" not in scheduler.config
    torch.testing.assert_close(scheduler.alphas_cumprod.double(), _hand_alphas_cumprod(), atol=1e-6, rtol=0)
    assert scheduler.alphas_cumprod[-1] == 0  # zero terminal SNR


def test_v_prediction_loss_equals_hand_computation(tiny):
    transformer = tiny[0]
    scheduler = build_training_scheduler()
    torch.manual_seed(1)
    latents = torch.randn(2, 3, 16, 4, 6)  # (B, F_lat, C, H_lat, W_lat)
    text = torch.randn(2, 16, 32)
    inpaint = torch.randn(2, 3, 17, 4, 6)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(7)
        loss, extras = v_prediction_loss(transformer, scheduler, latents, text, inpaint, generator)

    # By hand: the same draws from the same seed, the textbook formulas.
    g = torch.Generator().manual_seed(7)
    t = torch.randint(0, 1000, (2,), generator=g)
    eps = torch.randn(latents.shape, generator=g)
    a = _hand_alphas_cumprod()[t].float().view(2, 1, 1, 1, 1)
    x_t = a.sqrt() * latents + (1 - a).sqrt() * eps
    v = a.sqrt() * eps - (1 - a).sqrt() * latents
    with torch.no_grad():
        pred = transformer(x_t, text, t, inpaint_latents=inpaint).sample
    expected = ((pred - v) ** 2).mean()
    assert torch.equal(extras["timesteps"], t)
    torch.testing.assert_close(extras["target"], v, atol=1e-5, rtol=0)
    assert math.isclose(float(loss), float(expected), abs_tol=1e-5)
    assert float(loss) > 0.1  # a random model is far from v


def test_capped_snr_weights_by_hand():
    scheduler = build_training_scheduler()
    t = torch.tensor([0, 10, 100, 300, 700, 999])
    a = _hand_alphas_cumprod()[t]
    snr = a / (1 - a)
    expected = torch.where(snr > 5, 6 / (1 + snr), torch.ones_like(snr)).float()
    got = timestep_loss_weights(scheduler, t, "capped-snr", snr_gamma=5.0)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert got[-1] == 1.0  # the zero-terminal-SNR step keeps its full weight (textbook Min-SNR gives it 0)
    assert got[1] < 0.1 and got[3:].eq(1).all()  # nearly clean steps down-weighted, noisy ones untouched
    assert torch.equal(timestep_loss_weights(scheduler, t), torch.ones(6))
    with pytest.raises(ValueError, match="uniform, capped-snr"):
        timestep_loss_weights(scheduler, t, "min-snr")
    with pytest.raises(ValueError, match="snr_gamma must be > 0"):
        timestep_loss_weights(scheduler, t, "capped-snr", snr_gamma=0)


def test_weighted_v_loss_is_the_weighted_mean_of_per_sample_errors(tiny):
    transformer = tiny[0]
    scheduler = build_training_scheduler()
    torch.manual_seed(2)
    latents, text, inpaint = torch.randn(3, 3, 16, 4, 6), torch.randn(3, 16, 32), torch.randn(3, 3, 17, 4, 6)
    with torch.no_grad():
        plain, extras = v_prediction_loss(transformer, scheduler, latents, text, inpaint,
                                          torch.Generator().manual_seed(5))
        weighted, extras_w = v_prediction_loss(transformer, scheduler, latents, text, inpaint,
                                               torch.Generator().manual_seed(5), "capped-snr", 5.0)
    assert torch.equal(extras["timesteps"], extras_w["timesteps"])  # same draws
    per_sample = (extras["pred"] - extras["target"]).square().flatten(1).mean(1)
    w = timestep_loss_weights(scheduler, extras["timesteps"], "capped-snr", 5.0)
    assert math.isclose(float(plain), float(per_sample.mean()), rel_tol=1e-5)
    assert math.isclose(float(weighted), float((w * per_sample).mean()), rel_tol=1e-5)


def test_object_cells_are_those_far_from_the_frame_background():
    # Two samples, 2 latent frames of 4x6 cells, 3 channels: a plain background per frame and channel, an
    # "object" of two cells in frame 0 of sample 0 and of one cell in frame 1 of sample 1; sample 1's frame 0
    # holds a faint cell (below the threshold).
    latents = torch.zeros(2, 2, 3, 4, 6)
    latents[:, 0] += torch.tensor([0.3, -1.0, 2.0]).view(3, 1, 1)  # frame backgrounds differ by channel
    latents[:, 1] += torch.tensor([-0.5, 0.7, 0.1]).view(3, 1, 1)
    latents[0, 0, :, 1, 2:4] += torch.tensor([1.0, -2.0, 1.5]).view(3, 1)  # RMS distance ~1.55
    latents[1, 1, :, 3, 5] += torch.tensor([0.0, 0.0, 1.2])  # RMS distance ~0.69
    latents[1, 0, :, 0, 0] += 0.2  # RMS distance 0.2: background

    weights = object_cell_weights(latents, object_weight=5.0, threshold=0.5)
    assert weights.shape == (2, 2, 1, 4, 6)
    cells = 2 * 4 * 6
    # Sample 0: 2 object cells of 48; raw weights 5 there, 1 elsewhere, then divided by their mean.
    mean0 = (46 + 2 * 5) / cells
    assert torch.allclose(weights[0, 0, 0, 1, 2:4], torch.full((2,), 5 / mean0))
    assert torch.allclose(weights[0, 1], torch.full((1, 4, 6), 1 / mean0))
    # Sample 1: one object cell; the faint one stays background.
    mean1 = (47 + 5) / cells
    assert math.isclose(float(weights[1, 1, 0, 3, 5]), 5 / mean1, rel_tol=1e-6)
    assert math.isclose(float(weights[1, 0, 0, 0, 0]), 1 / mean1, rel_tol=1e-6)
    torch.testing.assert_close(weights.flatten(1).mean(1), torch.ones(2))  # a sample's share is unchanged
    # A higher threshold drops the 0.69 cell: sample 1 is all background, uniform weights.
    assert torch.equal(object_cell_weights(latents, 5.0, threshold=1.0)[1], torch.ones(2, 1, 4, 6))
    assert torch.equal(object_cell_weights(latents, 1.0, threshold=0.5), torch.ones(2, 2, 1, 4, 6))
    with pytest.raises(ValueError, match="object_weight must be >= 1"):
        object_cell_weights(latents, 0.5, 0.5)
    with pytest.raises(ValueError, match="object_threshold must be > 0"):
        object_cell_weights(latents, 2.0, 0.0)


def test_object_weighted_v_loss_is_the_cell_weighted_mean(tiny):
    transformer = tiny[0]
    scheduler = build_training_scheduler()
    torch.manual_seed(3)
    latents = torch.zeros(2, 3, 16, 4, 6)
    latents[:, :, :, 1:3, 2] = 2.0  # an object of two cells in every frame
    text, inpaint = torch.randn(2, 16, 32), torch.randn(2, 3, 17, 4, 6)
    with torch.no_grad():
        plain, extras = v_prediction_loss(transformer, scheduler, latents, text, inpaint,
                                          torch.Generator().manual_seed(4))
        one, _ = v_prediction_loss(transformer, scheduler, latents, text, inpaint,
                                   torch.Generator().manual_seed(4), object_weight=1.0)
        weighted, extras_w = v_prediction_loss(transformer, scheduler, latents, text, inpaint,
                                               torch.Generator().manual_seed(4), object_weight=9.0,
                                               object_threshold=0.5)
    assert float(one) == float(plain)  # weight 1 is the reference's plain mean
    assert torch.equal(extras["timesteps"], extras_w["timesteps"])  # same draws
    error = (extras["pred"] - extras["target"]).square()  # (B, F, C, h, w)
    is_object = torch.zeros(1, 1, 1, 4, 6, dtype=torch.bool)
    is_object[..., 1:3, 2] = True
    cell_weight = torch.where(is_object, 9.0, 1.0) / ((22 + 2 * 9) / 24)  # normalised to mean 1
    expected = (error * cell_weight).flatten(1).mean(1).mean()
    assert math.isclose(float(weighted), float(expected), rel_tol=1e-5)
    assert not math.isclose(float(weighted), float(plain), rel_tol=1e-3)


def test_text_dropout_uses_the_empty_prompt_at_the_right_rate(tiny):
    _, _, tokenizer, encoder = tiny
    cache = PromptCache(tokenizer, encoder, max_length=16)
    empty = cache([""])  # (1, 16, 32)
    torch.testing.assert_close(empty, encode_prompts(tokenizer, encoder, [""], 16).detach())
    prompts = cache(["a red circle moving left"] * 4000)
    assert len(cache) == 2  # one embedding per unique prompt
    out, dropped = drop_text(prompts, empty, 0.1, torch.Generator().manual_seed(0))
    assert 0.085 < dropped.float().mean() < 0.115  # 400 +- 4 sigma (19)
    assert torch.equal(out[dropped], empty.expand(int(dropped.sum()), -1, -1))
    assert torch.equal(out[~dropped], prompts[~dropped])
    assert not drop_text(prompts, empty, 0.0, torch.Generator())[1].any()


def _fake_encode(x):
    """A cheap stand-in for the VAE: (1, 3, F, H, W) -> (1, 16, F_lat, H/8, W/8)."""
    f_lat = (x.shape[2] - 1) // 4 + 1
    pooled = torch.nn.functional.adaptive_avg_pool3d(x, (f_lat, x.shape[3] // 8, x.shape[4] // 8))
    return pooled.repeat(1, 6, 1, 1, 1)[:, :16] - 0.5


def test_fully_masked_samples_get_zero_inpaint_latents_90_percent_of_the_time():
    b, f, h, w = 2000, 5, 16, 16
    video = torch.rand(b, 3, f, h, w) * 2 - 1
    masks = torch.ones(b, 1, f, h, w)
    masks[:100, :, 0] = 0  # 100 image-to-video samples: never zeroed
    shape = (b, 2, 16, 2, 2)
    inpaint, zeroed = training_inpaint_latents(
        _fake_encode, video, masks, shape, torch.Generator().manual_seed(0), 0.9, scaling_factor=1.5
    )
    assert inpaint.shape == (b, 2, 17, 2, 2)
    assert not zeroed[:100].any()
    rate = zeroed[100:].float().mean()
    assert 0.88 < rate < 0.92  # 0.9 +- 3 sigma (0.0069)
    assert torch.all(inpaint[zeroed] == 0)
    kept_t2v = ~zeroed
    kept_t2v[:100] = False
    # kept text-to-video samples: mask channel 0 (nothing known), latents of the all -1 video
    assert torch.all(inpaint[kept_t2v][:, :, 0] == 0)
    torch.testing.assert_close(inpaint[kept_t2v][:, :, 1:], torch.full_like(inpaint[kept_t2v][:, :, 1:], -2.25))


def test_inpaint_latents_of_image_to_video_samples(tiny):
    vae = tiny[1]
    video = torch.rand(3, 3, 5, 16, 16) * 2 - 1
    masks = torch.ones(3, 1, 5, 16, 16)
    masks[:, :, 0] = 0
    inpaint, zeroed = training_inpaint_latents(vae, video, masks, (3, 2, 16, 2, 2), torch.Generator(), 1.0)
    assert not zeroed.any()
    # mask channel = resize_mask(1 - mask) * scaling_factor; latents = VAE mode of the masked video
    sf = vae.config.scaling_factor
    expected = resize_mask(1 - masks, (2, 2, 2)).permute(0, 2, 1, 3, 4) * sf  # (3, 2, 1, 2, 2)
    torch.testing.assert_close(inpaint[:, :, :1], expected)
    assert torch.all(inpaint[:, 0, 0] == sf) and torch.all(inpaint[:, 1, 0] == 0)
    # the same as the pipeline's conditioning path, cogfun.masks.inpaint_latents
    with torch.no_grad():
        reference = inpaint_latents(vae, Conditioning(video=video, mask=masks, mode="inpaint"))
    torch.testing.assert_close(inpaint, reference, atol=1e-5, rtol=1e-5)
    # with noise augmentation: the same sigmas and noise give the same latents as the pipeline path
    g = torch.Generator().manual_seed(4)
    noisy, _ = training_inpaint_latents(vae, video, masks, (3, 2, 16, 2, 2), g, 1.0, noise_aug=True)
    g = torch.Generator().manual_seed(4)
    torch.rand(3, generator=g)  # the zeroing draws
    sigma = training_noise_sigma(3, g)
    with torch.no_grad():
        reference = inpaint_latents(vae, Conditioning(video=video, mask=masks, mode="inpaint"),
                                    noise_aug_sigma=sigma, generator=g)
    torch.testing.assert_close(noisy, reference, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(noisy, inpaint)


def test_noise_augmentation_changes_only_encoded_reference(tiny):
    vae = tiny[1]
    video = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    masks = torch.ones(2, 1, 5, 16, 16)
    masks[:, :, 0] = 0
    args = (vae, video, masks, (2, 2, 16, 2, 2))
    clean, _ = training_inpaint_latents(*args, torch.Generator().manual_seed(0), noise_aug=False)
    noisy, _ = training_inpaint_latents(*args, torch.Generator().manual_seed(0), noise_aug=True)
    assert torch.equal(clean[:, :, 0], noisy[:, :, 0])  # mask channel unchanged
    assert not torch.equal(clean[:, :, 1:], noisy[:, :, 1:])


def test_draw_training_masks_kinds_and_images():
    g = torch.Generator().manual_seed(0)
    only_first = [0.0] * len(MASK_KINDS)
    only_first[MASK_KINDS.index("first_frames")] = 1.0
    masks, kinds = draw_training_masks(3, 9, 16, 16, g, only_first)
    assert masks.shape == (3, 1, 9, 16, 16) and kinds == ["first_frames"] * 3
    assert torch.all(masks[:, :, 0] == 0) and torch.all(masks[:, :, -1] == 1)
    _, kinds = draw_training_masks(50, 1, 16, 16, g)  # single images: the reference's image branch
    assert set(kinds) <= {"box", "all"}


def test_training_loss_is_reproducible_from_the_generator(tiny):
    transformer, vae, tokenizer, encoder = tiny
    cache = PromptCache(tokenizer, encoder, max_length=16)
    batch = dict(pixel_values=torch.rand(2, 5, 3, 16, 32) * 2 - 1, text=["a red circle", "moving left"])
    scheduler = build_training_scheduler()
    runs = []
    for _ in range(2):
        with torch.no_grad():
            out = training_loss(batch, transformer, vae, scheduler, cache, torch.Generator().manual_seed(3))
        runs.append(out)
    assert math.isfinite(float(runs[0].loss))
    assert float(runs[0].loss) == float(runs[1].loss)
    assert runs[0].mask_kinds == runs[1].mask_kinds and len(runs[0].mask_kinds) == 2
    assert torch.equal(runs[0].timesteps, runs[1].timesteps)
