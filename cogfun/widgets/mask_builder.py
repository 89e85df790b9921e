"""The mask builder panel: a mode's or a training kind's mask, and the latent mask channel it becomes.

CogVideoX-Fun sees a mode only through its regenerate-mask (docs/design.md 1.1, 1.2). This panel builds the mask
of any inference mode (``cogfun.masks`` builders) or of any of the ten training kinds
(``cogfun.training.random_masks``), from sliders (box position and size, frame range, frames kept) or drawn
at random with a seed as training draws it, and shows next to it the mask channel the transformer reads:
``resize_mask(1 - mask)`` with the reference method and with the ``"max"`` study alternative. The
last-frame quirk is visible there: with start+end at 4k+1 frames the reference leaves the last latent frame
at 0 (unknown) while ``"max"`` marks it known.

The mask logic is :func:`build_mask` (no widgets), so notebooks can call it too. The pictures are frame
mosaics upscaled by integer factors with nearest-neighbour pixels and shown at their own size (square pixels,
``image-rendering: pixelated``); an invalid setting shows its message in place of the pictures.
"""

from __future__ import annotations

import contextlib
import html
from typing import Sequence

import ipywidgets as W
import torch

from .. import masks as M
from ..training.random_masks import MASK_KINDS, random_mask
from .media import frame_grid, hide_picture, panel_bundle, panel_style, picture, png_bytes, show_picture

# sources of a mask: "mode:<cogfun.masks mode>" or "kind:<training kind>"
MASK_SOURCES: tuple[str, ...] = tuple(f"mode:{m}" for m in M.MODES) + tuple(f"kind:{k}" for k in MASK_KINDS)
_BOX_SOURCES = ("mode:inpaint", "kind:box", "kind:box_span", "kind:ellipse", "kind:circle")
_KEPT_SOURCES = ("mode:continuation", "kind:first_frames", "kind:middle")
_ALWAYS_RANDOM = ("kind:bernoulli", "kind:small_boxes", "kind:random_frames")


def _label(source: str) -> str:
    family, name = source.split(":")
    return f"{'mode' if family == 'mode' else 'training'} · {name.replace('_', ' ')}"


def build_mask(
    source: str,
    num_frames: int,
    height: int,
    width: int,
    box: Sequence[int] | None = None,
    frame_range: Sequence[int] | None = None,
    kept: int = 1,
    seed: int | None = None,
) -> torch.Tensor:
    """The regenerate-mask of one mode or training kind, from explicit settings or a seed.

    Args:
        source: ``"mode:<name>"`` with a name of ``cogfun.masks.MODES`` or ``"kind:<name>"`` with one of
            ``cogfun.training.random_masks.MASK_KINDS`` (all listed in ``MASK_SOURCES``).
        num_frames, height, width: F (4k+1 for modes), H, W in pixels.
        box: ``(top, left, box_height, box_width)`` for ``mode:inpaint``, ``kind:box``, ``kind:box_span``
            (the box), ``kind:ellipse`` (the ellipse inscribed in it) and ``kind:circle`` (the circle of
            diameter ``min(box_height, box_width)`` at its centre); default the centred half-size box.
        frame_range: ``(t0, t1)``, the frames ``[t0, t1)`` of ``kind:box_span``; default all.
        kept: frames kept by ``mode:continuation`` (the overlap) and ``kind:first_frames``; frames kept at
            each end by ``kind:middle``.
        seed: draw the kind as training does (``random_mask`` with this seed) instead of from the settings;
            ``kind:bernoulli``, ``kind:small_boxes`` and ``kind:random_frames`` are always drawn (seed 0 when
            ``None``). Ignored by modes.

    Returns:
        ``(1, F, H, W)`` float32 in {0, 1}, 1 = regenerate (the layout of ``random_mask``).
    """
    if source not in MASK_SOURCES:
        raise ValueError(f"source must be one of {MASK_SOURCES} (got {source!r})")
    f, h, w = num_frames, height, width
    family, name = source.split(":")
    if box is None:
        box = (h // 4, w // 4, h // 2, w // 2)
    top, left, bh, bw = (int(v) for v in box)
    if bh < 1 or bw < 1 or not (0 <= top < h and 0 <= left < w):
        raise ValueError(f"box (top, left, height, width) = {tuple(box)} must start inside the {h}x{w} frame and "
                         "have sides >= 1")
    region = torch.zeros(h, w)  # (H, W)
    region[top : top + bh, left : left + bw] = 1

    if family == "mode":
        zeros_image = torch.zeros(3, h, w)
        if name == "text_to_video":
            cond = M.text_to_video(f, h, w)
        elif name in ("image_to_video", "start_end_to_video"):
            cond = M.image_to_video(zeros_image, f, end_image=zeros_image if name == "start_end_to_video" else None)
        elif name == "video_to_video":
            cond = M.video_to_video(torch.zeros(3, f, h, w))
        elif name == "inpaint":
            cond = M.inpaint(torch.zeros(3, f, h, w), region)
        else:  # continuation: the last `kept` frames of a previous segment
            cond = M.continuation(torch.zeros(3, max(kept, 1), h, w), f, overlap=kept)
        return cond.mask[0].float()  # (1, F, H, W)

    if seed is not None or source in _ALWAYS_RANDOM:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        mask, _ = random_mask(f, h, w, generator, kind=name)
        return mask

    mask = torch.zeros(f, h, w)  # (F, H, W)
    if name == "box":
        mask[:] = region
    elif name == "all":
        mask[:] = 1
    elif name == "first_frames":
        mask[kept:] = 1
    elif name == "middle":
        mask[kept : f - kept] = 1
    elif name == "box_span":
        t0, t1 = (0, f) if frame_range is None else (int(v) for v in frame_range)
        mask[t0:t1] = region
    else:  # ellipse / circle with the box's centre; strict inside test as the training masks
        cy, cx = top + bh / 2 - 0.5, left + bw / 2 - 0.5
        b, a = (bh / 2, bw / 2) if name == "ellipse" else (min(bh, bw) / 2,) * 2
        y = torch.arange(h, dtype=torch.float32).view(h, 1)
        x = torch.arange(w, dtype=torch.float32).view(1, w)
        mask[:] = (((y - cy) / b) ** 2 + ((x - cx) / a) ** 2 < 1).float()
    return mask.unsqueeze(0)  # (1, F, H, W)


def latent_mask_channel(mask: torch.Tensor, spatial_ratio: int = 8, temporal_ratio: int = 4,
                        method: str = "reference") -> torch.Tensor:
    """The known-map the transformer reads (before ``x scaling_factor``): ``resize_mask(1 - mask)``.

    Args:
        mask: ``(1, F, H, W)`` regenerate-mask.
        spatial_ratio, temporal_ratio: the VAE's compression (CogVideoX: 8 and 4, causal first frame).
        method: ``"reference"`` (what checkpoints saw) or ``"max"`` (study alternative).

    Returns:
        ``(F_lat, H / spatial_ratio, W / spatial_ratio)``, 1 = known.
    """
    _, f, h, w = mask.shape
    latent = ((f - 1) // temporal_ratio + 1, max(1, h // spatial_ratio), max(1, w // spatial_ratio))
    return M.resize_mask(1 - mask[None].float(), latent, method=method)[0, 0]  # (F_lat, h, w)


class MaskBuilderPanel:
    """Build a mask with sliders and see its latent mask channel (reference vs ``"max"``).

    Args:
        height, width: H, W in pixels.
        num_frames: F (4k+1).
        spatial_ratio, temporal_ratio: the VAE's compression (8, 4).
        columns: frames per row in the pictures.
        scale: nearest-neighbour zoom of the pixel pictures (latent pictures get ``scale * spatial_ratio``, so
            both line up); default the smallest integer that makes frames at least 64 px on their short side.

    Attributes:
        widget: the root ``VBox``.
        mask: ``(1, F, H, W)`` regenerate-mask of the current settings.
        latent_reference, latent_max: ``(F_lat, h, w)`` known-maps from ``resize_mask`` (``"reference"``, ``"max"``).
    """

    def __init__(self, height: int = 64, width: int = 64, num_frames: int = 49, spatial_ratio: int = 8,
                 temporal_ratio: int = 4, columns: int = 13, scale: int | None = None):
        if (num_frames - 1) % temporal_ratio:
            raise ValueError(f"num_frames must be {temporal_ratio}k+1 (got {num_frames}); try "
                             f"{(num_frames - 1) // temporal_ratio * temporal_ratio + 1}")
        if scale is None:
            scale = max(1, -(-64 // max(1, min(height, width))))
        if int(scale) != scale or scale < 1:
            raise ValueError(f"scale must be a whole number >= 1 (got {scale}): pixels are repeated, not resampled")
        scale = int(scale)
        self.height, self.width, self.num_frames = height, width, num_frames
        self.spatial_ratio, self.temporal_ratio, self.columns, self.scale = spatial_ratio, temporal_ratio, columns, scale
        style = {"description_width": "initial"}
        self._held = False

        self.source = W.Dropdown(options=[(_label(s), s) for s in MASK_SOURCES], value="mode:inpaint",
                                 description="Mask", style=style)
        self.top = W.IntSlider(value=height // 4, min=0, max=height - 1, description="Box top", style=style)
        self.left = W.IntSlider(value=width // 4, min=0, max=width - 1, description="Box left", style=style)
        self.box_height = W.IntSlider(value=height // 2, min=1, max=height, description="Box height", style=style)
        self.box_width = W.IntSlider(value=width // 2, min=1, max=width, description="Box width", style=style)
        self.frame_range = W.IntRangeSlider(value=(0, num_frames), min=0, max=num_frames, description="Frames [t0, t1)",
                                            style=style)
        self.kept = W.IntSlider(value=1, min=1, max=max(1, num_frames - 1), description="Frames kept", style=style)
        self.randomize = W.Checkbox(value=False, description="draw as in training (seed)", indent=False)
        self.seed = W.IntText(value=0, description="Seed", style=style, layout=W.Layout(width="140px"))
        self.pixel_image = picture()
        self.reference_image = picture()
        self.max_image = picture()
        self.summary = W.HTML()
        self.message = W.HTML()

        controls = [self.top, self.left, self.box_height, self.box_width, self.frame_range, self.kept]
        wrap = W.Layout(flex_flow="row wrap", align_items="center")
        self.widget = W.VBox([
            panel_style(),
            W.HTML("<b>Mask builder</b> (white = regenerate; latent maps: white = known)"),
            W.HBox([self.source, self.randomize, self.seed], layout=wrap),
            W.HBox([W.VBox(controls[:3]), W.VBox(controls[3:])], layout=W.Layout(flex_flow="row wrap")),
            self.message,
            W.HTML(f"pixel mask, {num_frames} frames {height}x{width}"), self.pixel_image,
            W.HTML("latent mask channel, <code>resize_mask(1 - mask)</code> (reference)"), self.reference_image,
            W.HTML("latent mask channel, <code>method='max'</code> (study alternative)"), self.max_image,
            self.summary,
        ])
        self.widget.add_class("cogfun-mask-builder")
        for widget in (self.source, self.randomize, self.seed, *controls):
            widget.observe(lambda _: self.update(), names="value")
        self.update()

    def _repr_mimebundle_(self, **kwargs) -> dict:
        return panel_bundle(self.widget, "MaskBuilderPanel")

    def _visibility(self) -> None:
        source = self.source.value
        randomized = source in _ALWAYS_RANDOM or (self.randomize.value and source.startswith("kind:"))
        for slider in (self.top, self.left, self.box_height, self.box_width):
            slider.layout.display = None if (source in _BOX_SOURCES and not randomized) else "none"
        self.frame_range.layout.display = None if (source == "kind:box_span" and not randomized) else "none"
        self.kept.layout.display = None if (source in _KEPT_SOURCES and not randomized) else "none"
        self.seed.layout.display = None if randomized else "none"
        self.randomize.layout.display = None if source.startswith("kind:") and source not in _ALWAYS_RANDOM else "none"

    @contextlib.contextmanager
    def hold_updates(self):
        """Change several widgets and rebuild once at the end: ``with panel.hold_updates(): ...``."""
        self._held = True
        try:
            yield self
        finally:
            self._held = False
            self.update()

    def update(self) -> None:
        """Rebuild the mask from the widgets and redraw (on every widget change, except inside ``hold_updates``)."""
        if self._held:
            return
        self._visibility()
        source = self.source.value
        randomized = source.startswith("kind:") and (self.randomize.value or source in _ALWAYS_RANDOM)
        try:
            self.mask = build_mask(
                source, self.num_frames, self.height, self.width,
                box=(self.top.value, self.left.value, self.box_height.value, self.box_width.value),
                frame_range=self.frame_range.value, kept=self.kept.value,
                seed=self.seed.value if randomized else None,
            )
        except ValueError as err:  # the message replaces the pictures: nothing stale stays on screen
            self.message.value = f'<span class="cogfun-error" style="color:#b00020">{html.escape(str(err))}</span>'
            for image in (self.pixel_image, self.reference_image, self.max_image):
                hide_picture(image)
            self.summary.value = ""
            return
        self.message.value = ""
        self.latent_reference = latent_mask_channel(self.mask, self.spatial_ratio, self.temporal_ratio, "reference")
        self.latent_max = latent_mask_channel(self.mask, self.spatial_ratio, self.temporal_ratio, "max")
        zoom = self.scale * self.spatial_ratio
        show_picture(self.pixel_image, png_bytes(frame_grid(self.mask[0].numpy(), self.columns), self.scale))
        show_picture(self.reference_image, png_bytes(frame_grid(self.latent_reference.numpy(), self.columns), zoom))
        show_picture(self.max_image, png_bytes(frame_grid(self.latent_max.numpy(), self.columns), zoom))
        self.summary.value = self._summary_html()

    def _summary_html(self) -> str:
        known_pixels = (1 - self.mask[0]).flatten(1).mean(1)  # (F,)
        ref = self.latent_reference.flatten(1).mean(1)  # (F_lat,)
        mx = self.latent_max.flatten(1).mean(1)
        cells = "".join(
            f"<tr><td>{k}</td><td>{float(ref[k]):.2f}</td><td>{float(mx[k]):.2f}</td></tr>" for k in range(len(ref))
        )
        return (f"<div>pixel frames kept (fully or partly): {int((known_pixels > 0).sum())} of {len(known_pixels)}; "
                "mean known value per latent frame:</div>"
                f"<table><tr><th>latent frame</th><th>reference</th><th>max</th></tr>{cells}</table>")
