"""Tests of cogfun.plots: the figures draw exactly the values given (read back from the figures' artists)."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from cogfun import masks as M
from cogfun import plots
from cogfun.eval.metrics import frame_differences, long_video_seams


def image(fig, i):
    """The array drawn by the i-th axes of a figure."""
    return np.asarray(fig.axes[i].images[0].get_array())


def video(num_frames=5, height=4, width=6, seed=0):
    return np.random.default_rng(seed).random((num_frames, height, width, 3), dtype=np.float32)


# ------------------------------------------------------------------------------------------------
# Conversions
# ------------------------------------------------------------------------------------------------


def test_pixels_to_frames_maps_the_pipeline_layout_to_frames():
    frames = video()
    pixels = torch.from_numpy(frames).permute(3, 0, 1, 2)[None] * 2 - 1  # (1, 3, F, H, W) in [-1, 1]
    np.testing.assert_allclose(plots.pixels_to_frames(pixels), frames, atol=1e-6)
    np.testing.assert_allclose(plots.pixels_to_frames(pixels[0]), frames, atol=1e-6)
    assert plots.pixels_to_frames(pixels * 3).max() == 1.0  # clipped
    with pytest.raises(ValueError, match="need no conversion"):
        plots.pixels_to_frames(frames)


def test_mask_frames_accepts_every_mask_layout():
    mask = torch.rand(2, 1, 5, 4, 4)
    np.testing.assert_array_equal(plots.mask_frames(mask, index=1), mask[1, 0].numpy())
    np.testing.assert_array_equal(plots.mask_frames(mask[0]), mask[0, 0].numpy())
    np.testing.assert_array_equal(plots.mask_frames(mask[0, 0].numpy()), mask[0, 0].numpy())
    with pytest.raises(ValueError):
        plots.mask_frames(torch.rand(4, 4))


# ------------------------------------------------------------------------------------------------
# Grids
# ------------------------------------------------------------------------------------------------


def test_frame_grid_draws_each_frame_exactly_in_order():
    frames = video(num_frames=7)
    fig = plots.frame_grid(frames, columns=3, title="clip")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 7  # 3 x 3 grid, the two empty cells removed
    for i in range(7):
        np.testing.assert_array_equal(image(fig, i), frames[i])
    assert [ax.get_title() for ax in fig.axes] == [f"t={i}" for i in range(7)]
    # grid positions: row-major, 3 per row
    assert fig.axes[3].get_subplotspec().rowspan.start == 1 and fig.axes[3].get_subplotspec().colspan.start == 0


def test_frame_grid_grey_images_keep_their_values_and_colour_range():
    grey = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    fig = plots.frame_grid(grey, titles=["a", "b"], cmap="viridis", vmin=-1, vmax=20, colorbar=True)
    np.testing.assert_array_equal(image(fig, 1), grey[1])
    assert fig.axes[0].images[0].get_clim() == (-1, 20)
    assert len(fig.axes) == 3  # two images and the colour bar
    with pytest.raises(ValueError, match="one title per image"):
        plots.frame_grid(grey, titles=["only one"])


def test_show_frames_picks_first_last_and_evenly_spaced_frames():
    frames = video(num_frames=17)
    fig = plots.show_frames(frames, max_frames=5)
    assert [ax.get_title() for ax in fig.axes] == ["t=0", "t=4", "t=8", "t=12", "t=16"]
    np.testing.assert_array_equal(image(fig, 4), frames[16])
    fig = plots.show_frames(frames, indices=[2, -1])
    np.testing.assert_array_equal(image(fig, 0), frames[2])
    np.testing.assert_array_equal(image(fig, 1), frames[16])
    with pytest.raises(ValueError, match="outside"):
        plots.show_frames(frames, indices=[17])


def test_compare_videos_rows_are_videos_columns_are_frames():
    a, b = video(num_frames=5, seed=1), video(num_frames=9, seed=2)
    fig = plots.compare_videos({"a": a, "b": b})  # first and last of each
    for i, expected in enumerate([a[0], a[-1], b[0], b[-1]]):
        np.testing.assert_array_equal(image(fig, i), expected)
    assert fig.axes[0].get_ylabel() == "a" and fig.axes[2].get_ylabel() == "b"
    assert [fig.axes[0].get_title(), fig.axes[1].get_title()] == ["first", "last"]
    fig = plots.compare_videos({"a": a, "b": b}, indices=None, max_frames=3)  # frames 0, 4, 8 of the longest
    np.testing.assert_array_equal(image(fig, 2), a[4])  # a has 5 frames: 8 -> its last
    np.testing.assert_array_equal(image(fig, 4), b[4])


def test_image_rows_mixes_rgb_and_grey_rows_of_different_lengths():
    rgb, grey = video(num_frames=3), np.ones((2, 4, 6), np.float32) * 0.25
    fig = plots.image_rows({"video": rgb, "mask": grey}, column_titles=["x", "y", "z"])
    assert len(fig.axes) == 5
    np.testing.assert_array_equal(image(fig, 4), grey[1])
    assert fig.axes[3].images[0].get_cmap().name == "gray"


# ------------------------------------------------------------------------------------------------
# Masks, conditioning, latents
# ------------------------------------------------------------------------------------------------


def test_plot_mask_stack_shows_every_frame_with_its_mean():
    cond = M.image_to_video(torch.zeros(3, 8, 8), 5)
    fig = plots.plot_mask_stack(cond.mask)
    assert len(fig.axes) == 5
    np.testing.assert_array_equal(image(fig, 0), np.zeros((8, 8)))
    np.testing.assert_array_equal(image(fig, 1), np.ones((8, 8)))
    assert fig.axes[0].get_title() == "t=0\nmean 0.00"
    assert plots.plot_mask_stack(cond.mask, index_name="k").axes[1].get_title() == "k=1\nmean 1.00"
    scaled = plots.plot_mask_stack(cond.mask * 1.15)  # a scaled mask channel is not clipped
    assert scaled.axes[1].images[0].get_clim()[1] == pytest.approx(1.15)


def test_plot_conditioning_shows_each_mode_as_video_row_and_mask_row():
    start = torch.linspace(-1, 1, 3 * 8 * 8).view(3, 8, 8)
    conds = {"t2v": M.text_to_video(5, 8, 8), "i2v": M.image_to_video(start, 5)}
    fig = plots.plot_conditioning(conds)
    assert len(fig.axes) == 4 * 5
    np.testing.assert_array_equal(image(fig, 0), np.full((8, 8, 3), 0.5, np.float32))  # no video: grey
    np.testing.assert_array_equal(image(fig, 5), np.ones((8, 8)))  # t2v mask: all regenerate
    np.testing.assert_allclose(image(fig, 10), (start.permute(1, 2, 0).numpy() + 1) / 2, atol=1e-6)
    np.testing.assert_array_equal(image(fig, 15), np.zeros((8, 8)))  # i2v: frame 0 kept
    assert fig.axes[15].get_ylabel() == "i2v\nmask"


def test_plot_latent_channels_uses_one_symmetric_scale():
    latent = torch.randn(16, 4, 4)
    fig = plots.plot_latent_channels(latent)
    np.testing.assert_array_equal(image(fig, 3), latent[3].numpy())
    limit = float(latent.abs().max())
    assert fig.axes[0].images[0].get_clim() == pytest.approx((-limit, limit))
    assert fig.axes[15].get_title() == "c=15"


def test_latent_frame_index_puts_frame_zero_alone():
    np.testing.assert_array_equal(plots.latent_frame_index(9), [0, 1, 1, 1, 1, 2, 2, 2, 2])
    fig = plots.plot_frame_groups(13)
    np.testing.assert_array_equal(image(fig, 0), plots.latent_frame_index(13)[None])
    with pytest.raises(ValueError, match="4k\\+1"):
        plots.latent_frame_index(8)


def test_resize_mask_weights_reference_drops_frame_4k_and_max_keeps_it():
    ref = plots.resize_mask_weights(9, "reference")
    expected = np.zeros((3, 9), np.float32)
    expected[0, 0] = 1
    expected[1, [2, 3]] = 0.5  # latent 1: mean of pixel frames 2 and 3 (never 1 or 4)
    expected[2, [6, 7]] = 0.5  # latent 2: never the last frame 8
    np.testing.assert_allclose(ref, expected, atol=1e-6)
    mx = plots.resize_mask_weights(9, "max")
    np.testing.assert_array_equal(mx, [[1, 0, 0, 0, 0, 0, 0, 0, 0],
                                       [0, 1, 1, 1, 1, 0, 0, 0, 0],
                                       [0, 0, 0, 0, 0, 1, 1, 1, 1]])
    fig = plots.plot_weights({"reference": ref, "max": mx})
    np.testing.assert_array_equal(image(fig, 0), ref)
    np.testing.assert_array_equal(image(fig, 1), mx)


def test_resize_mask_weights_agree_with_resize_mask_on_a_real_mask():
    cond = M.image_to_video(torch.zeros(3, 16, 16), 13, end_image=torch.zeros(3, 16, 16))
    known = 1 - cond.mask  # (1, 1, 13, 16, 16)
    channel = M.resize_mask(known, (4, 2, 2))[0, 0, :, 0, 0].numpy()
    per_frame = known[0, 0, :, 0, 0].numpy()
    np.testing.assert_allclose(plots.resize_mask_weights(13) @ per_frame, channel, atol=1e-6)
    assert channel[-1] == 0  # the end image never reaches the last latent frame's mask channel


# ------------------------------------------------------------------------------------------------
# Curves and bars
# ------------------------------------------------------------------------------------------------


def test_plot_lines_draws_each_series_and_the_marks():
    fig = plots.plot_lines({"a": [1.0, 2.0, 4.0], "b": [0.0, 1.0, 0.0]}, marks=[1.5], xlabel="t")
    lines = fig.axes[0].get_lines()
    np.testing.assert_array_equal(lines[0].get_ydata(), [1, 2, 4])
    np.testing.assert_array_equal(lines[1].get_xdata(), [0, 1, 2])
    assert list(lines[2].get_xdata()) == [1.5, 1.5]  # the dashed mark


def test_plot_bars_heights_are_the_values_and_the_reference():
    fig = plots.plot_bars({"x": 3.0, "y": 1.5}, reference={"x": 2.0, "y": 1.0})
    measured, expected = fig.axes[0].containers
    assert [b.get_height() for b in measured] == [3.0, 1.5]
    assert [b.get_height() for b in expected] == [2.0, 1.0]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["x", "y"]


def test_plot_seams_line_is_the_frame_differences_and_seams_are_shaded():
    frames = video(num_frames=17)
    seams = long_video_seams(17, segment_frames=9, overlap=4)  # [(9, 4), (14, 6)]
    fig = plots.plot_seams(frames, seams)
    line = fig.axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), frame_differences(frames))
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 17))
    spans = fig.axes[0].patches
    assert len(spans) == len(seams) >= 1
    b, w = seams[0]
    assert (spans[0].get_x(), spans[0].get_x() + spans[0].get_width()) == (b - w + 0.5, b + 0.5)
