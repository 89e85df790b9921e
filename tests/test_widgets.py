"""Tests of the ipywidgets panels, driven through their widgets in Python (no browser; see test_widgets_browser)."""

import base64
import datetime as dt
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

from cogfun import masks as M
from cogfun.data.video_io import read_video, write_video
from cogfun.pipelines import CogVideoXFunPipeline, size_from_image
from cogfun.pipelines.components import build_components
from cogfun.training.random_masks import random_mask
from cogfun.widgets import (
    MASK_SOURCES,
    EmbeddingExplorerPanel,
    GenerationPanel,
    MaskBuilderPanel,
    build_mask,
    upload_to_frames,
)

SIZE, FRAMES, STEPS = 32, 5, 2


@pytest.fixture(scope="module")
def pipe():
    pipe = CogVideoXFunPipeline(**build_components("tiny"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def png(height, width, seed=0):
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def uploaded(content, name, mime):
    """A FileUpload value as ipywidgets 8 sets it after a browser upload: a tuple of dicts."""
    return ({"name": name, "type": mime, "size": len(content), "content": memoryview(content),
             "last_modified": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)},)


def small_panel(pipe, **kwargs):
    panel = GenerationPanel(pipe, height=SIZE, width=SIZE, num_frames=FRAMES, num_inference_steps=STEPS, **kwargs)
    panel.prompt.value = "a red circle moves right"
    return panel


# ------------------------------------------------------------------------------------------------
# Generation panel
# ------------------------------------------------------------------------------------------------


def test_image_to_video_through_the_widgets_matches_the_pipeline(pipe, tmp_path):
    panel = small_panel(pipe, seed=7, output_dir=tmp_path / "runs")
    start = png(SIZE, SIZE)
    panel.mode.value = "image_to_video"
    panel.start_upload.value = uploaded(start, "start.png", "image/png")
    panel.generate_button.click()

    assert panel.last_error is None, panel.last_error
    frames = panel.last_frames
    assert frames.shape == (FRAMES, SIZE, SIZE, 3)
    assert panel.steps_done == STEPS and panel.progress.value == panel.progress.max == STEPS
    # the same call made directly gives the same frames: the panel only reads widgets
    image = np.asarray(Image.open(io.BytesIO(start)).convert("RGB"), dtype=np.float32) / 255.0
    expected = pipe.image_to_video("a red circle moves right", image=image, num_frames=FRAMES, height=SIZE, width=SIZE,
                                   num_inference_steps=STEPS, generator=torch.Generator().manual_seed(7)).frames[0]
    np.testing.assert_allclose(frames, expected, atol=1e-6)
    # shown as an animated GIF, downloadable as an mp4 data URI that decodes to the video
    assert panel.preview.value[:6] == b"GIF89a" and panel.preview.layout.display is None
    payload = re.search(r'href="data:video/mp4;base64,([^"]+)"', panel.download.value)
    assert payload is not None and 'download="cogfun-image_to_video-seed7.mp4"' in panel.download.value
    mp4 = tmp_path / "download.mp4"
    mp4.write_bytes(base64.b64decode(payload.group(1)))
    decoded, _ = read_video(mp4)
    assert decoded.shape == (FRAMES, SIZE, SIZE, 3)
    assert np.abs(decoded - frames).mean() < 0.05  # H.264 at crf 18
    # saved into its own folder; a second run never overwrites the first
    first = panel.last_path
    panel.generate()
    assert first.exists() and panel.last_path.exists() and panel.last_path != first
    np.testing.assert_allclose(panel.last_frames, frames, atol=1e-6)  # same seed, same video


def test_invalid_frame_count_shows_the_message_not_a_traceback(pipe):
    panel = small_panel(pipe)
    panel.num_frames.value = 8
    assert panel.generate() is None
    assert panel.last_frames is None
    assert "num_frames must be 4k+1 (got 8); try 5 or 9" in panel.message.value
    assert "Traceback" not in panel.message.value and "cogfun-error" in panel.message.value
    assert panel.status.value == "failed" and not panel.generate_button.disabled
    assert panel.preview.layout.display == "none" and panel.download.value == ""


def test_missing_upload_is_reported(pipe):
    panel = small_panel(pipe)
    panel.mode.value = "start_end_to_video"
    panel.generate_button.click()
    assert "needs a start image" in panel.last_error
    panel.start_upload.value = uploaded(png(SIZE, SIZE), "s.png", "image/png")
    panel.generate_button.click()
    assert "needs an end image" in panel.last_error
    panel.prompt.value = " "
    panel.generate()
    assert panel.last_error == "write a prompt first"


def test_mode_shows_only_its_inputs(pipe):
    panel = small_panel(pipe)
    shown = lambda w: w.layout.display != "none"  # noqa: E731
    panel.mode.value = "inpaint"
    assert shown(panel.video_upload) and shown(panel.mask_upload) and not shown(panel.start_upload)
    panel.mode.value = "video_to_video"
    assert shown(panel.strength) and not shown(panel.mask_upload)
    panel.mode.value = "long_video"
    assert shown(panel.segment_frames) and shown(panel.start_upload) and not shown(panel.video_upload)


def test_resize_to_the_start_image(pipe):
    panel = small_panel(pipe, base_size=64)
    start = png(32, 96)  # 1:3 landscape
    with pytest.raises(ValueError, match="upload a start image"):
        panel.fit_size_to_start()
    panel.start_upload.value = uploaded(start, "wide.png", "image/png")
    panel.fit_size_button.click()
    expected = size_from_image(np.zeros((32, 96, 3), np.float32), base_size=64)
    assert (panel.height.value, panel.width.value) == expected == (32, 112)
    # with the checkbox on, a new upload resizes at once
    panel.resize_to_start.value = True
    panel.start_upload.value = uploaded(png(96, 32), "tall.png", "image/png")
    assert (panel.height.value, panel.width.value) == (112, 32)


def test_sampler_dropdown_and_exact_progress(pipe):
    panel = small_panel(pipe)
    panel.sampler.value = "pndm"
    panel.generate()
    try:
        assert pipe.sampler == "pndm"
        # PNDM (PLMS) runs one more timestep than steps; the bar counts the real callbacks
        assert panel.steps_done == panel.progress.max == panel.progress.value == STEPS + 1
    finally:
        pipe.set_sampler("ddim")


def test_inpaint_with_uploaded_video_and_builder_mask(pipe, tmp_path):
    rng = np.random.default_rng(1)
    video = rng.random((FRAMES + 4, SIZE, SIZE, 3)).astype(np.float32)  # longer than needed: trimmed
    path = write_video(tmp_path / "in.mp4", video)
    panel = small_panel(pipe)
    panel.mode.value = "inpaint"
    panel.video_upload.value = uploaded(path.read_bytes(), "in.mp4", "video/mp4")
    builder = MaskBuilderPanel(SIZE, SIZE, FRAMES)
    builder.source.value = "kind:box"
    panel.set_mask(builder.mask)
    panel.generate()
    assert panel.last_error is None, panel.last_error
    assert panel.last_frames.shape == (FRAMES, SIZE, SIZE, 3)
    # video-to-video at strength 0.5 runs half the steps
    panel.mode.value = "video_to_video"
    panel.strength.value = 0.5
    panel.generate()
    assert panel.last_error is None and panel.progress.max == panel.steps_done == 1


def test_upload_decoding_keeps_pixels():
    content = png(8, 12, seed=3)
    frames = upload_to_frames(uploaded(content, "x.png", "image/png"))
    expected = np.asarray(Image.open(io.BytesIO(content)), dtype=np.float32) / 255.0
    np.testing.assert_array_equal(frames[0], expected)
    assert upload_to_frames(()) is None
    with pytest.raises(ValueError, match="could not read the mask"):
        upload_to_frames(uploaded(b"not an image", "m.png", "image/png"), what="mask")


# ------------------------------------------------------------------------------------------------
# Mask builder
# ------------------------------------------------------------------------------------------------


def test_mask_builder_box_values():
    panel = MaskBuilderPanel(64, 64, 9)
    panel.source.value = "mode:inpaint"
    panel.top.value, panel.left.value, panel.box_height.value, panel.box_width.value = 8, 16, 16, 8
    expected = torch.zeros(1, 9, 64, 64)
    expected[:, :, 8:24, 16:24] = 1
    torch.testing.assert_close(panel.mask, expected)
    # the box covers latent cells rows 1..2, column 2 exactly: known = 0 there, 1 elsewhere (both methods)
    known = torch.ones(3, 8, 8)
    known[:, 1:3, 2] = 0
    torch.testing.assert_close(panel.latent_reference, known)
    torch.testing.assert_close(panel.latent_max, known)
    assert panel.pixel_image.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_mask_builder_shows_the_end_frame_quirk():
    panel = MaskBuilderPanel(64, 64, 9)
    panel.source.value = "mode:start_end_to_video"
    assert panel.mask[0, 0].sum() == 0 and panel.mask[0, -1].sum() == 0  # first and last frames kept
    assert float(panel.latent_reference[0].mean()) == 1.0
    assert float(panel.latent_reference[-1].mean()) == 0.0  # reference: the end frame never reaches the mask
    assert float(panel.latent_max[-1].mean()) == 1.0  # "max" keeps it


def test_mask_builder_kinds_and_seeded_draws():
    panel = MaskBuilderPanel(32, 32, 9)
    panel.source.value = "kind:first_frames"
    panel.kept.value = 2
    assert panel.mask[0, :2].sum() == 0 and bool((panel.mask[0, 2:] == 1).all())
    panel.source.value = "kind:box_span"
    panel.frame_range.value = (2, 5)
    assert [int(panel.mask[0, t].sum() > 0) for t in range(9)] == [0, 0, 1, 1, 1, 0, 0, 0, 0]
    panel.source.value = "kind:ellipse"
    panel.randomize.value = True
    panel.seed.value = 5
    expected, _ = random_mask(9, 32, 32, torch.Generator().manual_seed(5), kind="ellipse")
    torch.testing.assert_close(panel.mask, expected)
    assert panel.seed.layout.display is None and panel.top.layout.display == "none"
    for source in MASK_SOURCES:  # every source builds a binary (1, F, H, W) mask
        mask = build_mask(source, 9, 32, 32, seed=1)
        assert mask.shape == (1, 9, 32, 32) and set(mask.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(build_mask("mode:image_to_video", 9, 32, 32),
                               M.image_to_video(torch.zeros(3, 32, 32), 9).mask[0])


# ------------------------------------------------------------------------------------------------
# Embedding explorer
# ------------------------------------------------------------------------------------------------


def test_embedding_explorer_similarity_is_one_at_the_query(pipe):
    panel = EmbeddingExplorerPanel(pipe.transformer)
    assert panel.mode.value == "interpolate" and (panel.frames.value, panel.grid_height.value) == (13, 4)
    with panel.hold_updates():  # one redraw for six sliders
        panel.frames.value, panel.grid_height.value, panel.grid_width.value = 3, 6, 8
        panel.query_t.value, panel.query_y.value, panel.query_x.value = 2, 5, 1
    for mode in ("interpolate", "extrapolate", "scaled", "truncate", "rope"):
        panel.mode.value = mode
        assert panel.last_error is None, panel.last_error
        assert panel.similarity.shape == (3, 6, 8)
        assert float(panel.similarity[2, 5, 1]) == pytest.approx(1.0, abs=1e-9)
        assert panel.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    # shrinking the grid pulls the query back inside
    panel.grid_height.value = 3
    assert panel.query_y.value == 2 and float(panel.similarity[2, 2, 1]) == pytest.approx(1.0, abs=1e-9)


def test_embedding_explorer_reports_modes_that_cannot_serve_the_grid():
    panel = EmbeddingExplorerPanel("tiny")
    with panel.hold_updates():
        panel.mode.value = "truncate"
        panel.frames.value, panel.grid_height.value, panel.grid_width.value = 13, 8, 8  # more rows than the base
    assert panel.similarity is None and "truncate" in panel.last_error
    assert "cogfun-error" in panel.summary.value
    panel.mode.value = "interpolate"
    assert panel.last_error is None
    # at the sample grid the distance to the base table is zero
    with panel.hold_updates():
        panel.grid_height.value, panel.grid_width.value = 4, 4
    assert float(panel.distance.max()) < 1e-6
