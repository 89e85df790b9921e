"""CogVideoXFunPipeline: one __call__ for every mode, samplers, save/load, long video and bad input."""

import json

import numpy as np
import pytest
import torch

from cogfun.pipelines import SAMPLERS, CogVideoXFunPipeline, generate_long_video, plan_segments, size_from_image
from cogfun.pipelines.components import build_components

H, W = 32, 48


@pytest.fixture(scope="module")
def pipe():
    p = CogVideoXFunPipeline(**build_components("tiny"))
    p.set_progress_bar_config(disable=True)
    return p


class Recorder:
    """Wrap the transformer's forward to record what each denoising step received."""

    def __init__(self, pipe):
        self.pipe, self.calls = pipe, []
        self.original = pipe.transformer.forward

    def __enter__(self):
        def forward(*args, **kwargs):
            self.calls.append({k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)})
            return self.original(*args, **kwargs)

        self.pipe.transformer.forward = forward
        return self

    def __exit__(self, *exc):
        self.pipe.transformer.forward = self.original

    def mask_channel(self):
        """Mean of the mask channel per latent frame, for the conditional half of the batch."""
        inpaint = self.calls[0]["inpaint_latents"]
        return inpaint[-1, :, 0].mean(dim=(-1, -2)).tolist()


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def image(seed=0, h=H, w=W):
    return np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)


def test_text_to_video_shapes_and_zero_inpaint_latents(pipe):
    with Recorder(pipe) as rec:
        out = pipe("a red circle moving left", num_frames=9, height=H, width=W, num_inference_steps=2, generator=gen())
    assert out.frames.shape == (1, 9, H, W, 3)
    assert 0 <= out.frames.min() and out.frames.max() <= 1
    inpaint = rec.calls[0]["inpaint_latents"]
    assert inpaint.shape == (2, 3, 17, H // 8, W // 8)  # CFG doubles the batch
    assert torch.all(inpaint == 0)


def test_image_to_video_mask_channel_is_scaling_factor_then_zeros(pipe):
    sf = pipe.vae.config.scaling_factor
    with Recorder(pipe) as rec:
        pipe.image_to_video("a red circle", image(), num_frames=9, num_inference_steps=1)
    assert rec.mask_channel() == pytest.approx([sf, 0.0, 0.0], abs=1e-6)


def test_start_end_keeps_both_images_and_shows_the_resize_quirk(pipe):
    sf = pipe.vae.config.scaling_factor
    with Recorder(pipe) as only_start:
        pipe.image_to_video("x", image(0), num_frames=9, num_inference_steps=1)
    with Recorder(pipe) as start_end:
        pipe.image_to_video("x", image(0), end_image=image(1), num_frames=9, num_inference_steps=1)
    # The trilinear resize never samples the last pixel frame: the mask channel cannot tell them apart...
    assert start_end.mask_channel() == pytest.approx([sf, 0.0, 0.0], abs=1e-6)
    # ...the end image reaches the model through the masked latents of the last latent frame only.
    a, b = only_start.calls[0]["inpaint_latents"][-1], start_end.calls[0]["inpaint_latents"][-1]
    assert torch.equal(a[:, 0], b[:, 0])  # same mask channel
    assert not torch.allclose(a[:, 1:], b[:, 1:])
    # masked latents = encode(start, -1 x 7, end) by hand
    to_pixels = lambda x: torch.from_numpy(x).permute(2, 0, 1) * 2 - 1  # noqa: E731
    video = torch.full((1, 3, 9, H, W), -1.0)
    video[:, :, 0], video[:, :, -1] = to_pixels(image(0)), to_pixels(image(1))
    with torch.no_grad():
        expected = pipe.vae.encode(video).latent_dist.mode()[0].permute(1, 0, 2, 3) * sf
    torch.testing.assert_close(b[:, 1:], expected, atol=1e-5, rtol=0)
    with Recorder(pipe) as study:
        pipe.image_to_video("x", image(0), end_image=image(1), num_frames=9, num_inference_steps=1,
                            resize_method="max")
    assert study.mask_channel() == pytest.approx([sf, 0.0, sf], abs=1e-6)


def test_inpaint_mask_channel_follows_the_user_mask(pipe):
    sf = pipe.vae.config.scaling_factor
    video = np.random.default_rng(0).random((9, H, W, 3)).astype(np.float32)
    mask = np.zeros((H, W), np.uint8)
    mask[:, : W // 2] = 255  # regenerate the left half
    with Recorder(pipe) as rec:
        pipe.inpaint("x", video, mask, num_inference_steps=1)
    channel = rec.calls[0]["inpaint_latents"][-1, :, 0]  # (F_lat, h, w)
    assert torch.all(channel[:, :, : W // 16] == 0)
    assert torch.allclose(channel[:, :, W // 16 :], torch.tensor(sf))


def test_video_to_video_starts_at_the_timestep_strength_implies(pipe):
    video = np.random.default_rng(0).random((9, H, W, 3)).astype(np.float32)
    with Recorder(pipe) as rec:
        pipe.video_to_video("x", video, strength=0.7, num_inference_steps=10)
    pipe.scheduler.set_timesteps(10)
    expected = pipe.scheduler.timesteps[3:]  # 7 of 10 steps
    got = torch.stack([c["timestep"][0] for c in rec.calls])
    assert torch.equal(got, expected)
    assert torch.all(rec.calls[0]["inpaint_latents"] == 0)  # everything regenerated


def test_same_seed_gives_identical_bits(pipe):
    a = pipe("a blue square", num_frames=5, height=H, width=W, num_inference_steps=2, generator=gen(7)).frames
    b = pipe("a blue square", num_frames=5, height=H, width=W, num_inference_steps=2, generator=gen(7)).frames
    c = pipe("a blue square", num_frames=5, height=H, width=W, num_inference_steps=2, generator=gen(8)).frames
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_sampler_runs(sampler):
    p = CogVideoXFunPipeline(**build_components("tiny")).set_sampler(sampler)
    p.set_progress_bar_config(disable=True)
    assert p.sampler == sampler
    frames = p("x", num_frames=5, height=32, width=32, num_inference_steps=3, generator=gen()).frames
    assert frames.shape == (1, 5, 32, 32, 3) and np.isfinite(frames).all()


def test_output_types(pipe):
    kw = dict(num_frames=5, height=32, width=32, num_inference_steps=1)
    assert pipe("x", output_type="latent", generator=gen(), **kw).frames.shape == (1, 2, 16, 4, 4)
    pt = pipe("x", output_type="pt", generator=gen(), **kw).frames
    npy = pipe("x", output_type="np", generator=gen(), **kw).frames
    assert pt.shape == (1, 5, 3, 32, 32)
    np.testing.assert_allclose(pt.permute(0, 1, 3, 4, 2).numpy(), npy, atol=1e-6)
    pil = pipe("x", output_type="pil", generator=gen(), **kw).frames
    assert len(pil[0]) == 5 and pil[0][0].size == (32, 32)


def test_save_load_round_trip_gives_the_same_output(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["transformer"][1] == "CogVideoXFunTransformer3DModel"
    assert (tmp_path / "transformer" / "diffusion_pytorch_model.safetensors").exists()
    assert not list(tmp_path.rglob("*.bin"))  # safetensors only
    loaded = CogVideoXFunPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    kw = dict(num_frames=5, height=32, width=32, num_inference_steps=2)
    a = pipe("a red circle", generator=gen(3), **kw).frames
    b = loaded("a red circle", generator=gen(3), **kw).frames
    assert np.array_equal(a, b)


def test_loads_released_layout_naming_diffusers_classes(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    index["_class_name"] = "CogVideoXPipeline"
    index["transformer"] = ["diffusers", "CogVideoXTransformer3DModel"]
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    config = json.loads((tmp_path / "transformer" / "config.json").read_text())
    config["_class_name"] = "CogVideoXTransformer3DModel"
    (tmp_path / "transformer" / "config.json").write_text(json.dumps(config))
    loaded = CogVideoXFunPipeline.from_pretrained(tmp_path)
    assert type(loaded.transformer).__name__ == "CogVideoXFunTransformer3DModel"


def test_vae_slicing_gives_the_same_video(pipe):
    kw = dict(num_frames=5, height=32, width=32, num_inference_steps=1, num_videos_per_prompt=2)
    a = pipe("x", generator=gen(), **kw).frames
    pipe.vae.enable_slicing()
    try:
        b = pipe("x", generator=gen(), **kw).frames
    finally:
        pipe.vae.disable_slicing()
    np.testing.assert_allclose(a, b, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Long video
# ------------------------------------------------------------------------------------------------


def test_plan_segments_adds_up_and_keeps_4k1():
    plan = plan_segments(60, segment_frames=25, overlap=4)
    assert plan[0] == (25, 0)
    assert sum(length - ov for length, ov in plan) == 60
    assert all((length - 1) % 4 == 0 for length, _ in plan)
    assert all(ov >= 4 for _, ov in plan[1:])


class ConstantPipe:
    """Stands in for the pipeline: segment k is all value k; records each call's mask."""

    def __init__(self):
        self.masks = []

    def __call__(self, prompt, num_frames, height, width, mask_video=None, **kwargs):
        k = len(self.masks)
        self.masks.append(mask_video)
        frames = np.full((1, num_frames, height, width, 3), float(k), np.float32)
        return type("Out", (), {"frames": frames})()


def test_long_video_cross_fades_the_overlap():
    fake = ConstantPipe()
    out = generate_long_video(fake, "x", 14, segment_frames=9, overlap=4, height=16, width=16)
    assert out.shape == (14, 16, 16, 3)
    # segment 0 frames 0..8, segment 1 (9 frames, overlap 4) frames 5..13; blend over frames 5..8
    np.testing.assert_allclose(out[5:9, 0, 0, 0], [0.0, 0.25, 0.5, 0.75])
    assert np.all(out[:5] == 0) and np.all(out[9:] == 1)
    # 13 frames: the last segment keeps 5 previous frames to stay 4k+1 and end exactly at frame 13
    out = generate_long_video(ConstantPipe(), "x", 13, segment_frames=9, overlap=4, height=16, width=16)
    np.testing.assert_allclose(out[4:9, 0, 0, 0], [0.0, 0.2, 0.4, 0.6, 0.8], atol=1e-6)
    assert fake.masks[0] is None  # first segment is plain text-to-video (the reference crashes here)
    assert torch.all(fake.masks[1][:, :, :4] == 0) and torch.all(fake.masks[1][:, :, 4:] == 1)


def test_long_video_with_the_real_pipeline_and_an_end_image(pipe):
    out = generate_long_video(pipe, "a red circle", 21, segment_frames=9, overlap=2, image=image(0, 32, 32),
                              end_image=image(1, 32, 32), num_inference_steps=1, generator=gen())
    assert out.shape == (21, 32, 32, 3) and np.isfinite(out).all()


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------


def test_errors_name_the_fix(pipe, tmp_path):
    with pytest.raises(ValueError, match="4k\\+1 \\(got 8\\); try 5 or 9"):
        pipe("x", num_frames=8, height=32, width=32)
    with pytest.raises(ValueError, match="height must be a multiple of 16 \\(got 30\\); try 16 or 32"):
        pipe("x", num_frames=5, height=30, width=32)
    with pytest.raises(ValueError, match="strength must be in \\(0, 1\\]"):
        pipe("x", num_frames=5, height=32, width=32, strength=1.5)
    with pytest.raises(ValueError, match="needs a video"):
        pipe("x", num_frames=5, height=32, width=32, strength=0.5)
    video = np.zeros((9, 32, 32, 3), np.float32)
    with pytest.raises(ValueError, match="mask has 7 frames but the video has 9"):
        pipe.inpaint("x", video, np.ones((7, 32, 32), np.float32), num_inference_steps=1)
    with pytest.raises(ValueError, match="end_image needs a start image"):
        generate_long_video(pipe, "x", 9, end_image=image())
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        pipe.video_to_video("x", str(empty))
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(ValueError, match="corrupt.mp4"):
        pipe.video_to_video("x", str(corrupt))


def test_start_image_of_another_size_is_fitted_with_a_warning(pipe):
    with pytest.warns(UserWarning, match="resized to cover and centre cropped"):
        out = pipe.image_to_video("x", image(0, 40, 40), height=32, width=48, num_frames=5, num_inference_steps=1)
    assert out.frames.shape == (1, 5, 32, 48, 3)


def test_missing_component_folder(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "vae")
    with pytest.raises(ValueError, match="lacks \\['vae'\\]"):
        CogVideoXFunPipeline.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        CogVideoXFunPipeline.from_pretrained(tmp_path / "nowhere")


def test_size_from_image_picks_the_nearest_bucket():
    assert size_from_image(np.zeros((720, 1280, 3), np.float32), base_size=512) == (384, 672)
    assert size_from_image(np.zeros((100, 100, 3), np.float32), base_size=64) == (64, 64)


def test_mask_images_are_binarised_at_the_references_240(tmp_path):
    from PIL import Image

    from cogfun.pipelines.inputs import as_mask

    pixels = np.array([[0, 128, 200, 239, 240, 255]], np.uint8)
    Image.fromarray(pixels).save(tmp_path / "mask.png")
    assert as_mask(tmp_path / "mask.png").tolist() == [[0, 0, 0, 0, 1, 1]]
    assert as_mask(str(tmp_path / "mask.png"), threshold=128).tolist() == [[0, 1, 1, 1, 1, 1]]
    assert as_mask(Image.fromarray(pixels)).tolist() == [[0, 0, 0, 0, 1, 1]]
    assert as_mask(pixels).tolist() == [[0, 0, 0, 0, 1, 1]]
    soft = np.array([[0.2, 0.7]], np.float32)  # floats are passed on as given (masks.inpaint binarises at 0.5)
    assert as_mask(soft)[0].tolist() == pytest.approx([0.2, 0.7])
    with pytest.raises(ValueError, match="1..255"):
        as_mask(pixels, threshold=0)


def test_video_to_video_starts_from_a_posterior_sample_drawn_with_the_generator():
    from diffusers.utils.torch_utils import randn_tensor

    torch.set_num_threads(1)
    pipe = CogVideoXFunPipeline(**build_components("tiny", seed=0))
    pipe.set_progress_bar_config(disable=True)
    video = torch.rand(1, 3, 5, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    run = lambda mode, seed: pipe.video_to_video(  # noqa: E731
        "a red circle", video, strength=0.7, num_inference_steps=2, output_type="latent", video_latents=mode,
        generator=torch.Generator().manual_seed(seed)).frames
    sample, again, mode = run("sample", 3), run("sample", 3), run("mode", 3)
    assert torch.equal(sample, again) and not torch.allclose(sample, mode)
    # the start: the posterior mean + std * noise drawn first from the generator, as diffusers' latent_dist.sample
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        dist = pipe.vae.encode(video).latent_dist
        expected = (dist.mean + dist.std * randn_tensor(dist.mean.shape, generator=g)) * pipe.vae.config.scaling_factor
        got = pipe.encode_video(video, sample=True, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, expected.permute(0, 2, 1, 3, 4), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="video_latents"):
        run("mean", 3)


class GuidedPredictions:
    """Record the transformer's [unconditional, conditional] outputs and what the scheduler was given.

    A tiny random transformer hardly listens to its text, so the conditional half is made to differ: it is
    scaled by 3 (what a model that follows its prompt looks like to guidance: a different prediction)."""

    def __init__(self, pipe):
        self.pipe, self.outputs, self.given = pipe, [], []

    def __enter__(self):
        self.forward, self.step = self.pipe.transformer.forward, self.pipe.scheduler.step

        def forward(*args, **kwargs):
            out = self.forward(*args, **kwargs)
            uncond, cond = out[0].chunk(2)
            out = (torch.cat([uncond, 3 * cond]),) + tuple(out[1:])
            self.outputs.append(out[0].float().clone())
            return out

        def step(model_output, *args, **kwargs):
            self.given.append(model_output.clone())
            return self.step(model_output, *args, **kwargs)

        self.pipe.transformer.forward, self.pipe.scheduler.step = forward, step
        return self

    def __exit__(self, *exc):
        self.pipe.transformer.forward, self.pipe.scheduler.step = self.forward, self.step


@pytest.mark.parametrize("rescale", [0.7, 1.0])
def test_guidance_rescale_mixes_the_guided_prediction_with_its_rescaled_self(pipe, rescale):
    g = 4.0
    with GuidedPredictions(pipe) as rec:
        pipe("a red circle", num_frames=5, height=H, width=W, num_inference_steps=2, guidance_scale=g,
             guidance_rescale=rescale, generator=gen())
    for out, given in zip(rec.outputs, rec.given, strict=True):
        uncond, cond = out.chunk(2)
        guided = uncond + g * (cond - uncond)
        ratio = cond.std(dim=(1, 2, 3, 4), keepdim=True) / guided.std(dim=(1, 2, 3, 4), keepdim=True)
        assert ratio.max() < 0.9  # guidance 4 widens the prediction; the rescale has something to do
        expected = rescale * guided * ratio + (1 - rescale) * guided
        torch.testing.assert_close(given, expected, rtol=1e-5, atol=1e-6)
        if rescale == 1.0:  # fully rescaled: the text-conditioned prediction's spread, per video
            torch.testing.assert_close(given.std(dim=(1, 2, 3, 4)), cond.std(dim=(1, 2, 3, 4)), rtol=1e-4, atol=0)


def test_guidance_rescale_zero_is_plain_guidance_and_the_default(pipe):
    kwargs = dict(num_frames=5, height=H, width=W, num_inference_steps=2, guidance_scale=4.0, output_type="latent")
    with GuidedPredictions(pipe):
        plain = pipe("a red circle", generator=gen(), **kwargs).frames
        zero = pipe("a red circle", guidance_rescale=0.0, generator=gen(), **kwargs).frames
        rescaled = pipe("a red circle", guidance_rescale=0.7, generator=gen(), **kwargs).frames
    torch.testing.assert_close(plain, zero, rtol=0, atol=0)
    assert (plain - rescaled).abs().max() > 1e-2


@pytest.mark.parametrize("value", [-0.1, 1.5, "0.7", True, float("nan")])
def test_guidance_rescale_outside_zero_one_is_refused(pipe, value):
    with pytest.raises(ValueError, match=r"guidance_rescale \(--guidance-rescale\) must be a number in \[0, 1\]"):
        pipe("a red circle", num_frames=5, height=H, width=W, num_inference_steps=1, guidance_rescale=value)
