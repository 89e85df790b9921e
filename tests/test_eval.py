"""Tests for cogfun.eval: metrics (values), held-out sets, EvalConfig, evaluate() and `cogfun eval`."""

import argparse
import json
import math
import types
import time
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from cogfun.data.toy import HELD_OUT_PHOTOS, TRAIN_PHOTOS, ToyClipSpec, clip_seed, render_clip
from cogfun.eval import metrics as M
from cogfun.eval.benchmark import (
    EvalConfig,
    apply_overrides,
    check_targets,
    compare_metrics,
    evaluate,
    format_table,
    headline,
    held_out_clips,
    held_out_photo_clips,
    held_out_shape_specs,
    object_pixels,
    resolve_config,
    summarise,
)
from cogfun.eval.command import add_eval_parser, new_run_folder
from cogfun.pipelines import CogVideoXFunPipeline, generate_long_video
from cogfun.pipelines.components import build_components

# ------------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------------


def test_psnr_of_identical_images_is_the_cap():
    image = np.random.default_rng(0).random((8, 8, 3))
    assert M.psnr(image, image) == M.PSNR_CAP_DB == 100.0


def test_psnr_of_known_noise_matches_the_formula():
    clean = np.full((4, 6, 6, 3), 0.5)
    signs = np.where(np.random.default_rng(0).random(clean.shape) < 0.5, -1.0, 1.0)
    assert M.psnr(clean + 0.1 * signs, clean) == pytest.approx(20.0)  # MSE 0.01 -> 10 log10(1 / 0.01)
    assert M.psnr(clean * 255 + 25.5 * signs, clean * 255, data_range=255) == pytest.approx(20.0)
    noisy = np.clip(clean + np.random.default_rng(1).normal(0, 0.05, clean.shape), 0, 1)
    mse = np.mean((noisy - clean) ** 2)
    assert M.psnr(noisy, clean) == pytest.approx(10 * np.log10(1 / mse))
    assert M.psnr(noisy, clean) == pytest.approx(peak_signal_noise_ratio(clean, noisy, data_range=1.0))


def test_first_and_last_frame_psnr_and_shape_check():
    video = np.zeros((5, 4, 4, 3))
    video[-1] = 0.1
    assert M.first_frame_psnr(video, np.zeros((4, 4, 3))) == 100.0
    assert M.last_frame_psnr(video, np.zeros((4, 4, 3))) == pytest.approx(20.0)
    assert M.psnr_per_frame(video, video) == [100.0] * 5
    with pytest.raises(ValueError, match="same size"):
        M.psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))


def test_temporal_smoothness_of_ramps_frozen_and_flicker():
    ramp = np.broadcast_to(np.arange(6)[:, None, None, None] * 0.1, (6, 4, 4, 3))  # +0.1 per frame
    frozen = np.full((6, 4, 4, 3), 0.3)
    flicker = np.where(np.arange(6) % 2 == 0, 0.0, 0.2)[:, None, None, None] * np.ones((6, 4, 4, 3))
    assert M.temporal_difference(ramp) == pytest.approx(0.1)
    assert M.temporal_jitter(ramp) == pytest.approx(0.0, abs=1e-12)
    assert M.temporal_difference(frozen) == 0.0
    assert M.temporal_jitter(flicker) == pytest.approx(0.4)  # |x[t+1] - 2 x[t] + x[t-1]| = 2 * 0.2
    out = M.temporal_smoothness(flicker, reference=ramp)
    assert out["temporal_diff_ratio"] == pytest.approx(2.0)
    assert out["jitter_ref"] == pytest.approx(0.0, abs=1e-12) and math.isnan(out["jitter_ratio"])


def _moving_clip(num_frames=13):
    spec = ToyClipSpec("shape", "right", "grey", "circle", "red", size=0.3, speed=0.8)
    return render_clip(spec, 32, 32, num_frames, seed=3).astype(np.float64)


def test_seam_metric_sees_a_jump_at_the_seam():
    clip = _moving_clip()
    jumped = clip.copy()
    jumped[7:] += 0.2  # a brightness jump between frames 6 and 7
    smooth, jump = M.seam_continuity(clip, [7]), M.seam_continuity(jumped, [7])
    assert smooth["ratio"] == pytest.approx(1.0, abs=0.2)  # uniform motion: seams look like any pair
    assert jump["ratio"] > 5 * smooth["ratio"]
    assert jump["within"] == pytest.approx(smooth["within"])  # the jump only changes the seam pair
    assert M.seam_continuity(jumped, [(7, 3)])["across"] < jump["across"]  # a wider seam dilutes the jump
    with pytest.raises(ValueError, match="boundary"):
        M.seam_continuity(clip, [13])


def test_long_video_seams_are_where_segments_cross_fade():
    """Segments of constant value k: frame differences are nonzero exactly inside the seam windows."""
    assert M.long_video_seams(13, 5, 2) == [(5, 2), (8, 2), (11, 3)]
    assert M.long_video_seams(5, 5, 2) == []

    calls = []

    def fake_pipe(prompt, num_frames, height, width, **kwargs):
        calls.append(num_frames)
        return SimpleNamespace(frames=np.full((1, num_frames, height, width, 3), len(calls) / 10, np.float32))

    frames = generate_long_video(fake_pipe, "x", 13, segment_frames=5, overlap=2, height=8, width=8)
    diffs = M.frame_differences(frames)  # pair (t - 1, t) is entry t - 1
    in_window = np.zeros(12, bool)
    for boundary, width in M.long_video_seams(13, 5, 2):
        in_window[boundary - width:boundary] = True
    assert (diffs[in_window] > 0).all() and (diffs[~in_window] == 0).all()
    seam = M.seam_continuity(frames, M.long_video_seams(13, 5, 2))
    assert seam["within"] == 0 and seam["across"] > 0 and math.isnan(seam["ratio"])


# ------------------------------------------------------------------------------------------------
# Held-out sets and the config
# ------------------------------------------------------------------------------------------------


def test_held_out_sets_are_balanced_deterministic_and_unseen():
    shapes = held_out_shape_specs(60)
    assert set(Counter(c.spec.colour for c in shapes).values()) == {10}
    assert set(Counter(c.spec.shape for c in shapes).values()) == {15}
    assert set(Counter(c.spec.direction for c in shapes).values()) == {12}
    assert shapes == held_out_shape_specs(60)
    training_seeds = {clip_seed(s, i) for s in range(4) for i in range(2000)}
    clips = held_out_clips(40) + shapes
    assert not training_seeds & {c.render_seed for c in clips}
    assert all(c.spec.photo in (None, *TRAIN_PHOTOS) for c in held_out_clips(40))
    photos = held_out_photo_clips()
    assert {c.spec.photo for c in photos} == set(HELD_OUT_PHOTOS) and len(photos) == 8
    assert photos[0].caption == "a camera pan to the left across a photo of a cup of coffee"


def test_config_overrides_are_typed_and_checked():
    cfg = apply_overrides(EvalConfig(), ["num_prompts=3", "seeds=[1, 2]", "subsets=vae", "height=32", "width=48",
                                         "unseen_size=[64, 80]", "guidance=1"])
    assert (cfg.num_prompts, cfg.seeds, cfg.subsets, cfg.height, cfg.unseen_size) == (3, (1, 2), ("vae",), 32, (64, 80))
    assert cfg.guidance == 1.0 and isinstance(cfg.guidance, float)
    assert apply_overrides(cfg, ["height=null", "width=null"]).height is None
    for bad, match in [("steps_=3", "unknown eval config keys"), ("num_prompts=two", "must be int"),
                       ("subsets=[vae, nope]", "subsets must be"), ("prompt_seed=0", "prompt_seed must be >= 10000"),
                       ("num_frames=8", "4k\\+1"), ("height=30", "multiples of 16"), ("unseen_size=[64]", "2 items")]:
        with pytest.raises(ValueError, match=match):
            apply_overrides(cfg, [bad])
    with pytest.raises(ValueError, match="unknown eval suite"):
        resolve_config("no-such-suite")


def test_compare_metrics_and_targets():
    measured = {"vae/psnr": 31.0, "t2v/colour_acc": 0.5, "long/seam_ratio": float("nan")}
    assert compare_metrics(measured, {"vae/psnr": 31.2, "long/seam_ratio": None}, atol=0.5) == []
    problems = compare_metrics(measured, {"vae/psnr": 29.0, "t2v/colour_acc": 0.5, "i2v/x": 1.0}, atol=0.5)
    assert len(problems) == 2 and problems[0].startswith("vae/psnr") and "missing" in problems[1]
    targets = check_targets(measured)
    assert targets["vae/psnr"]["met"] and not targets["t2v/colour_acc"]["met"]
    assert targets["t2v/colour_acc"]["gap"] == pytest.approx(-0.4)


# ------------------------------------------------------------------------------------------------
# The benchmark on a random tiny pipeline
# ------------------------------------------------------------------------------------------------

SMOKE = ["pos_embed_modes=[interpolate, truncate]", "photos=[coffee]"]  # fewer calls: a 2-core CPU


@pytest.fixture(scope="module")
def pipe():
    p = CogVideoXFunPipeline(**build_components("tiny"))
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def smoke(pipe):
    return evaluate(pipe, resolve_config("smoke", SMOKE), progress=False)


def test_evaluate_returns_finite_metrics_with_the_expected_keys(pipe, smoke):
    metrics = smoke["metrics"]
    expected = ["vae/psnr", "vae/psnr_min", "i2v/first_frame_psnr", "i2v/temporal_diff_ratio",
                "start_end/first_frame_psnr", "start_end/last_frame_psnr", "t2v/colour_acc", "t2v/shape_acc",
                "t2v/direction_acc", "t2v/all_acc", "long/seam_ratio", "photos/first_frame_psnr"]
    for mode in ("interpolate", "truncate"):
        expected += [f"unseen/{mode}/i2v/first_frame_psnr", f"unseen/{mode}/t2v/colour_acc",
                     f"unseen/{mode}/i2v/first_frame_psnr_vs_trained"]
    for key in expected:
        assert key in metrics and math.isfinite(metrics[key]), key
    for key, value in metrics.items():
        if "psnr" in key and not key.endswith(("_vs_trained", "_se")):
            assert 0 < value < 100, key
        if key.endswith("_acc"):
            assert value in (0.0, 0.5, 1.0), key  # 2 prompts x 1 seed (unseen: 1 prompt)
            # two items: s.e. = |a - b| / 2; one item (unseen): undefined
            assert metrics[f"{key}_se"] in (0.0, 0.5) if key.count("/") == 1 else math.isnan(metrics[f"{key}_se"])
    assert not any(k.startswith("unseen/extrapolate") for k in metrics)
    # records: 2 vae + 2 i2v + 2 start_end + 2 t2v + 2 inpaint + 1 long + 2 modes x (1 + 1) unseen + 1 photo
    assert Counter(r["subset"] for r in smoke["records"]) == dict(vae=2, i2v=2, start_end=2, t2v=2, inpaint=2,
                                                                   long=1, unseen=4, photos=1)
    # the default world is shapes over plain backgrounds: every shared clip can be read by the detector
    assert all(r["spec"]["kind"] == "shape" and not r["spec"]["background"].startswith("photo:")
               for r in smoke["records"] if r["subset"] in ("vae", "i2v", "start_end", "inpaint"))
    for key in ("t2v/present_acc", "i2v/last_present_acc", "i2v/direction_acc", "inpaint/kept_psnr",
                "inpaint/object_in_hole_acc"):
        assert key in metrics and math.isfinite(metrics[key]), key
    assert metrics["i2v/n"] == 2 and smoke["size"] == [32, 32]
    # the pipeline is left as it was
    assert pipe.transformer.config.pos_embed_mode == "interpolate" and pipe.sampler == "ddim"


def test_vae_psnr_is_the_psnr_of_an_encode_decode_round_trip(pipe, smoke):
    record = next(r for r in smoke["records"] if r["subset"] == "vae")
    clip = render_clip(ToyClipSpec.from_dict(record["spec"]), 32, 32, 5, record["render_seed"])
    pixels = torch.from_numpy(clip).permute(3, 0, 1, 2)[None] * 2 - 1
    with torch.no_grad():
        recon = pipe.decode_latents(pipe.encode_video(pixels))
    recon = ((recon[0].clamp(-1, 1) + 1) / 2).permute(1, 2, 3, 0).numpy()
    assert record["psnr"] == pytest.approx(M.psnr(recon, clip), abs=1e-6)
    mask = object_pixels(clip, ToyClipSpec.from_dict(record["spec"]))
    assert 0 < mask.mean() < 0.5  # the object, not the background
    assert record["object_psnr"] == pytest.approx(M.psnr(recon[mask], clip[mask]), abs=1e-6)
    for key in ("present_acc", "colour_acc", "shape_acc", "direction_acc"):
        assert record[key] in (0.0, 1.0) and f"vae/{key}" in smoke["metrics"]
    assert smoke["metrics"]["vae/psnr"] == pytest.approx(np.mean([r["psnr"] for r in smoke["records"]
                                                                  if r["subset"] == "vae"]))


def test_evaluate_is_deterministic_for_a_config(pipe, smoke):
    again = evaluate(pipe, resolve_config("smoke", ["subsets=[i2v, t2v]", "num_prompts=1"]), progress=False)
    first = [r for r in smoke["records"] if r["subset"] in ("i2v", "t2v") and r["index"] == 0]
    assert again["records"] == first


def test_unseen_size_must_differ_from_the_eval_size(pipe):
    with pytest.raises(ValueError, match="never trained on"):
        evaluate(pipe, resolve_config("smoke", ["subsets=unseen", "height=null", "width=null",
                                                "unseen_size=[64, 64]"]), progress=False)


# ------------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------------


def test_eval_command_writes_a_new_run_folder_each_time(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers(dest="command"))
    argv = ["eval", "--model", "tiny", "--out", str(tmp_path), "--suite", "smoke", "--subset", "vae",
            "--set", "num_prompts=1", "--quiet"]
    for _ in range(2):
        args = parser.parse_args(argv)
        assert args.func(args) == 0
    folders = sorted(tmp_path.iterdir())
    assert len(folders) == 2 and all("-smoke" in f.name for f in folders)
    runs = [json.loads((f / "metrics.json").read_text()) for f in folders]
    assert runs[0]["metrics"] == runs[1]["metrics"]  # deterministic
    run = runs[0]
    per_item = ("psnr", "first_frame_psnr", "object_psnr", "present_acc", "colour_acc", "shape_acc", "direction_acc")
    assert set(run["metrics"]) == {f"vae/{k}{se}" for k in per_item for se in ("", "_se")} | {"vae/psnr_min", "vae/n"}
    assert run["metrics"]["vae/psnr_se"] is None  # one item: no standard error (NaN, written as null)
    assert run["model"] == "tiny" and run["config"]["subsets"] == ["vae"] and run["config"]["num_prompts"] == 1
    assert run["weights_sha256"] == {}  # a preset: no files
    assert "commit" in run and "dirty" in run and len(run["records"]) == 1
    assert run["targets"]["vae/psnr"]["met"] is False
    assert resolve_config(folders[0] / "config.yaml") == resolve_config("smoke", ["num_prompts=1", "subsets=vae"])
    out = capsys.readouterr().out
    assert "| vae/psnr |" in out and "metrics.json" in out


def test_read_hole_applies_the_benchmark_rule():
    from cogfun.eval.benchmark import held_out_shape_specs, inpaint_box, read_hole

    clip = next(c for c in held_out_shape_specs(8) if c.spec.direction != "still")
    frames = clip.render(64, 96, 17)
    box = inpaint_box(clip, 64, 96, 17)
    hole = read_hole(frames, box, clip.spec.colour)  # the true clip fills its own hole
    assert hole["found"] and hole["passed"] and hole["right_colour"] and hole["seen"] == 1.0 and hole["inside"] == 1.0
    other = next(c for c in ("red", "green", "blue", "yellow") if c != clip.spec.colour)
    assert read_hole(frames, box, other)["passed"] is False and read_hole(frames, box, other)["found"]
    gone = frames.copy()
    gone[5:] = gone[0, 0, 0]  # the object leaves after 5 of 17 frames: seen in 29% < 75%
    faded = read_hole(gone, box, clip.spec.colour)
    assert faded["found"] and faded["right_colour"] and faded["seen"] == pytest.approx(5 / 17) and not faded["passed"]
    top, bottom, left, right = box
    outside = (0, 64, 0, left) if left > 20 else (0, 64, right, 96)  # a hole the object never enters
    assert read_hole(frames, outside, clip.spec.colour)["passed"] is False
    empty = np.broadcast_to(frames[0, 0, 0], frames.shape).copy()
    assert read_hole(empty, box, clip.spec.colour) == dict(found=False, colour=None, right_colour=False, seen=0.0,
                                                           inside=0.0, passed=False)


def test_a_run_records_the_sha256_of_the_weights_it_measured(tmp_path):
    import hashlib

    from cogfun.eval.command import weights_sha256
    from cogfun.pipelines.components import write_initial_model

    folder = write_initial_model(tmp_path / "model", "tiny")
    digests = weights_sha256(folder)
    assert {"transformer/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"} <= set(digests)
    path = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    assert digests["transformer/diffusion_pytorch_model.safetensors"] == hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_bytes(path.read_bytes() + b" ")  # any change to the weights changes the record
    assert weights_sha256(folder)["transformer/diffusion_pytorch_model.safetensors"] != digests[
        "transformer/diffusion_pytorch_model.safetensors"]
    assert weights_sha256(tmp_path / "missing") == {}


def test_summarise_reports_means_with_standard_errors_and_the_table_shows_them():
    records = [{"colour_acc": v, "first_frame_psnr": p} for v, p in ((1.0, 20.0), (0.0, 22.0), (1.0, 24.0),
                                                                      (1.0, float("nan")))]
    out = summarise(records, "t2v", ("colour_acc", "first_frame_psnr"))
    assert out["t2v/colour_acc"] == 0.75 and out["t2v/n"] == 4
    assert out["t2v/colour_acc_se"] == pytest.approx(0.25)  # std(1, 0, 1, 1; ddof 1) = 0.5, / sqrt(4)
    assert out["t2v/first_frame_psnr"] == 22.0  # the NaN item is left out of mean and s.e.
    assert out["t2v/first_frame_psnr_se"] == pytest.approx(2.0 / math.sqrt(3))
    table = format_table(headline(out), {"t2v/colour_acc": 0.9})
    assert "| t2v/colour_acc | 0.75 | 0.25 | >= 0.9 | no |" in table
    assert "colour_acc_se |" not in table and "| t2v/first_frame_psnr | 22 | 1.155 |  |  |" in table


def test_run_folders_never_collide(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda fmt: "20260101-000000")
    names = [new_run_folder(tmp_path / "runs", "quick").name for _ in range(3)]
    assert names == ["20260101-000000-quick", "20260101-000000-quick-2", "20260101-000000-quick-3"]


def test_a_mode_that_cannot_serve_the_unseen_grid_is_recorded_not_fatal():
    from cogfun.eval.benchmark import evaluate_suite
    from cogfun.pipelines.components import load_pipeline

    pipe = load_pipeline("tiny")
    pipe.set_progress_bar_config(disable=True)
    overrides = ["subsets=[unseen]", "pos_embed_modes=[truncate, interpolate]", "unseen_size=[128, 128]",
                 "num_frames=17"]
    result = evaluate_suite(pipe, "smoke", overrides)
    metrics, errors = result["metrics"], result["errors"]
    assert "base table holds 208" in errors["unseen/truncate"]  # 5 x 8 x 8 = 320 positions needed
    assert "unseen/interpolate/i2v/first_frame_psnr" in metrics
    assert all(isinstance(v, (int, float)) for v in metrics.values())  # errors stay out of the numbers
    assert not any(key.startswith("unseen/truncate/") for key in metrics)
    assert format_table(headline(metrics))  # the results table can be written


def test_inpaint_box_covers_the_whole_track_and_an_oracle_scores_perfectly():
    from cogfun.eval.benchmark import EvalConfig, _run_inpaint, held_out_shape_specs, inpaint_box

    clip = held_out_shape_specs(3)[1]
    reference = clip.render(64, 96, 9)
    top, bottom, left, right = inpaint_box(clip, 64, 96, 9)
    outside = np.ones((64, 96), bool)
    outside[top:bottom, left:right] = False
    background = reference[0, 0, 0]
    assert np.allclose(reference[:, outside], background)  # nothing of the object outside the box
    assert outside.sum() > 0

    class Oracle:  # returns the clip itself: kept region perfect, named object inside the hole
        _execution_device = "cpu"

        def inpaint(self, prompt, video, mask, **kwargs):
            assert prompt == clip.caption and mask.shape == (64, 96) and mask[top, left] == 1
            return types.SimpleNamespace(frames=[reference])

    class Blank(Oracle):  # fills the hole with background: the object is lost
        def inpaint(self, prompt, video, mask, **kwargs):
            frames = reference.copy()
            frames[:, ~outside] = background
            return types.SimpleNamespace(frames=[frames])

    config = EvalConfig(num_frames=9, seeds=(10_000,))
    bar = types.SimpleNamespace(update=lambda: None)
    for pipe, hole in ((Oracle(), 1.0), (Blank(), 0.0)):
        runner = types.SimpleNamespace(pipe=pipe, common={})
        record = _run_inpaint(runner, config, [clip], (64, 96), bar)[0]
        assert record["object_in_hole_acc"] == hole
        assert record["kept_psnr"] == pytest.approx(100.0)  # the PSNR cap: identical pixels


def test_t2v_and_i2v_records_say_what_the_detector_read():
    from cogfun.eval.benchmark import EvalConfig, _run_i2v, _run_t2v, held_out_shape_specs

    clip = held_out_shape_specs(4)[2]
    reference = clip.render(64, 96, 9)

    class Oracle:  # draws the held-out clip itself
        def text_to_video(self, prompt, height, width, num_frames, seed):
            return reference

        def image_to_video(self, clip_frames, prompt, seed, end):
            return reference

    config = EvalConfig(num_frames=9, seeds=(10_000,))
    bar = types.SimpleNamespace(update=lambda: None)
    t2v = _run_t2v(Oracle(), config, [clip], (64, 96), "t2v", bar)[0]
    i2v = _run_i2v(Oracle(), config, [clip], (64, 96), "i2v", False, bar)[0]
    for record in (t2v, i2v):
        assert (record["detected_colour"], record["detected_shape"], record["detected_direction"]) == (
            clip.spec.colour, clip.spec.shape, clip.spec.direction)
        assert record["seen_frames"] == 1.0 and 0.4 < record["area_ratio"] < 1.1
        assert record["present_acc"] == record["direction_acc"] == 1.0
    assert t2v["all_acc"] == 1.0 and "all_acc" not in i2v


def test_a_lossless_vae_scores_the_cap_and_a_blurring_one_loses_the_object_first():
    from scipy import ndimage

    from cogfun.eval.benchmark import EvalConfig, _run_vae, held_out_shape_specs

    class RoundTrip:  # encode = identity; decode = identity or a blur of each frame
        def __init__(self, blur):
            self.blur = blur

        def encode_video(self, pixels):
            return pixels

        def decode_latents(self, latents):
            if not self.blur:
                return latents
            return torch.from_numpy(ndimage.gaussian_filter(latents.numpy(), (0, 0, 0, self.blur, self.blur)))

    clips = held_out_shape_specs(4)
    config = EvalConfig(num_frames=9)
    bar = types.SimpleNamespace(update=lambda: None)
    lossless = _run_vae(RoundTrip(0), config, clips, (64, 96), bar)
    for record in lossless:
        assert record["psnr"] == record["object_psnr"] == pytest.approx(100.0)
        assert record["present_acc"] == record["colour_acc"] == record["shape_acc"] == record["direction_acc"] == 1.0
    blurred = _run_vae(RoundTrip(2.0), config, clips, (64, 96), bar)
    for record in blurred:  # a blur spares the flat background and eats the object's pixels
        assert record["object_psnr"] < record["psnr"] - 3
