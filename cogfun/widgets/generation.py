"""The generation panel: every CogVideoX-Fun mode from one ipywidgets form.

The reference ships a Gradio UI with a tab per task; here, as in the rest of the kit, a mode is data
(docs/design.md 1.2): the panel reads its widgets, decodes the uploads and calls the one pipeline through its thin
entry points (``text_to_video``, ``image_to_video``, ``video_to_video``, ``inpaint``, ``long_video``). The
denoising steps drive an ``IntProgress`` through the pipeline's ``callback_on_step_end``; the result is shown
as an animated GIF (at least 256 px wide, nearest-neighbour pixels) and offered as an mp4
download at the generated size (a ``data:`` link, and a file when ``output_dir`` is set). Input errors (a
``ValueError`` from the kit: wrong frame count, missing upload, ...) appear in the panel as the message, not as
a traceback, and replace the previous video: what the panel shows is always the last run's outcome.

Drive it from Python exactly as the button does::

    panel = GenerationPanel(CogVideoXFunPipeline(**build_components("tiny")), num_frames=9, num_inference_steps=2)
    panel.mode.value = "image_to_video"
    panel.start_upload.value = upload_value(png, "start.png", "image/png")
    panel.generate_button.click()        # or panel.generate()
    panel.last_frames.shape              # (9, 64, 64, 3)
"""

from __future__ import annotations

import html
import math
import os
import time
import traceback
import warnings
from typing import Any

import ipywidgets as W
import numpy as np
import torch

from ..data.video_io import DEFAULT_FPS, display_scale, gif_bytes
from ..pipelines import SAMPLERS, plan_segments, size_from_image
from ..pipelines.inputs import fit_to_size
from .media import (
    download_link,
    hide_picture,
    panel_bundle,
    panel_style,
    picture,
    show_picture,
    unique_path,
    upload_entries,
    upload_to_frames,
    video_bytes,
)

# label shown in the dropdown -> mode name (cogfun.masks.MODES, plus the long-video driver)
GENERATION_MODES: dict[str, str] = {
    "text-to-video": "text_to_video",
    "image-to-video": "image_to_video",
    "start+end": "start_end_to_video",
    "video-to-video": "video_to_video",
    "inpaint": "inpaint",
    "long video": "long_video",
}

# which optional inputs each mode shows
_MODE_INPUTS: dict[str, tuple[str, ...]] = {
    "text_to_video": (),
    "image_to_video": ("start",),
    "start_end_to_video": ("start", "end"),
    "video_to_video": ("video", "strength"),
    "inpaint": ("video", "mask"),
    "long_video": ("start", "end", "segments"),
}

_STYLE = {"description_width": "initial"}
# buttons and uploads as wide as their label (ipywidgets' fixed 148 px cuts "Mask (white = regenerate)"), never
# squeezed by their row; rows wrap instead of overflowing a narrow output area
_BUTTON = dict(width="auto", flex="0 0 auto")
_ROW = dict(flex_flow="row wrap", align_items="center")


def _shown(widget: W.Widget, visible: bool) -> None:
    widget.layout.display = None if visible else "none"


class GenerationPanel:
    """A form that generates a video with a ``CogVideoXFunPipeline`` in any mode.

    Args:
        pipe: a ``CogVideoXFunPipeline`` (its sampler can be switched from the panel).
        height, width: initial size in pixels (multiples of 16); default the transformer's sample size.
        num_frames: initial frame count (4k+1; any count in long-video mode); default the model's
            ``generation_defaults``.
        num_inference_steps, guidance_scale, seed: initial sampler settings (default the model's).
        strength: initial video-to-video strength (reference default 0.70).
        fps: frame rate of the preview and the mp4.
        base_size: side of the bucket area for "resize to the start image"; default ``sqrt(height * width)``.
        output_dir: where each generated mp4 is also saved (a new file per run, never overwritten);
            ``None`` keeps videos in memory (the download link still works).

    Attributes:
        widget: the root ``VBox`` (display it, or the panel itself).
        last_frames: ``(F, H, W, 3)`` float32 in [0, 1] of the last generation when it succeeded, else ``None``
            (a failed run clears the video shown, its download link, ``last_frames`` and ``last_path``).
        last_error: the message of the last failed generation, else ``None``.
        last_path: the mp4 saved by the last generation when ``output_dir`` is set and it succeeded.
        steps_done: denoising steps reported by the pipeline during the last generation.
    """

    def __init__(
        self,
        pipe: Any,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int = 0,
        strength: float = 0.70,
        fps: float = DEFAULT_FPS,
        base_size: int | None = None,
        output_dir: str | os.PathLike | None = None,
    ):
        self.pipe = pipe
        self.fps = fps
        self.output_dir = output_dir
        self.last_frames: np.ndarray | None = None
        self.last_error: str | None = None
        self.last_traceback: str | None = None
        self.last_path = None
        self.steps_done = 0
        self._mask_override: np.ndarray | torch.Tensor | None = None
        self._decoded: dict[int, tuple[tuple, np.ndarray]] = {}

        # the model folder's generation defaults (generation_defaults.json), else the released checkpoints'
        defaults = getattr(pipe, "generation_defaults", None)
        num_frames = num_frames or (defaults.num_frames if defaults else 49)
        num_inference_steps = num_inference_steps or (defaults.num_inference_steps if defaults else 50)
        guidance_scale = guidance_scale if guidance_scale is not None else (defaults.guidance_scale if defaults else 6.0)
        scale = pipe.vae_scale_factor_spatial
        if height is None and width is None and defaults is not None and defaults.height is not None:
            height, width = defaults.height, defaults.width
        height = height or pipe.transformer.config.sample_height * scale
        width = width or pipe.transformer.config.sample_width * scale
        base_size = base_size or max(16, int(round(math.sqrt(height * width) / 16)) * 16)

        # 1. Inputs.
        self.mode = W.Dropdown(options=list(GENERATION_MODES.items()), value="text_to_video", description="Mode",
                               style=_STYLE)
        self.sampler = W.Dropdown(options=list(SAMPLERS), value=pipe.sampler if pipe.sampler in SAMPLERS else "ddim",
                                  description="Sampler", style=_STYLE)
        # width "auto": the panel's column stretches them to its width, margins included ("100%" overflows it)
        self.prompt = W.Textarea(value="", placeholder="what the video shows", description="Prompt", style=_STYLE,
                                 layout=W.Layout(width="auto"))
        self.negative_prompt = W.Text(value="", placeholder="what to avoid", description="Negative prompt",
                                      style=_STYLE, layout=W.Layout(width="auto"))
        self.start_upload = W.FileUpload(accept="image/*", description="Start image", layout=W.Layout(**_BUTTON))
        self.end_upload = W.FileUpload(accept="image/*", description="End image", layout=W.Layout(**_BUTTON))
        self.video_upload = W.FileUpload(accept="video/*,image/gif", description="Video", layout=W.Layout(**_BUTTON))
        self.mask_upload = W.FileUpload(accept="image/*,video/*", description="Mask (white = regenerate)",
                                        layout=W.Layout(**_BUTTON))

        # 2. Size and sampling.
        self.height = W.BoundedIntText(value=height, min=16, max=4096, step=16, description="Height", style=_STYLE,
                                       layout=W.Layout(width="140px"))
        self.width = W.BoundedIntText(value=width, min=16, max=4096, step=16, description="Width", style=_STYLE,
                                      layout=W.Layout(width="140px"))
        self.base_size = W.BoundedIntText(value=base_size, min=16, max=4096, step=16, description="Base size",
                                          style=_STYLE, layout=W.Layout(width="160px"))
        self.resize_to_start = W.Checkbox(value=False, description="resize to the start image", indent=False,
                                          layout=W.Layout(width="auto"))
        self.fit_size_button = W.Button(description="Fit size to start image", icon="expand",
                                        layout=W.Layout(**_BUTTON))
        self.num_frames = W.BoundedIntText(value=num_frames, min=1, max=100000, description="Frames", style=_STYLE,
                                           layout=W.Layout(width="140px"))
        self.steps = W.BoundedIntText(value=num_inference_steps, min=1, max=1000, description="Steps", style=_STYLE,
                                      layout=W.Layout(width="140px"))
        self.guidance = W.BoundedFloatText(value=guidance_scale, min=0.0, max=50.0, step=0.5, description="Guidance",
                                           style=_STYLE, layout=W.Layout(width="160px"))
        self.seed = W.IntText(value=seed, description="Seed", style=_STYLE, layout=W.Layout(width="160px"))
        self.strength = W.FloatSlider(value=strength, min=0.05, max=1.0, step=0.05, description="Strength",
                                      style=_STYLE)
        self.segment_frames = W.BoundedIntText(value=25, min=5, max=1000, step=4, description="Segment frames",
                                               style=_STYLE, layout=W.Layout(width="190px"))
        self.overlap = W.BoundedIntText(value=4, min=1, max=1000, description="Overlap", style=_STYLE,
                                        layout=W.Layout(width="140px"))

        # 3. Action and results.
        self.generate_button = W.Button(description="Generate", button_style="primary", icon="play",
                                        layout=W.Layout(**_BUTTON))
        self.generate_button.add_class("cogfun-generate")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="Steps", style=_STYLE)
        self.status = W.HTML(value="")
        self.status.add_class("cogfun-status")
        self.message = W.HTML(value="")
        self.preview = picture("gif")  # shown >= 256 px wide with square pixels
        self.preview.add_class("cogfun-preview")
        self.download = W.HTML(value="")

        row = lambda *children: W.HBox(list(children), layout=W.Layout(**_ROW))  # noqa: E731
        self.widget = W.VBox([
            panel_style(),
            W.HTML("<b>CogVideoX-Fun generation</b>"),
            row(self.mode, self.sampler),
            self.prompt,
            self.negative_prompt,
            row(self.start_upload, self.end_upload, self.video_upload, self.mask_upload),
            row(self.height, self.width, self.base_size, self.resize_to_start, self.fit_size_button),
            row(self.num_frames, self.steps, self.guidance, self.seed),
            row(self.strength, self.segment_frames, self.overlap),
            row(self.generate_button, self.progress, self.status),
            self.message,
            self.preview,
            self.download,
        ])
        self.widget.add_class("cogfun-generation-panel")

        # 4. Wiring.
        self.generate_button.on_click(lambda _: self.generate())
        self.fit_size_button.on_click(lambda _: self._fit_size_clicked())
        self.mode.observe(lambda _: self._update_visibility(), names="value")
        for upload in (self.start_upload, self.video_upload):
            upload.observe(lambda _: self._maybe_fit_size(), names="value")
        self.resize_to_start.observe(lambda _: self._maybe_fit_size(), names="value")
        self._update_visibility()

    # --------------------------------------------------------------------------------------------
    # Display
    # --------------------------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs) -> dict:
        return panel_bundle(self.widget, "GenerationPanel")

    def _update_visibility(self) -> None:
        inputs = _MODE_INPUTS[self.mode.value]
        _shown(self.start_upload, "start" in inputs)
        _shown(self.end_upload, "end" in inputs)
        _shown(self.video_upload, "video" in inputs)
        _shown(self.mask_upload, "mask" in inputs)
        _shown(self.strength, "strength" in inputs)
        _shown(self.segment_frames, "segments" in inputs)
        _shown(self.overlap, "segments" in inputs)

    def _show_message(self, text: str, kind: str = "error") -> None:
        color = {"error": "#b00020", "note": "#8a6d00"}[kind]
        body = html.escape(text).replace("\n", "<br>")
        self.message.value = f'<div class="cogfun-{kind}" style="color:{color}; white-space:normal">{body}</div>'

    # --------------------------------------------------------------------------------------------
    # Inputs
    # --------------------------------------------------------------------------------------------

    def _read(self, upload: W.FileUpload, what: str, max_frames: int | None = None) -> np.ndarray | None:
        """Frames of an upload ``(F, H, W, 3)``, decoded once per uploaded file."""
        entries = upload_entries(upload.value)
        if not entries:
            return None
        entry = entries[0]
        key = (entry.get("name"), entry.get("size"), len(bytes(entry["content"])), max_frames)
        cached = self._decoded.get(id(upload))
        if cached is not None and cached[0] == key:
            return cached[1]
        frames = upload_to_frames(upload.value, max_frames=max_frames, what=what)
        self._decoded[id(upload)] = (key, frames)
        return frames

    def set_mask(self, mask: np.ndarray | torch.Tensor | None) -> None:
        """Use this inpaint mask when no mask file is uploaded (e.g. ``MaskBuilderPanel.mask``).

        Args:
            mask: 1 = regenerate; ``(H, W)`` tiled over frames, ``(F, H, W)`` or ``(1, F, H, W)``; ``None`` clears.
        """
        self._mask_override = mask

    def _size_source(self) -> np.ndarray | None:
        start = self._read(self.start_upload, "start image")
        if start is not None:
            return start[0]
        video = self._read(self.video_upload, "video", max_frames=1)
        return None if video is None else video[0]

    def fit_size_to_start(self) -> tuple[int, int]:
        """Set height and width to the aspect-ratio bucket of the start image (or the video's first frame).

        Returns:
            the new ``(height, width)`` (``cogfun.pipelines.size_from_image`` around ``base_size``).
        """
        source = self._size_source()
        if source is None:
            raise ValueError("upload a start image (or a video) first: 'resize to the start image' takes its "
                             "aspect ratio")
        height, width = size_from_image(source, base_size=self.base_size.value)
        self.height.value, self.width.value = height, width
        return height, width

    def _fit_size_clicked(self) -> None:
        try:
            height, width = self.fit_size_to_start()
            self.status.value = f"size set to {height}x{width} from the start image"
        except ValueError as err:
            self._show_message(str(err))

    def _maybe_fit_size(self) -> None:
        if self.resize_to_start.value:
            try:
                if self._size_source() is not None:
                    self.fit_size_to_start()
            except ValueError as err:
                self._show_message(str(err))

    def _mask(self, num_frames: int, height: int, width: int) -> torch.Tensor:
        """The inpaint mask ``(H, W)`` or ``(F, H, W)`` in [0, 1] (1 = regenerate), fitted to the video size."""
        frames = self._read(self.mask_upload, "mask", max_frames=num_frames)
        if frames is not None:
            mask = torch.from_numpy(frames.mean(axis=-1))  # (F, H, W): grey level, white = regenerate
        elif self._mask_override is not None:
            mask = torch.as_tensor(np.asarray(self._mask_override), dtype=torch.float32)
            mask = mask.reshape(-1, *mask.shape[-2:])  # (F or 1, H, W)
        else:
            raise ValueError("inpaint needs a mask: upload a mask image or video (white = regenerate), or call "
                             "panel.set_mask(...)")
        mask = fit_to_size(mask, height, width, "mask")  # (F, H, W)
        return mask[0] if mask.shape[0] == 1 else mask

    # --------------------------------------------------------------------------------------------
    # Generation
    # --------------------------------------------------------------------------------------------

    def _on_step(self, pipe: Any, step: int, timestep: Any, tensors: dict) -> dict:
        self.steps_done += 1
        self.progress.value = min(self.steps_done, self.progress.max)
        return {}

    def _callbacks_per_call(self, strength: float) -> int:
        # the loop runs once per timestep left after the strength cut (PNDM's schedule is not `steps` long)
        timesteps, _ = self.pipe.get_timesteps(self.steps.value, strength, "cpu")
        return len(timesteps)

    def _run(self) -> np.ndarray:
        """Read the widgets and call the pipeline; returns ``(F, H, W, 3)`` in [0, 1]."""
        mode = self.mode.value
        if not self.prompt.value.strip():
            raise ValueError("write a prompt first")
        if self.sampler.value != self.pipe.sampler:
            self.pipe.set_sampler(self.sampler.value)
        if self.resize_to_start.value and self._size_source() is not None:
            self.fit_size_to_start()
        height, width, num_frames = self.height.value, self.width.value, self.num_frames.value
        common = dict(
            negative_prompt=self.negative_prompt.value or None,
            num_inference_steps=self.steps.value,
            guidance_scale=self.guidance.value,
            generator=torch.Generator("cpu").manual_seed(self.seed.value),
            callback_on_step_end=self._on_step,
            height=height,
            width=width,
        )
        prompt = self.prompt.value
        start = self._read(self.start_upload, "start image")
        end = self._read(self.end_upload, "end image")

        # 1. Progress: callbacks per pipeline call x number of calls.
        strength = self.strength.value if mode == "video_to_video" else 1.0
        calls = len(plan_segments(num_frames, self.segment_frames.value, self.overlap.value)) if mode == "long_video" else 1
        self.steps_done = 0
        self.progress.value = 0
        self.progress.max = max(1, calls * self._callbacks_per_call(strength))

        # 2. One entry point per mode; all go through the same __call__.
        if mode == "text_to_video":
            return self.pipe.text_to_video(prompt, num_frames=num_frames, **common).frames[0]
        if mode in ("image_to_video", "start_end_to_video"):
            if start is None:
                raise ValueError(f"{mode.replace('_', '-')} needs a start image: upload one with 'Start image'")
            if mode == "start_end_to_video" and end is None:
                raise ValueError("start+end needs an end image: upload one with 'End image'")
            end_image = end[0] if mode == "start_end_to_video" else None
            return self.pipe.image_to_video(prompt, image=start[0], end_image=end_image, num_frames=num_frames,
                                            **common).frames[0]
        if mode in ("video_to_video", "inpaint"):
            video = self._read(self.video_upload, "video", max_frames=num_frames)
            if video is None:
                raise ValueError(f"{mode.replace('_', '-')} needs a video: upload one with 'Video'")
            if mode == "video_to_video":
                return self.pipe.video_to_video(prompt, video=video, strength=strength, num_frames=num_frames,
                                                **common).frames[0]
            mask = self._mask(num_frames, height, width)
            return self.pipe.inpaint(prompt, video=video, mask=mask, num_frames=num_frames, **common).frames[0]
        if mode == "long_video":
            return self.pipe.long_video(
                prompt, num_frames, segment_frames=self.segment_frames.value, overlap=self.overlap.value,
                image=None if start is None else start[0], end_image=None if end is None else end[0], **common,
            )
        raise ValueError(f"unknown mode {mode!r}; choose one of {list(GENERATION_MODES.values())}")

    def generate(self) -> np.ndarray | None:
        """What the Generate button does: read the widgets, generate, show the video or the error.

        Returns:
            ``(F, H, W, 3)`` float32 in [0, 1] (also ``last_frames``), or ``None`` when it failed (the message
            is in the panel and in ``last_error``).
        """
        self.generate_button.disabled = True
        self.message.value = ""
        self._clear_result()  # the previous video never stays under a new run's progress or error
        self.status.value = "generating..."
        began = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                frames = np.asarray(self._run(), dtype=np.float32)  # (F, H, W, 3)
            notes = sorted({str(w.message) for w in caught if "cogfun" in str(w.filename)})
        except Exception as err:  # noqa: BLE001  the panel is the place to show it
            self.last_error = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
            self.last_traceback = traceback.format_exc()
            hint = "" if isinstance(err, ValueError) else "\n(unexpected error: the traceback is in panel.last_traceback)"
            self._show_message(f"Cannot generate: {self.last_error}{hint}")
            self.status.value = "failed"
            self.progress.value = 0
            return None
        finally:
            self.generate_button.disabled = False

        self.last_error, self.last_traceback = None, None
        self.last_frames = frames
        self.progress.value = self.progress.max
        self._show_result(frames, time.perf_counter() - began)
        if notes:
            self._show_message("\n".join(notes), kind="note")
        return frames

    def _clear_result(self) -> None:
        """Hide the last video and its download link; ``last_frames`` and ``last_path`` become ``None``."""
        hide_picture(self.preview)
        self.download.value = ""
        self.last_frames, self.last_path = None, None

    def _show_result(self, frames: np.ndarray, seconds: float) -> None:
        f, h, w, _ = frames.shape
        # shown >= 256 px wide, upscaled by the browser with nearest-neighbour pixels (a GIF upscaled in the file
        # is zoom**2 times larger in the notebook); the mp4 keeps the generated size
        show_picture(self.preview, gif_bytes(frames, fps=self.fps), zoom=display_scale(w))
        stem = f"cogfun-{self.mode.value}-seed{self.seed.value}"
        content = video_bytes(frames, fps=self.fps)
        links = [download_link(content, f"{stem}.mp4", "video/mp4", "Download mp4")]
        self.last_path = None
        if self.output_dir is not None:
            self.last_path = unique_path(self.output_dir, stem, ".mp4")
            self.last_path.write_bytes(content)
            links.append(f"saved to <code>{html.escape(str(self.last_path))}</code>")
        self.download.value = " &nbsp; ".join(links)
        self.status.value = (f"{f} frames {h}x{w}, {self.steps.value} steps ({self.pipe.sampler}), "
                             f"seed {self.seed.value}: {seconds:.1f} s")
