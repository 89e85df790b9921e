"""Tests of the ipywidgets panels, driven through their widgets in Python (no browser; see test_widgets_browser)."""

import base64
import datetime as dt
import io
import re

import ipywidgets as W
import matplotlib.text
from matplotlib.backends.backend_agg import FigureCanvasAgg
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
    similarity_figure,
    upload_to_frames,
)
from cogfun.widgets import mask_builder as mask_builder_module
from cogfun.widgets.media import PANEL_CSS, image_size

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


def shown(widget):
    return widget.layout.display != "none"


def gif_frames(data):
    """The frames of GIF bytes, (F, H, W, 3) uint8."""
    with Image.open(io.BytesIO(data)) as im:
        frames = []
        for k in range(im.n_frames):
            im.seek(k)
            frames.append(np.asarray(im.convert("RGB")))
    return np.stack(frames)


def assert_pixel_picture(image, pixelated=True, zoom=1):
    """A panel picture: shown at a whole multiple of its pixel width, not stretched by the flex box, square pixels."""
    width, _ = image_size(image.value)
    assert shown(image) and image.layout.width == f"{zoom * width}px"
    assert image.layout.height == "auto" and image.layout.align_self == "flex-start"  # the height keeps the aspect
    assert image.layout.object_fit == "contain" and image.layout.max_width == "calc(100% - 4px)"
    assert ("cogfun-pixelated" in image._dom_classes) == pixelated


def all_widgets(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from all_widgets(child)


def small_panel(pipe, **kwargs):
    panel = GenerationPanel(pipe, height=SIZE, width=SIZE, num_frames=FRAMES, num_inference_steps=STEPS, **kwargs)
    panel.prompt.value = "a red circle moving right"
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
    expected = pipe.image_to_video("a red circle moving right", image=image, num_frames=FRAMES, height=SIZE, width=SIZE,
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


def test_a_failed_run_clears_the_previous_video(pipe, tmp_path):
    panel = small_panel(pipe, output_dir=tmp_path)
    assert panel.generate() is not None and shown(panel.preview) and "cogfun-download" in panel.download.value
    panel.num_frames.value = 8  # invalid: the error replaces the video, its link and the saved path
    assert panel.generate() is None
    assert "4k+1" in panel.message.value and panel.status.value == "failed"
    assert not shown(panel.preview) and panel.preview.value == b"" and panel.download.value == ""
    assert panel.last_frames is None and panel.last_path is None and panel.progress.value == 0
    panel.num_frames.value = FRAMES  # and a good run shows a video again, without the old message
    assert panel.generate() is not None and shown(panel.preview) and "cogfun-error" not in panel.message.value


def test_preview_is_upscaled_with_square_pixels(pipe):
    panel = small_panel(pipe)
    frames = panel.generate()
    gif = gif_frames(panel.preview.value)  # the GIF at the generated size (small to send and to save) ...
    assert gif.shape == (FRAMES, SIZE, SIZE, 3)
    assert np.abs(gif / 255.0 - frames).mean() < 0.03  # the same picture, in a GIF palette
    assert_pixel_picture(panel.preview, zoom=8)  # ... shown 8x = 256 px wide, nearest-neighbour in the browser
    assert "image-rendering: pixelated" in PANEL_CSS
    assert any(PANEL_CSS in getattr(w, "value", "") for w in all_widgets(panel.widget))


def test_panels_display_as_their_widget_with_a_plain_text_fallback(pipe):
    for panel, name in ((small_panel(pipe), "GenerationPanel"), (MaskBuilderPanel(32, 32, 5), "MaskBuilderPanel"),
                        (EmbeddingExplorerPanel("tiny"), "EmbeddingExplorerPanel")):
        bundle = panel._repr_mimebundle_()
        assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.widget.model_id
        assert bundle["text/plain"].startswith(f"{name}: an interactive panel")  # not the VBox repr


def test_panel_layout_fits_its_labels_and_width(pipe):
    panel = small_panel(pipe)
    # ipywidgets gives buttons and uploads a fixed 148 px that cuts long labels ("Mask (white = regenerate)")
    buttons = [w for w in all_widgets(panel.widget) if isinstance(w, (W.Button, W.FileUpload))]
    assert len(buttons) == 6 and all(b.layout.width == "auto" and b.layout.flex == "0 0 auto" for b in buttons)
    # "100%" plus the widget margins overflows the panel; "auto" is stretched to the panel's width
    assert panel.prompt.layout.width == panel.negative_prompt.layout.width == "auto"
    rows = [w for w in panel.widget.children if isinstance(w, W.HBox)]
    assert rows and all(r.layout.flex_flow == "row wrap" for r in rows)  # wrap, never a scrollbar


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


def test_mask_builder_pictures_keep_aspect_and_square_pixels():
    panel = MaskBuilderPanel(32, 48, 9, columns=9)  # default scale: 32 px frames x 2 >= 64 px
    assert panel.scale == 2
    for image in (panel.pixel_image, panel.reference_image, panel.max_image):
        assert_pixel_picture(image)
    # the pixel picture is the mask itself, each pixel a 2x2 block (1 px grey gaps between frames, also x2)
    grid = np.asarray(Image.open(io.BytesIO(panel.pixel_image.value)), dtype=np.float32) / 255.0
    assert grid.shape == (32 * 2, (9 * 49 - 1) * 2)
    first = grid[:, : 48 * 2]
    np.testing.assert_array_equal(first, panel.mask[0, 0].numpy().repeat(2, 0).repeat(2, 1))
    # latent pictures: one latent cell = spatial_ratio x scale pixels, the same size as the pixels it covers
    assert image_size(panel.reference_image.value)[1] == 4 * 16
    with pytest.raises(ValueError, match="whole number"):
        MaskBuilderPanel(32, 32, 9, scale=1.5)


def test_mask_builder_error_replaces_the_pictures(monkeypatch):
    panel = MaskBuilderPanel(32, 32, 9)

    def refuse(*args, **kwargs):
        raise ValueError("box outside the frame")

    monkeypatch.setattr(mask_builder_module, "build_mask", refuse)
    panel.update()
    assert "box outside the frame" in panel.message.value and panel.summary.value == ""
    assert all(not shown(i) and i.value == b"" for i in (panel.pixel_image, panel.reference_image, panel.max_image))
    monkeypatch.undo()
    panel.update()
    assert panel.message.value == "" and shown(panel.pixel_image)


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


def test_embedding_explorer_default_view_has_data():
    panel = EmbeddingExplorerPanel("tiny")
    assert panel.base == (13, 4, 4)
    # it opens on a grid the table was not built for (1.5x wider), where the distance map is not all zero
    assert (panel.frames.value, panel.grid_height.value, panel.grid_width.value) == (13, 4, 6)
    assert panel.last_error is None and float(panel.distance.max()) > 0.05
    assert float(panel.similarity.max() - panel.similarity.min()) > 0.01
    assert_pixel_picture(panel.image, pixelated=False)  # a figure: text, no pixel art
    assert "mean 0.000" not in panel.summary.value


def test_embedding_explorer_figure_keeps_its_labels_inside():
    panel = EmbeddingExplorerPanel("tiny")
    for grid_width in (6, 4):  # the default view, and the sample grid (distance 0 everywhere, said in words)
        panel.grid_width.value = grid_width
        query = (panel.query_t.value, panel.query_y.value, panel.query_x.value)
        fig = similarity_figure(panel.similarity, panel.distance, query, title="a title")
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer, box = canvas.get_renderer(), fig.bbox
        texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text()]
        assert texts
        for text in texts:
            extent = text.get_window_extent(renderer)
            assert extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1, text.get_text()
            assert extent.y0 >= box.y0 - 1 and extent.y1 <= box.y1 + 1, text.get_text()
        # the figure title sits above the three panel titles, not over them
        title_box = fig._suptitle.get_window_extent(renderer)
        assert all(title_box.y0 >= ax.title.get_window_extent(renderer).y1 for ax in fig.axes[:3])
        words = " ".join(t.get_text() for t in texts)
        assert ("0 everywhere" in words) == (grid_width == 4)
        assert "1e" not in words  # no colorbar offset text (it was cut off at the top)
        # the PNG is cropped to what is drawn ("tight"): saved wide enough for every label
        width, height = image_size(panel.image.value)
        assert 600 < width <= 11 * 80 and 200 < height <= 3.6 * 80


def test_embedding_explorer_reports_modes_that_cannot_serve_the_grid():
    panel = EmbeddingExplorerPanel("tiny")
    with panel.hold_updates():
        panel.mode.value = "truncate"
        panel.frames.value, panel.grid_height.value, panel.grid_width.value = 13, 8, 8  # more rows than the base
    assert panel.similarity is None and "truncate" in panel.last_error
    assert "cogfun-error" in panel.summary.value
    assert not shown(panel.image) and panel.image.value == b""  # the old figure does not stay up
    panel.mode.value = "interpolate"
    assert panel.last_error is None and shown(panel.image)
    # at the sample grid the distance to the base table is zero
    with panel.hold_updates():
        panel.grid_height.value, panel.grid_width.value = 4, 4
    assert float(panel.distance.max()) < 1e-6
