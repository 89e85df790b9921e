"""A catalogue of bad inputs: each is refused with one ``ValueError`` (or ``error:`` line, exit 2) that names the
rule and the fix, before any model loads, and leaves no file behind.

Across the Python API, ``cogfun generate``, ``prepare``, ``cache``, ``train``, ``eval`` and ``experiment``.
Each row is (what is given, a regex of the key words of the message).
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from cogfun.cli import main
from cogfun.data.video_io import read_video_frames, write_image, write_video
from cogfun.pipelines import components
from cogfun.pipelines.components import build_components, load_pipeline
from cogfun.pipelines.inputs import size_from_image
from cogfun.pipelines.pipeline import CogVideoXFunPipeline

# ------------------------------------------------------------------------------------------------
# Shared inputs
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Good and bad input files, made once: images, clips, masks, broken files and model folders."""
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    write_image(d / "start.png", rng.random((32, 32, 3)).astype(np.float32))
    write_video(d / "anim.gif", rng.random((3, 32, 32, 3)).astype(np.float32), fps=8)
    write_video(d / "in.mp4", rng.random((9, 32, 32, 3)).astype(np.float32), fps=8)
    write_image(d / "black.png", np.zeros((32, 32, 3), np.float32))
    (d / "garbage.png").write_bytes(rng.bytes(512))
    write_image(d / "odd.png", rng.random((30, 50, 3)).astype(np.float32))  # not multiples of 16
    write_video(d / "odd.webm", rng.random((5, 30, 50, 3)).astype(np.float32), fps=8)
    (d / "garbage.mp4").write_bytes(rng.bytes(2048))
    (d / "empty.mp4").write_bytes(b"")
    (d / "afile").write_text("a regular file")
    (d / "exists.mp4").write_bytes(b"keep me")
    (d / "src").mkdir()
    (d / "bad.yaml").write_text("kind: transformer\nmax_steps: [1\nname: x\n")
    (d / "list.yaml").write_text("- 1\n- 2\n")
    (d / "ok.yaml").write_text("kind: transformer\n")
    (d / "bad.json").write_text('[{"file_path": "a.mp4",\n  "text": }]')
    (d / "empty.json").write_text("[]")
    (d / "meta.json").write_text('[{"file_path": "missing.mp4", "text": "a red circle", "type": "video"}]')
    (d / "captions_bad.json").write_text("{not json")
    model = d / "model"
    CogVideoXFunPipeline(**build_components("tiny")).save_pretrained(model)
    truncated = d / "truncated"
    shutil.copytree(model, truncated)
    weights = truncated / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    bad_config = d / "badconfig"
    shutil.copytree(model, bad_config)
    (bad_config / "vae" / "config.json").write_text('{"in_channels": 3,,}')
    return d


@pytest.fixture(scope="module")
def pipe(one_torch_thread):
    pipe = load_pipeline("tiny")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def fmt(items, d: Path) -> list:
    return [item.format(d=d) if isinstance(item, str) else item for item in items]


# ------------------------------------------------------------------------------------------------
# The Python API
# ------------------------------------------------------------------------------------------------

SMALL = dict(height=32, width=32, num_frames=5, num_inference_steps=1)
NAN_LATENTS = torch.full((1, 2, 16, 4, 4), float("nan"))

API = [
    ("t2v", dict(num_frames=0), r"num_frames must be 4k\+1 and >= 1 \(got 0\)"),
    ("t2v", dict(num_frames=8), r"4k\+1 \(got 8\); try 5 or 9"),
    ("t2v", dict(num_frames=-3), r"4k\+1 and >= 1 \(got -3\)"),
    ("t2v", dict(num_frames=5.0), r"num_frames must be a whole number"),
    ("t2v", dict(height=0), r"height must be a positive multiple of 16 \(got 0\)"),
    ("t2v", dict(height=-32), r"height must be a positive multiple of 16 \(got -32\)"),
    ("t2v", dict(width=33), r"width must be a multiple of 16 \(got 33\); try 32 or 48"),
    ("t2v", dict(num_inference_steps=0), r"num_inference_steps .* whole number >= 1 \(got 0\)"),
    ("t2v", dict(num_inference_steps=2.5), r"num_inference_steps .* whole number >= 1 \(got 2.5\)"),
    ("t2v", dict(guidance_scale=float("nan")), r"guidance_scale .* finite number >= 1 \(got nan\)"),
    ("t2v", dict(guidance_scale=float("inf")), r"guidance_scale .* finite"),
    ("t2v", dict(guidance_scale=0.5), r"guidance_scale .* must be >= 1 \(got 0.5\); 1 switches"),
    ("t2v", dict(strength=0.0), r"strength must be in \(0, 1\]"),
    ("t2v", dict(strength=1.5), r"strength must be in \(0, 1\]"),
    ("t2v", dict(strength=0.5), r"strength < 1 \(video-to-video\) needs a video"),
    ("t2v", dict(prompt=5), r"prompt must be a string or a list of strings \(got int"),
    ("t2v", dict(prompt=["a red circle", 3]), r"prompt must be a string or a list of strings"),
    ("t2v", dict(prompt=None), r"give a prompt \(text\) or precomputed prompt_embeds"),
    ("t2v", dict(negative_prompt=7), r"negative_prompt must be a string"),
    ("t2v", dict(latents=NAN_LATENTS), r"latents holds 512 NaN or infinite values"),
    ("t2v", dict(prompt=None, prompt_embeds=torch.full((1, 16, 32), float("inf"))),
     r"prompt_embeds holds .* NaN or infinite"),
    ("t2v", dict(output_type="gif"), r"output_type must be one of"),
    ("i2v", dict(image=np.zeros((32, 32), np.float32)), r"\(H, W, 3\).*got shape \(32, 32\).*np.repeat"),
    ("i2v", dict(image="{d}/anim.gif"), r"anim.gif has 3 frames, an image has one"),
    ("i2v", dict(image="{d}/missing.png"), r"image file not found: .*missing.png"),
    ("i2v", dict(image="{d}/garbage.png"), r"could not decode image .*garbage.png"),
    ("i2v", dict(image=np.zeros((30, 30, 3), np.float32), height=None, width=None),
     r"the image is 30x30 .* multiples of 16; pass height=32, width=32"),
    ("v2v", dict(video="{d}/empty.mp4"), r"empty \(0 bytes\)"),
    ("v2v", dict(video="{d}/garbage.mp4"), r"could not decode video .*garbage.mp4"),
    ("v2v", dict(video=np.zeros((3, 32, 32, 3), np.float32), num_frames=5),
     r"the video has 3 frames but num_frames=5; pass num_frames <= 3 \(4k\+1: 1\)"),
    ("v2v", dict(video="{d}/in.mp4", num_inference_steps=1, strength=0.5), r"strength=0.5 with 1 steps leaves no"),
    ("inpaint", dict(mask=np.zeros((32, 32), np.uint8)), r"the mask keeps everything .* paint white \(255\)"),
    ("inpaint", dict(mask="{d}/black.png"), r"the mask keeps everything"),
    ("inpaint", dict(mask=np.zeros((32, 32), np.float32) + 0.2), r"the mask keeps everything"),
]


def _call(pipe, kind: str, kwargs: dict, d: Path):
    kwargs = {k: (v.format(d=d) if isinstance(v, str) and "{d}" in v else v) for k, v in kwargs.items()}
    args = {**SMALL, "prompt": "a red circle"}
    if kind in ("v2v", "inpaint"):
        args.update(video=np.zeros((5, 32, 32, 3), np.float32))
    if kind == "inpaint":
        args.update(mask=np.full((32, 32), 255, np.uint8))
    if kind == "i2v":
        args.update(image=np.zeros((32, 32, 3), np.float32))
    args.update(kwargs)
    if kind == "t2v":
        return pipe(**args)
    if kind == "i2v":
        return pipe.image_to_video(args.pop("prompt"), args.pop("image"), **args)
    if kind == "v2v":
        return pipe.video_to_video(args.pop("prompt"), args.pop("video"), **args)
    return pipe.inpaint(args.pop("prompt"), args.pop("video"), args.pop("mask"), **args)


@pytest.mark.parametrize("kind, kwargs, message", API, ids=[f"api-{i}-{r[0]}" for i, r in enumerate(API)])
def test_the_api_refuses_with_the_rule_and_the_fix(pipe, files, kind, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _call(pipe, kind, kwargs, files)


HELPERS = [
    (lambda d: size_from_image(np.zeros((32, 48, 3)), base_size=0), r"base_size .* whole number >= 16 \(got 0\)"),
    (lambda d: read_video_frames(d / "in.mp4", stride=0), r"stride .* whole number >= 1 \(got 0\)"),
    (lambda d: read_video_frames(d / "in.mp4", stride=2, sample_fps=4), r"either stride .* or sample_fps"),
    (lambda d: read_video_frames(d / "in.mp4", sample_fps=30), r"above the source's 8 fps"),
    (lambda d: read_video_frames(d / "in.mp4", start=9), r"start=9 is past the end of the video \(9 frames\)"),
    (lambda d: read_video_frames(d / "in.mp4", start=-1), r"start .* whole number >= 0"),
    (lambda d: read_video_frames(d / "in.mp4", start=4, num_frames=9), r"has 5 frames from start=4 .* at most 5"),
    (lambda d: write_video(d / "x.avi", np.zeros((2, 8, 8, 3))), r"unknown video extension '.avi'"),
    (lambda d: write_video(d / "x.mp4", np.zeros((2, 8, 8, 3)), fps=0), r"fps must be > 0"),
    (lambda d: load_pipeline(d / "truncated"), r"diffusion_pytorch_model.safetensors is not a complete safetensors"),
    (lambda d: load_pipeline(d / "badconfig"), r"badconfig/vae/config.json is not valid JSON"),
    (lambda d: load_pipeline(d / "nothing-here"), r"does not exist"),
]


@pytest.mark.parametrize("call, message", HELPERS, ids=[f"helper-{i}" for i in range(len(HELPERS))])
def test_helpers_refuse_with_the_rule_and_the_fix(files, call, message):
    with pytest.raises(ValueError, match=message):
        call(files)


# ------------------------------------------------------------------------------------------------
# cogfun generate: refused before the model loads, nothing written
# ------------------------------------------------------------------------------------------------

BASE = ["generate", "--model", "tiny", "--steps", "2", "--num-frames", "5", "--height", "32", "--width", "32"]
VIDEO = ["--video", "{d}/in.mp4"]
NO_SIZE = "<no --height/--width>"  # a row starting with it runs without BASE's size

GENERATE = [
    (["--num-frames", "0"], r"--num-frames must be 4k\+1 and >= 1 \(got 0\)"),
    (["--num-frames", "8"], r"4k\+1 \(got 8\); try 5 or 9"),
    (["--height", "0"], r"--height must be a positive multiple of 16 \(got 0\)"),
    (["--height", "-32"], r"positive multiple of 16 \(got -32\)"),
    (["--width", "50"], r"--width must be a multiple of 16 \(got 50\); try 48 or 64"),
    (["--steps", "0"], r"--steps\) must be a whole number >= 1 \(got 0\)"),
    (["--guidance", "nan"], r"--guidance\) must be a finite number >= 1 \(got nan\)"),
    (["--guidance", "inf"], r"finite number"),
    (["--guidance", "0.5"], r"must be >= 1 \(got 0.5\); 1 switches classifier-free guidance off"),
    (["--guidance-rescale", "1.2"], r"--guidance-rescale\) must be a number in \[0, 1\] \(got 1.2\)"),
    ([*VIDEO, "--strength", "0"], r"strength must be in \(0, 1\]"),
    ([*VIDEO, "--strength", "1.5"], r"strength must be in \(0, 1\]"),
    (["--strength", "0.5"], r"--strength applies to video-to-video; give --video"),
    (["--fps", "0"], r"--fps must be a frame rate > 0 \(got 0.0\)"),
    (["--fps", "-8"], r"--fps must be a frame rate > 0"),
    (["--seed", "-1"], r"seed must be a whole number in \[0, 2\*\*64\)"),
    (["--prompt", "a", "--out", "{d}/x.avi"], r"unknown video extension '.avi'; use one of .mp4, .webm, .gif"),
    (["--out", "{d}/exists.mp4"], r"exists.mp4 exists; choose another --out"),
    (["--out", "{d}/afile/x.mp4"], r"afile is a file, not a folder"),
    (["--image", "{d}/missing.png"], r"--image file not found"),
    (["--image", "{d}/anim.gif"], r"--image .*anim.gif has 3 frames, an image has one; .* --video"),
    (["--image", "{d}/garbage.png"], r"could not decode image"),
    (["--image", "{d}/src"], r"is a folder; give an image file"),
    (["--image", "{d}/start.png", "--end-image", "{d}/missing.png"], r"--end-image file not found"),
    (["--end-image", "{d}/start.png"], r"--end-image needs --image"),
    (["--video", "{d}/missing.mp4"], r"--video file not found"),
    (["--video", "{d}/empty.mp4"], r"empty \(0 bytes\)"),
    (["--video", "{d}/garbage.mp4"], r"could not decode video"),
    ([*VIDEO, "--mask", "{d}/black.png"], r"the mask keeps everything"),
    ([*VIDEO, "--mask", "{d}/missing.png"], r"--mask file not found"),
    (["--mask", "{d}/black.png"], r"--mask needs --video"),
    (["--image", "{d}/start.png", *VIDEO], r"either --image or --video"),
    ([*VIDEO, "--start", "100"], r"start=100 is past the end of the video \(9 frames\)"),
    ([*VIDEO, "--start", "-1"], r"--start\) is the index of the first frame"),
    ([*VIDEO, "--num-frames", "13"], r"ask for at most 9 \(--num-frames\)"),
    ([*VIDEO, "--stride", "0"], r"--stride\) takes every n-th frame, a whole number >= 1"),
    ([*VIDEO, "--sample-fps", "50"], r"sample_fps=50 is above the source's 8 fps"),
    ([*VIDEO, "--sample-fps", "0"], r"--sample-fps\) must be a frame rate > 0"),
    (["--start", "5"], r"pick frames of --video; give --video"),
    ([*VIDEO, "--steps", "1"], r"leaves no denoising step .* --steps to at least 2"),
    (["--image", "{d}/start.png", "--size-from-image", "0"], r"--size-from-image .* >= 16 \(got 0\)"),
    (["--size-from-image", "64"], r"--size-from-image needs --image"),
    (["--mask-threshold", "0"], r"--mask-threshold is an 8-bit value in 1..255"),
    (["--sampler", "heun"], r"unknown sampler 'heun'"),
    ([NO_SIZE, "--image", "{d}/odd.png"],
     r"the image is 30x50 .* multiples of 16; pass height=32, width=48 \(--height 32 --width 48"),
    ([NO_SIZE, "--video", "{d}/odd.webm"], r"the video is 30x50 .* --size-from-image"),
    (["--model", "{d}/nothing-here"], r"neither a model folder nor a preset"),
    (["--model", "{d}/truncated"], r"truncated/transformer/diffusion_pytorch_model.safetensors is not a complete"),
    (["--model", "{d}/badconfig"], r"badconfig/vae/config.json is not valid JSON"),
    (["--long", *VIDEO], r"--long continues from an image or from nothing"),
    (["--long", "--overlap", "0"], r"overlap must be in \[1, segment_frames - 1\)"),
    (["--long", "--num-frames", "0"], r"--num-frames must be >= 1"),
    (["--long", "--segment-frames", "8"], r"--segment-frames must be 4k\+1"),
]


@pytest.fixture()
def no_model_load(monkeypatch):
    """Fail the test if anything loads a model: every refusal must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was refused")

    monkeypatch.setattr(components, "load_pipeline", refuse)


@pytest.mark.parametrize("extra, message", GENERATE, ids=[f"generate-{i}" for i in range(len(GENERATE))])
def test_generate_refuses_before_loading_and_writes_nothing(files, tmp_path, monkeypatch, capsys, no_model_load,
                                                            extra, message):
    monkeypatch.chdir(tmp_path)
    base = [a for a in BASE if a not in ("--height", "--width", "32")] if extra[0] == NO_SIZE else BASE
    argv = fmt([*base, *[e for e in extra if e != NO_SIZE]], files)
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "o.mp4")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert err.count("\n") == 1 and err.startswith("cogfun generate: error: ") and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no video, no config, no run folder


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into read-only folders")
def test_generate_refuses_a_read_only_folder(tmp_path, capsys, no_model_load):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main([*BASE, "--out", str(locked / "o.mp4")]) == 2
        assert "is not writable" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_a_failed_write_leaves_no_run_folder(tmp_path, monkeypatch, capsys):
    import cogfun.data.video_io as video_io

    def broken(*args, **kwargs):
        raise ValueError("could not encode video (disk full)")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(video_io, "write_video", broken)
    assert main(BASE) == 2
    assert "disk full" in capsys.readouterr().err
    assert not (tmp_path / "outputs").exists()


def test_debug_shows_the_traceback(files):
    with pytest.raises(ValueError, match="4k\\+1"):
        main([*BASE, "--num-frames", "8", "--debug"])


# ------------------------------------------------------------------------------------------------
# The other commands
# ------------------------------------------------------------------------------------------------

OTHERS = [
    (["prepare", "{d}/missing", "{out}"], r"SRC .*missing is not a folder"),
    (["prepare", "{d}/afile", "{out}"], r"is not a folder; pass the folder that holds the videos"),
    (["prepare", "{d}/src", "{out}", "--clip-seconds", "-1"], r"clip_seconds must lie in \[min_seconds, max_seconds\]"),
    (["prepare", "{d}/src", "{out}", "--min-seconds", "5", "--max-seconds", "2"], r"need 0 < min_seconds <= max_sec"),
    (["prepare", "{d}/src", "{out}", "--crf", "99"], r"0 <= crf <= 51"),
    (["prepare", "{d}/src", "{out}", "--scene-threshold", "-1"], r"scene_threshold must be > 0"),
    (["prepare", "{d}/src", "{out}", "--motion-min", "30", "--motion-max", "2"], r"motion_min must be <= motion_max"),
    (["prepare", "{d}/src", "{out}", "--captions", "{d}/captions_bad.json"], r"captions_bad.json is not valid JSON"),
    (["cache", "{d}/missing.json", "{out}"], r"metadata file not found"),
    (["cache", "{d}/bad.json", "{out}"], r"metadata .*bad.json is not valid JSON: .* at line 2"),
    (["cache", "{d}/empty.json", "{out}"], r"must hold a non-empty JSON list of clips"),
    (["cache", "{d}/meta.json", "{out}"], r"video file not found: .*missing.mp4"),
    (["cache", "{d}/meta.json", "{out}", "--budget", "0"], r"budget must be a positive token count"),
    (["cache", "{d}/meta.json", "{out}", "--frame-stride", "0"], r"frame_stride must be >= 1"),
    (["cache", "{d}/meta.json", "{out}", "--max-frames", "8"], r"4k\+1 \(got 8\)"),
    (["cache", "{d}/meta.json", "{out}", "--inpaint-masks", "-1"], r"inpaint_masks must be >= 0"),
    (["train", "{d}/missing.yaml"], r"config file not found"),
    (["train", "{d}/bad.yaml"], r"bad.yaml is not valid YAML: .* at line 3, column 5; fix that line"),
    (["train", "{d}/list.yaml"], r"a config must be a mapping of field: value \(got list\)"),
    (["train", "{d}/ok.yaml", "--set", "max_stepz=3"], r"unknown transformer config key 'max_stepz'"),
    (["train", "{d}/ok.yaml", "--set", "pretrained={d}/truncated"], r"truncated/.*is not a complete safetensors"),
    (["eval", "--model", "tiny", "--suite", "nope"], r"unknown eval suite 'nope'"),
    (["eval", "--model", "tiny", "--suite", "{d}/bad.yaml"], r"bad.yaml is not valid YAML: .* at line 3"),
    (["eval", "--model", "tiny", "--suite", "smoke", "--subset", "nope"], r"unknown subsets \['nope'\]"),
    (["eval", "--model", "tiny", "--suite", "smoke", "--set", "nokey"], r"must look like key=value"),
    (["eval", "--model", "{d}/truncated", "--suite", "smoke", "--out", "{out}"], r"is not a complete safetensors"),
    (["experiment", "run", "no-such-experiment"], r"unknown experiment 'no-such-experiment'"),
    (["experiment", "run", "{d}/bad.yaml", "--dry-run"], r"bad.yaml is not valid YAML: .* at line 3"),
    (["experiment", "run", "embedding_resize", "-p", "nope", "--dry-run"], r"-p expects key=value"),
    (["experiment", "run", "embedding_resize", "-p", "no_such_parameter=1", "--dry-run"], r"no_such_parameter"),
]


@pytest.mark.parametrize("argv, message", OTHERS, ids=[f"{r[0][0]}-{i}" for i, r in enumerate(OTHERS)])
def test_other_commands_refuse_with_one_line(files, tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    argv = [a.format(d=files, out=out) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err and f"cogfun {argv[0]}: error: " in err
    assert not out.exists() or not any(out.iterdir())


# ------------------------------------------------------------------------------------------------
# Prompts: nothing cut or mangled without a word
# ------------------------------------------------------------------------------------------------


def test_capitals_and_punctuation_read_as_a_person_would(pipe):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: every word is known once normalised
        shouted = pipe.encode_prompt("A RED Circle, moving right!", do_classifier_free_guidance=False)[0]
    plain = pipe.encode_prompt("a red circle moving right", do_classifier_free_guidance=False)[0]
    torch.testing.assert_close(shouted, plain)


@pytest.mark.parametrize("prompt, message", [
    ("a red dog moving right", r"does not know: \['dog'\]"),
    ("a red circle moving right on a grey background a blue square moving left on a white background",
     r"longer than the model's text length of 16 tokens: .* is cut"),
])
def test_unknown_or_cut_words_are_named(pipe, prompt, message):
    with pytest.warns(UserWarning, match=message):
        pipe.encode_prompt(prompt, do_classifier_free_guidance=False)
