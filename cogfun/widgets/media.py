"""Bytes in and out of the panels: decoding ``FileUpload`` values, encoding pictures, download links.

ipywidgets 8 gives an upload as a tuple of dicts ``{"name", "type", "size", "content", "last_modified"}``
where ``content`` is a ``memoryview`` of the file's bytes. The bytes are written to a temporary file with
the upload's extension and decoded by ``cogfun.data.video_io`` (PIL for images, PyAV for videos), so a panel
reads uploads exactly as the CLI reads files. Going out, frames become an animated GIF (shown in an
``ipywidgets.Image``), PNG mosaics (masks, maps) and an mp4 ``data:`` link to download. Pictures in the panels
are :func:`picture` widgets: shown at a whole multiple of their pixel width (never stretched by the panel's flex
box), with ``image-rendering: pixelated`` so upscaled pixels stay sharp squares.
"""

from __future__ import annotations

import base64
import html
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..data.video_io import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    frames_to_uint8,
    read_image,
    read_video,
    write_video,
)

# ------------------------------------------------------------------------------------------------
# Uploads -> frames
# ------------------------------------------------------------------------------------------------


def upload_entries(value: Any) -> list[dict]:
    """The files of a ``FileUpload.value`` (ipywidgets 8 tuple of dicts; ipywidgets 7 dict by name)."""
    if not value:
        return []
    if isinstance(value, dict):  # ipywidgets 7: {name: {"metadata": {...}, "content": bytes}}
        return [{"name": name, **entry.get("metadata", {}), "content": entry["content"]} for name, entry in value.items()]
    return list(value)


def _suffix(entry: dict, content: bytes) -> str:
    suffix = Path(str(entry.get("name", ""))).suffix.lower()
    if suffix in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS:
        return suffix
    kind = str(entry.get("type", ""))
    if kind.startswith("image/"):
        return ".gif" if kind == "image/gif" else ".png"
    if kind.startswith("video/"):
        return ".mp4"
    from PIL import Image, UnidentifiedImageError

    try:  # no name or type to go by: let PIL sniff it
        with Image.open(io.BytesIO(content)) as im:
            return ".gif" if im.format == "GIF" else ".png"
    except (UnidentifiedImageError, OSError):
        return ".mp4"


def upload_to_frames(value: Any, max_frames: int | None = None, what: str = "upload") -> np.ndarray | None:
    """Decode the first file of a ``FileUpload.value`` into frames.

    Args:
        value: the widget's value (empty: nothing uploaded).
        max_frames: keep at most this many frames of a video.
        what: the upload's name in error messages ("start image", "mask", ...).

    Returns:
        ``(F, H, W, 3)`` float32 in [0, 1] (``F = 1`` for an image), or ``None`` when nothing is uploaded.
    """
    entries = upload_entries(value)
    if not entries:
        return None
    entry = entries[0]
    content = bytes(entry["content"])  # memoryview (ipywidgets 8) or bytes
    if not content:
        raise ValueError(f"the {what} file {entry.get('name', '')!r} is empty; upload it again")
    suffix = _suffix(entry, content)
    handle, path = tempfile.mkstemp(suffix=suffix, prefix="cogfun-upload-")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(content)
        if suffix in IMAGE_EXTENSIONS:
            return read_image(path)[None]  # (1, H, W, 3)
        frames, _ = read_video(path, max_frames=max_frames)
        return frames  # (F, H, W, 3)
    except ValueError as err:
        raise ValueError(f"could not read the {what} {entry.get('name', '')!r}: {err}") from None
    finally:
        os.unlink(path)


def upload_value(content: bytes, name: str, mime: str = "") -> tuple[dict, ...]:
    """A ``FileUpload.value`` as ipywidgets 8 builds it after a browser upload (for tests and scripts).

    Args:
        content: the file's bytes.
        name: the file name (its extension decides the decoder).
        mime: the MIME type the browser would report.
    """
    import datetime as dt

    return ({"name": name, "type": mime, "size": len(content), "content": memoryview(content),
             "last_modified": dt.datetime.now(tz=dt.timezone.utc)},)


# ------------------------------------------------------------------------------------------------
# Arrays -> bytes to show
# ------------------------------------------------------------------------------------------------


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    """Encode an image as PNG bytes.

    Args:
        image: ``(H, W)`` grey or ``(H, W, 3)`` RGB, float in [0, 1] or uint8.
        scale: integer nearest-neighbour upscaling (small masks and maps stay visible).
    """
    from PIL import Image

    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if scale > 1:
        array = array.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` in pixels of encoded image bytes (PNG, GIF, ...)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.size


# ------------------------------------------------------------------------------------------------
# Pictures inside the panels
# ------------------------------------------------------------------------------------------------

#: CSS every panel carries (a ``<style>`` in a hidden ``HTML`` widget): pixel pictures stay sharp squares when
#: the browser scales them (narrow output areas shrink them), with a thin frame so white masks do not vanish
#: into the page (an outline takes no room).
PANEL_CSS = "img.cogfun-pixelated { image-rendering: pixelated; outline: 1px solid #9e9e9e; }"


def panel_style():
    """A hidden ``ipywidgets.HTML`` holding :data:`PANEL_CSS`; put it in each panel's root box."""
    import ipywidgets as W

    style = W.HTML(f"<style>{PANEL_CSS}</style>", layout=W.Layout(display="none"))
    style.add_class("cogfun-style")
    return style


def picture(format: str = "png", pixelated: bool = True):
    """An ``ipywidgets.Image`` that the panel's flex box does not stretch: shown at its own pixel size.

    In a ``VBox`` an ``<img>`` without a width is stretched to the box's width (flex ``align-items: stretch``)
    and the browser smooths the stretched pixels. This one starts hidden; :func:`show_picture` sets its bytes
    and its width in pixels (the height follows the aspect ratio), and ``pixelated`` pictures (masks, videos)
    keep square pixels when a narrow output area shrinks them.
    """
    import ipywidgets as W

    # max width: the panel's width less the widget's 2 px margins (ipywidgets' own 100% overflows by them)
    image = W.Image(format=format, layout=W.Layout(display="none", height="auto", max_width="calc(100% - 4px)",
                                                   object_fit="contain", align_self="flex-start"))
    if pixelated:
        image.add_class("cogfun-pixelated")
    return image


def show_picture(widget, data: bytes, zoom: int = 1) -> None:
    """Show encoded image bytes in a :func:`picture` widget at ``zoom`` x their pixel width.

    ``zoom > 1`` lets the browser upscale with nearest-neighbour pixels (``image-rendering: pixelated``): the
    bytes stay small (an animated GIF upscaled in the file is ``zoom**2`` times the pixels to send and save).
    """
    if int(zoom) != zoom or zoom < 1:
        raise ValueError(f"zoom must be a whole number >= 1 (got {zoom}): pixels are repeated, not resampled")
    width, _ = image_size(data)
    widget.value = data
    widget.layout.width = f"{width * int(zoom)}px"
    widget.layout.display = None


def panel_bundle(widget, name: str) -> dict:
    """A panel's display data: its root widget's view, and plain text where a widget cannot be drawn.

    JupyterLab draws widget views from a saved notebook only when the notebook is trusted (and their state was
    saved); elsewhere it shows the ``text/plain`` entry, which here says what the panel is instead of the root
    box's ``repr``.
    """
    data = dict(widget._repr_mimebundle_())
    data["text/plain"] = f"{name}: an interactive panel (run the cell in JupyterLab to use it)"
    return data


def hide_picture(widget) -> None:
    """Empty and hide a :func:`picture` widget (nothing stale stays on screen)."""
    widget.value = b""
    widget.layout.display = "none"


def frame_strip(frames: np.ndarray, gap: int = 1, fill: float = 0.5) -> np.ndarray:
    """Frames side by side with a ``gap``-pixel grey border: ``(F, H, W[, 3]) -> (H, F*W + (F-1)*gap[, 3])``."""
    frames = np.asarray(frames, dtype=np.float32)
    pad = [(0, 0), (0, 0), (0, gap)] + [(0, 0)] * (frames.ndim - 3)
    padded = np.pad(frames, pad, constant_values=fill)  # (F, H, W + gap[, 3])
    strip = np.concatenate(list(padded), axis=1)
    return strip[:, : strip.shape[1] - gap]


def frame_grid(frames: np.ndarray, columns: int, gap: int = 1, fill: float = 0.5) -> np.ndarray:
    """Frames in rows of ``columns`` (the last row padded with ``fill``): ``(F, H, W[, 3]) -> (rows*H', cols*W'[, 3])``."""
    frames = np.asarray(frames, dtype=np.float32)
    columns = max(1, min(columns, len(frames)))
    rows = -(-len(frames) // columns)
    missing = rows * columns - len(frames)
    if missing:
        frames = np.concatenate([frames, np.full((missing, *frames.shape[1:]), fill, dtype=np.float32)])
    strips = [frame_strip(frames[r * columns : (r + 1) * columns], gap, fill) for r in range(rows)]
    pad = [(0, gap), (0, 0)] + [(0, 0)] * (frames.ndim - 3)
    grid = np.concatenate([np.pad(s, pad, constant_values=fill) for s in strips], axis=0)
    return grid[: grid.shape[0] - gap]


def video_bytes(frames: np.ndarray, fps: float, suffix: str = ".mp4") -> bytes:
    """Encode frames as a video file in memory (via a temporary file; mp4 pads odd sizes to even)."""
    handle, path = tempfile.mkstemp(suffix=suffix, prefix="cogfun-video-")
    os.close(handle)
    try:
        write_video(path, frames_to_uint8(frames), fps=fps, pad_to_even=True)
        return Path(path).read_bytes()
    finally:
        os.unlink(path)


def download_link(content: bytes, filename: str, mime: str, label: str | None = None) -> str:
    """An HTML ``<a download>`` link carrying ``content`` as a base64 ``data:`` URI (works without a server)."""
    payload = base64.b64encode(content).decode("ascii")
    label = label or f"Download {filename}"
    return (f'<a class="cogfun-download" download="{html.escape(filename)}" '
            f'style="color:#1565c0; text-decoration:underline" '  # JupyterLab's CSS unstyles links
            f'href="data:{mime};base64,{payload}">{html.escape(label)}</a>')


def unique_path(folder: str | os.PathLike, stem: str, suffix: str) -> Path:
    """``folder/stem.suffix``, or ``stem-2``, ``stem-3``, ... : a path that never overwrites a file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path, n = folder / f"{stem}{suffix}", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}{suffix}"
    return path
