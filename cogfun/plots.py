"""Matplotlib figures for the notebooks: frames in grids, videos side by side, masks, latents, curves, bars.

The numbered notebooks are thin (STYLE.md rule 4): each cell calls the package and shows one picture. The
pictures they share live here, in the manner of mediapy's ``show_images`` (google/mediapy), but as
matplotlib figures so that they can carry labels, colour bars and curves, and be saved into a run folder with
``cogfun.experiments.save_figure``.

Conventions:
- Every function returns a ``matplotlib.figure.Figure`` built **without pyplot**: no global state, nothing is
  shown twice and nothing leaks in tests. In a notebook, run ``%matplotlib inline`` once and put the figure last
  in a cell (or ``display(fig)``).
- Frames follow the kit's convention (``cogfun.data.video_io``): ``(F, H, W, 3)`` float in [0, 1]; grey
  images (masks, latent channels) are ``(H, W)``. Torch pixel tensors of the pipeline's layout
  ``(B, 3, F, H, W)`` in [-1, 1] are converted with :func:`pixels_to_frames`, masks ``(B, 1, F, H, W)``
  with :func:`mask_frames`.
- Images are drawn with ``interpolation="nearest"`` from exactly the values given (no resampling, no
  rescaling), so a figure can be read back: ``fig.axes[i].images[0].get_array()`` is the i-th image. The
  tests rely on that, and so can a notebook's ``assert``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

# ------------------------------------------------------------------------------------------------
# Layout conversions
# ------------------------------------------------------------------------------------------------


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def pixels_to_frames(video: Any, index: int = 0) -> np.ndarray:
    """One video of the pipeline's pixel layout as frames to show.

    Args:
        video: ``(B, 3, F, H, W)`` or ``(3, F, H, W)`` in [-1, 1] (torch or numpy), e.g. ``Conditioning.video``.
        index: which sample of a batch.

    Returns:
        ``(F, H, W, 3)`` float32 in [0, 1] (values outside [-1, 1] are clipped).
    """
    x = _numpy(video).astype(np.float32)
    if x.ndim == 5:
        x = x[index]
    if x.ndim != 4 or x.shape[0] != 3:
        raise ValueError(f"pixels_to_frames expects (B, 3, F, H, W) or (3, F, H, W) (got {x.shape}); frames "
                         "(F, H, W, 3) in [0, 1] need no conversion")
    return np.clip((x.transpose(1, 2, 3, 0) + 1) / 2, 0, 1)  # (F, H, W, 3)


def mask_frames(mask: Any, index: int = 0) -> np.ndarray:
    """One mask (or latent mask channel) as grey frames to show.

    Args:
        mask: ``(B, 1, F, H, W)``, ``(1, F, H, W)`` or ``(F, H, W)`` (torch or numpy).
        index: which sample of a batch.

    Returns:
        ``(F, H, W)`` float32, the values unchanged.
    """
    x = _numpy(mask).astype(np.float32)
    if x.ndim == 5:
        x = x[index]
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"a 4-D mask must be (1, F, H, W) (got {x.shape})")
        x = x[0]
    if x.ndim != 3:
        raise ValueError(f"mask_frames expects (B, 1, F, H, W), (1, F, H, W) or (F, H, W) (got {x.shape})")
    return x


def _images(frames: Any) -> list[np.ndarray]:
    """A stack ``(N, H, W[, 3])`` or a sequence of images -> list of ``(H, W)`` / ``(H, W, 3)`` arrays."""
    if isinstance(frames, np.ndarray) or hasattr(frames, "detach"):
        frames = _numpy(frames)
        if frames.ndim not in (3, 4):
            raise ValueError(f"frames must be (N, H, W) or (N, H, W, 3) (got {frames.shape})")
        return list(frames)
    images = [_numpy(f) for f in frames]
    for image in images:
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
            raise ValueError(f"each image must be (H, W) or (H, W, 3) (got {image.shape})")
    return images


def _figure(rows: int, columns: int, size: float, extra_width: float = 0.0, extra_height: float = 0.3):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(columns * size + extra_width, rows * size + extra_height), layout="constrained")
    axes = np.asarray(fig.subplots(rows, columns, squeeze=False))
    return fig, axes


def _show(ax, image: np.ndarray, cmap: str, vmin: float, vmax: float):
    shown = ax.imshow(image, cmap=None if image.ndim == 3 else cmap, vmin=vmin, vmax=vmax,
                      interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    return shown


# ------------------------------------------------------------------------------------------------
# Grids of images
# ------------------------------------------------------------------------------------------------


def frame_grid(
    frames: Any,
    columns: int | None = None,
    titles: Sequence[str] | None = None,
    cmap: str = "gray",
    vmin: float = 0.0,
    vmax: float = 1.0,
    size: float = 1.4,
    title: str | None = None,
    colorbar: bool = False,
):
    """Images in a grid, row by row, each in its own axes.

    Args:
        frames: ``(N, H, W, 3)`` RGB or ``(N, H, W)`` grey (numpy or torch), or a sequence of such images.
        columns: images per row (default ``min(N, 9)``).
        titles: one per image; default ``"t=0", "t=1", ...``; ``[]`` for none.
        cmap, vmin, vmax: colour map and range of grey images (RGB images are drawn as they are, in [0, 1]).
        size: inches per image.
        title: figure title.
        colorbar: one colour bar for the whole grid (grey images).

    Returns:
        the ``Figure``; ``fig.axes[i].images[0].get_array()`` is image ``i``.
    """
    images = _images(frames)
    if not images:
        raise ValueError("frame_grid needs at least one image")
    columns = max(1, min(columns or 9, len(images)))
    rows = -(-len(images) // columns)
    titles = [f"t={i}" for i in range(len(images))] if titles is None else list(titles)
    if titles and len(titles) != len(images):
        raise ValueError(f"give one title per image ({len(images)}) or none (got {len(titles)})")
    fig, axes = _figure(rows, columns, size, extra_width=0.6 if colorbar else 0.0)
    shown, kept = None, []
    for i, ax in enumerate(axes.flat):
        if i >= len(images):
            ax.remove()  # no empty frames in the grid, and fig.axes stays one per image
            continue
        shown = _show(ax, images[i], cmap, vmin, vmax)
        kept.append(ax)
        if titles:
            ax.set_title(titles[i], fontsize=8)
    if colorbar and shown is not None:
        fig.colorbar(shown, ax=kept, shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def image_rows(
    rows: Mapping[str, Any],
    column_titles: Sequence[str] | None = None,
    cmap: str = "gray",
    vmin: float = 0.0,
    vmax: float = 1.0,
    size: float = 1.2,
    title: str | None = None,
):
    """Labelled rows of images (a video per row, a mask under its video, a sampler per row, ...).

    Args:
        rows: ``{row label: images}``; images as in :func:`frame_grid`. Rows may differ in length (shorter
            rows leave their last cells out); RGB and grey rows mix freely.
        column_titles: titles over the first row's columns.
        cmap, vmin, vmax: colour map and range of grey images.
        size: inches per image.
        title: figure title.

    Returns:
        the ``Figure``; its axes are the images in row order (``fig.axes`` skips left-out cells).
    """
    stacks = {label: _images(images) for label, images in rows.items()}
    if not stacks:
        raise ValueError("image_rows needs at least one row")
    columns = max(len(images) for images in stacks.values())
    fig, axes = _figure(len(stacks), columns, size, extra_width=1.2)
    for r, (label, images) in enumerate(stacks.items()):
        for c in range(columns):
            ax = axes[r, c]
            if c >= len(images):
                ax.remove()
                continue
            _show(ax, images[c], cmap, vmin, vmax)
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
            if r == 0 and column_titles is not None and c < len(column_titles):
                ax.set_title(column_titles[c], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _pick(num_frames: int, indices: Sequence[int] | None, max_frames: int) -> list[int]:
    if indices is None:
        count = min(num_frames, max_frames)
        return sorted({int(round(i)) for i in np.linspace(0, num_frames - 1, count)})
    picked = []
    for i in indices:
        if not -num_frames <= i < num_frames:
            raise ValueError(f"frame index {i} is outside a video of {num_frames} frames")
        picked.append(i % num_frames)
    return picked


def show_frames(video: Any, indices: Sequence[int] | None = None, max_frames: int = 9, title: str | None = None,
                size: float = 1.4):
    """Chosen frames of one video in a row, titled with their index.

    Args:
        video: ``(F, H, W, 3)`` in [0, 1] (or ``(F, H, W)`` grey).
        indices: frames to show (negative counts from the end); default ``max_frames`` evenly spaced frames,
            always the first and the last.
        max_frames: how many frames by default.
        title: figure title.
        size: inches per frame.
    """
    frames = _images(video)
    picked = _pick(len(frames), indices, max_frames)
    return frame_grid([frames[i] for i in picked], columns=len(picked), titles=[f"t={i}" for i in picked],
                      title=title, size=size)


def compare_videos(videos: Mapping[str, Any], indices: Sequence[int] | None = (0, -1), max_frames: int = 9,
                   title: str | None = None, size: float = 1.2):
    """Several videos side by side: one row per video, the same frames of each.

    Args:
        videos: ``{label: (F, H, W, 3) frames}``; lengths may differ (negative indices count from each end).
        indices: frames to show, ``(0, -1)`` = first and last; ``None`` = ``max_frames`` evenly spaced frames
            of the longest video (shorter videos: clipped to their length).
        max_frames: frames shown with ``indices=None``.
        title: figure title.
        size: inches per frame.
    """
    stacks = {label: _images(frames) for label, frames in videos.items()}
    if not stacks:
        raise ValueError("compare_videos needs at least one video")
    longest = max(len(frames) for frames in stacks.values())
    if indices is None:
        picked = _pick(longest, None, max_frames)
        rows = {label: [frames[min(i, len(frames) - 1)] for i in picked] for label, frames in stacks.items()}
        names = [f"t={i}" for i in picked]
    else:
        rows = {label: [frames[i] for i in _pick(len(frames), indices, max_frames)]
                for label, frames in stacks.items()}
        names = ["first" if i == 0 else "last" if i == -1 else f"t={i}" for i in indices]
    return image_rows(rows, column_titles=names, title=title, size=size)


# ------------------------------------------------------------------------------------------------
# Masks, conditioning and latents
# ------------------------------------------------------------------------------------------------


def plot_mask_stack(mask: Any, title: str | None = None, columns: int | None = None, vmax: float | None = None,
                    size: float = 1.0, index_name: str = "t"):
    """Every frame of a mask (white = 1), titled ``t=i`` with the frame's mean.

    Args:
        mask: ``(B, 1, F, H, W)``, ``(1, F, H, W)`` or ``(F, H, W)``: a regenerate-mask (1 = regenerate) or a
            latent mask channel (1 = known, possibly times the VAE's scaling factor).
        title: figure title.
        columns: frames per row (default all in one row, up to 13).
        vmax: top of the grey scale; default ``max(1, mask.max())`` so scaled channels are not clipped.
        size: inches per frame.
        index_name: the frame index's name in the titles (``"k"`` for latent frames).
    """
    frames = mask_frames(mask)
    top = max(1.0, float(frames.max())) if vmax is None else vmax
    titles = [f"{index_name}={t}\nmean {float(f.mean()):.2f}" for t, f in enumerate(frames)]
    return frame_grid(frames, columns=columns or min(len(frames), 13), titles=titles, vmin=0.0, vmax=top,
                      title=title, size=size)


def plot_conditioning(conditionings: Mapping[str, Any], size: float = 0.9, title: str | None = None):
    """Each mode's ``(video, mask)``: a row with the video given to the pipeline and a row with its mask.

    Args:
        conditionings: ``{label: cogfun.masks.Conditioning}`` (anything with ``.video`` ``(B, 3, F, H, W)`` in
            [-1, 1] or ``None``, and ``.mask`` ``(B, 1, F, H, W)``, 1 = regenerate); sample 0 is shown. A
            missing video (text-to-video) is drawn mid-grey.
        size: inches per frame.
        title: figure title.
    """
    rows: dict[str, Any] = {}
    for label, cond in conditionings.items():
        mask = mask_frames(cond.mask)  # (F, H, W)
        video = (np.full((*mask.shape, 3), 0.5, np.float32) if cond.video is None
                 else pixels_to_frames(cond.video))
        rows[f"{label}\nvideo" + (" (none)" if cond.video is None else "")] = video
        rows[f"{label}\nmask"] = mask
    num_frames = max(len(v) for v in rows.values())
    return image_rows(rows, column_titles=[f"t={t}" for t in range(num_frames)], size=size,
                      title=title or "video given to the pipeline, and its mask (white = regenerate)")


def plot_latent_channels(latent: Any, columns: int = 8, title: str | None = None, size: float = 1.1):
    """The channels of one latent frame as images, on one symmetric colour scale (red +, blue -).

    Args:
        latent: ``(C, h, w)``, e.g. ``vae.encode(x).latent_dist.mode()[0, :, t]``.
        columns: channels per row.
        title: figure title.
        size: inches per channel.
    """
    channels = _numpy(latent).astype(np.float32)
    if channels.ndim != 3:
        raise ValueError(f"plot_latent_channels expects one latent frame (C, h, w) (got {channels.shape})")
    limit = max(float(np.abs(channels).max()), 1e-6)
    return frame_grid(channels, columns=columns, titles=[f"c={c}" for c in range(len(channels))],
                      cmap="RdBu_r", vmin=-limit, vmax=limit, title=title, size=size, colorbar=True)


def latent_frame_index(num_frames: int, temporal_ratio: int = 4) -> np.ndarray:
    """The latent frame each pixel frame is folded into by the causal VAE: 0 alone, then groups of 4.

    Args:
        num_frames: F, ``temporal_ratio * k + 1``.
        temporal_ratio: the VAE's temporal compression (CogVideoX: 4).

    Returns:
        int ``(F,)``: ``[0, 1, 1, 1, 1, 2, 2, 2, 2, ...]`` (pixel frame ``t >= 1`` -> ``(t - 1) // 4 + 1``).
    """
    if num_frames < 1 or (num_frames - 1) % temporal_ratio:
        raise ValueError(f"num_frames must be {temporal_ratio}k+1 (got {num_frames})")
    t = np.arange(num_frames)
    return np.where(t == 0, 0, (t - 1) // temporal_ratio + 1)


def plot_frame_groups(num_frames: int, temporal_ratio: int = 4, title: str | None = None):
    """A strip of pixel frames coloured by the latent frame they become (frame 0 alone).

    Args:
        num_frames: F (``temporal_ratio * k + 1``).
        temporal_ratio: the VAE's temporal compression.
        title: figure title.

    Returns:
        the ``Figure``; its image array is :func:`latent_frame_index` ``[None]`` (shape ``(1, F)``).
    """
    from matplotlib.figure import Figure

    groups = latent_frame_index(num_frames, temporal_ratio)
    fig = Figure(figsize=(max(4.0, 0.35 * num_frames), 1.3), layout="constrained")
    ax = fig.subplots()
    ax.imshow(groups[None], cmap="tab20", vmin=0, vmax=19, aspect="auto", interpolation="nearest")
    for t, g in enumerate(groups):
        ax.text(t, 0, str(g), ha="center", va="center", fontsize=7)
    ax.set_yticks([])
    ax.set_xticks(range(num_frames))
    ax.tick_params(labelsize=6)
    ax.set_xlabel("pixel frame (the number in each cell: its latent frame)")
    ax.set_title(title or f"{num_frames} pixel frames -> {int(groups[-1]) + 1} latent frames", fontsize=9)
    return fig


def resize_mask_weights(num_frames: int, method: str = "reference", temporal_ratio: int = 4) -> np.ndarray:
    """How much each pixel frame of a mask reaches each latent frame through ``cogfun.masks.resize_mask``.

    Found by probing: the mask of a single known pixel frame (one-hot in time) is resized to the latent grid.
    For the reference method (linear) entry ``[k, t]`` is the weight of pixel frame ``t`` in latent frame
    ``k``; for ``"max"`` it is 1 where frame ``t`` lies in latent frame ``k``'s pooling window.

    Args:
        num_frames: F (4k+1).
        method: ``"reference"`` or ``"max"`` (see ``cogfun.masks.resize_mask``).
        temporal_ratio: the VAE's temporal compression.

    Returns:
        float32 ``(F_lat, F)``. With the reference method row ``k >= 1`` is 0.5 at pixel frames ``4k - 2`` and
        ``4k - 1`` and 0 elsewhere: pixel frame ``4k`` (the last frame, for ``k = F_lat - 1``) never counts.
    """
    import torch

    from .masks import resize_mask

    f_lat = int(latent_frame_index(num_frames, temporal_ratio)[-1]) + 1
    probes = torch.eye(num_frames).view(num_frames, 1, num_frames, 1, 1)  # (F, 1, F, 1, 1): one frame each
    out = resize_mask(probes, (f_lat, 1, 1), method=method)  # (F, 1, F_lat, 1, 1)
    return out[:, 0, :, 0, 0].T.numpy().astype(np.float32)  # (F_lat, F)


def plot_weights(weights: Mapping[str, Any], xlabel: str = "pixel frame", ylabel: str = "latent frame",
                 title: str | None = None, size: float = 0.18):
    """Matrices one above the other as heat maps (e.g. :func:`resize_mask_weights`), values written in when small.

    Args:
        weights: ``{label: (rows, cols) array}``.
        xlabel, ylabel: axis labels.
        title: figure title.
        size: inches per matrix cell.
    """
    from matplotlib.figure import Figure

    mats = {label: _numpy(w).astype(np.float32) for label, w in weights.items()}
    cols = max(m.shape[1] for m in mats.values())
    rows = sum(m.shape[0] for m in mats.values())
    fig = Figure(figsize=(max(4.0, cols * size + 1.0), max(2.0, rows * size + 0.9 * len(mats))), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(mats), 1))
    for ax, (label, m) in zip(axes, mats.items()):
        ax.imshow(m, cmap="Blues", vmin=0, vmax=max(1.0, float(m.max())), interpolation="nearest")
        if m.shape[1] <= 24:  # room for the numbers
            for (r, c), v in np.ndenumerate(m):
                if v:
                    ax.text(c, r, f"{v:.2g}", ha="center", va="center", fontsize=6,
                            color="white" if v > 0.6 * max(1.0, float(m.max())) else "black")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ------------------------------------------------------------------------------------------------
# Curves and bars
# ------------------------------------------------------------------------------------------------


def plot_lines(series: Mapping[str, Sequence[float]], x: Sequence[float] | None = None, xlabel: str = "",
               ylabel: str = "", title: str | None = None, marks: Sequence[float] = (), size=(6.0, 3.0)):
    """Curves on one axes (one per entry), with optional dashed vertical marks.

    Args:
        series: ``{label: values}``.
        x: shared x values (default ``0, 1, ...`` per series).
        xlabel, ylabel, title: labels.
        marks: x positions of dashed vertical lines (e.g. seams, the first frame).
        size: figure size in inches.
    """
    from matplotlib.figure import Figure

    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    whole = True
    for label, values in series.items():
        values = _numpy(values).astype(np.float64)
        xs = np.arange(len(values)) if x is None else _numpy(x)
        whole = whole and bool(np.all(np.mod(xs, 1) == 0))
        ax.plot(xs, values, marker="o", markersize=3, label=label)
    if whole:  # frame indices: no tick at 0.5
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for m in marks:
        ax.axvline(m, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_bars(values: Mapping[str, float], reference: Mapping[str, float] | None = None, ylabel: str = "",
              title: str | None = None, labels: tuple[str, str] = ("measured", "expected"), size=(6.0, 3.0)):
    """A bar per entry (timings, frequencies), optionally next to a reference bar per entry.

    Args:
        values: ``{label: value}``.
        reference: ``{label: value}`` drawn beside each bar (e.g. the expected probability).
        ylabel, title: labels.
        labels: legend names of ``values`` and ``reference``.
        size: figure size in inches.

    Returns:
        the ``Figure``; ``fig.axes[0].containers[0]`` holds the bars of ``values`` (``[1]``: ``reference``).
    """
    from matplotlib.figure import Figure

    names = list(values)
    xs = np.arange(len(names))
    width = 0.4 if reference is not None else 0.7
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    offset = -width / 2 if reference is not None else 0.0
    ax.bar(xs + offset, [float(values[n]) for n in names], width, label=labels[0])
    if reference is not None:
        ax.bar(xs + width / 2, [float(reference.get(n, np.nan)) for n in names], width, label=labels[1])
        ax.legend(fontsize=8)
    ax.set_xticks(xs, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_seams(frames: Any, seams: Sequence[int | tuple[int, int]], title: str | None = None, size=(7.0, 3.0)):
    """Frame-to-frame change of a long video, with each segment seam shaded.

    Args:
        frames: ``(F, H, W, 3)`` in [0, 1].
        seams: as ``cogfun.eval.metrics.seam_continuity`` takes them: boundaries ``b`` or ``(b, width)`` from
            ``long_video_seams``; the shaded span covers the frame pairs ``(t - 1, t)``, ``t`` in
            ``[b - width + 1, b]``.
        title: figure title.
        size: figure size in inches.

    Returns:
        the ``Figure``; its line's y data is ``frame_differences(frames)`` at x = ``1 .. F - 1`` (x = t for the
        pair ``(t - 1, t)``), one shaded patch per seam.
    """
    from matplotlib.figure import Figure

    from .eval.metrics import frame_differences

    diffs = frame_differences(frames)  # (F - 1,)
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    ax.plot(np.arange(1, len(diffs) + 1), diffs, marker="o", markersize=3, label="mean |x[t] - x[t-1]|")
    for i, seam in enumerate(seams):
        boundary, width = (int(seam), 1) if np.isscalar(seam) else (int(seam[0]), int(seam[1]))
        ax.axvspan(boundary - width + 0.5, boundary + 0.5, color="orange", alpha=0.3,
                   label="seam (cross-fade)" if i == 0 else None)
    ax.set_xlabel("frame t")
    ax.set_ylabel("mean abs change")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(title or "frame-to-frame change; shaded: where segments meet", fontsize=10)
    return fig


__all__ = [
    "compare_videos", "frame_grid", "image_rows", "latent_frame_index", "mask_frames", "pixels_to_frames",
    "plot_bars", "plot_conditioning", "plot_frame_groups", "plot_latent_channels", "plot_lines",
    "plot_mask_stack", "plot_seams", "plot_weights", "resize_mask_weights", "show_frames",
]
