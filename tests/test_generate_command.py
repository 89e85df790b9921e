"""`cogfun generate`: every mode from the command line, run folders, clear errors."""

import json

import numpy as np
import pytest

from cogfun.cli import main
from cogfun.data.video_io import probe_video, write_image, write_video

FAST = ["--model", "tiny", "--steps", "1", "--num-frames", "5", "--height", "32", "--width", "32"]


@pytest.fixture()
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    write_image(tmp_path / "start.png", rng.random((32, 32, 3)).astype(np.float32))
    write_image(tmp_path / "end.png", rng.random((32, 32, 3)).astype(np.float32))
    write_video(tmp_path / "in.mp4", rng.random((5, 32, 32, 3)).astype(np.float32), fps=8)
    mask = np.zeros((32, 32, 3), np.float32)
    mask[8:24, 8:24] = 1
    write_image(tmp_path / "mask.png", mask)
    return tmp_path


@pytest.mark.parametrize(
    "extra, mode",
    [
        ([], "text_to_video"),
        (["--image", "{d}/start.png"], "image_to_video"),
        (["--image", "{d}/start.png", "--end-image", "{d}/end.png"], "start_end_to_video"),
        (["--video", "{d}/in.mp4", "--strength", "0.5", "--steps", "2"], "video_to_video"),
        (["--video", "{d}/in.mp4", "--mask", "{d}/mask.png"], "inpaint"),
    ],
)
def test_every_mode_writes_a_video_and_its_config(inputs, extra, mode):
    out = inputs / f"{mode}.mp4"
    argv = ["generate", *FAST, *[e.format(d=inputs) for e in extra], "--out", str(out)]
    assert main(argv) == 0
    info = probe_video(out)
    assert (info["num_frames"], info["height"], info["width"]) == (5, 32, 32)
    config = json.loads((inputs / f"{mode}.json").read_text())
    assert config["mode"] == mode and config["seed"] == 42


def test_long_video_from_the_command_line(inputs):
    out = inputs / "long.gif"
    argv = ["generate", "--model", "tiny", "--steps", "1", "--height", "32", "--width", "32", "--long",
            "--num-frames", "14", "--segment-frames", "9", "--overlap", "2", "--out", str(out)]
    assert main(argv) == 0
    assert probe_video(out)["num_frames"] == 14


def test_default_output_is_a_new_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["generate", *FAST]) == 0
    assert main(["generate", *FAST]) == 0
    runs = sorted((tmp_path / "outputs" / "generate").iterdir())
    assert len(runs) == 2  # never overwritten
    assert all((r / "video.mp4").exists() and (r / "config.json").exists() for r in runs)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--end-image", "x.png"], "--end-image needs --image"),
        (["--mask", "m.png"], "--mask needs --video"),
        (["--strength", "0.5"], "--strength applies to video-to-video"),
        (["--num-frames", "8"], "4k\\+1"),
        (["--image", "/nonexistent.png"], "not found"),
        (["--sampler", "heun"], "unknown sampler"),
    ],
)
def test_bad_input_exits_2_with_the_fix(extra, message, capsys, tmp_path):
    argv = ["generate", *FAST, *extra, "--out", str(tmp_path / "o.mp4")]
    assert main(argv) == 2
    assert __import__("re").search(message, capsys.readouterr().err)
    assert not (tmp_path / "o.mp4").exists()


def test_existing_output_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"keep me")
    assert main(["generate", *FAST, "--out", str(out)]) == 2
    assert out.read_bytes() == b"keep me"
    assert "exists" in capsys.readouterr().err
