"""Conditioning for every mode of CogVideoX-Fun: a mode is a `(video, mask)`, not a pipeline.

CogVideoX-Fun is an inpaint DiT: text-to-video, image-to-video, start+end, video-to-video, video
inpainting and long-video continuation all reach the transformer the same way, as a pixel video
and a mask saying which pixels to regenerate (docs/design.md 1.1 and 1.2). This module builds those
pairs (one builder per mode) and turns them into the `inpaint_latents` the transformer reads after
the noisy latents. Facts follow the reference implementation, VideoX-Fun
(`cogvideox/pipeline/pipeline_cogvideox_fun_inpaint.py`: `resize_mask`,
`add_noise_to_reference_video`, the mask branch of `__call__`; `cogvideox/utils/utils.py`:
`get_image_to_video_latent`, `get_video_to_video_latent`).

Layout convention (the whole kit uses it):
    pixels   `(B, C=3, F, H, W)` float in [-1, 1]  -- diffusers' layout, what
             `AutoencoderKLCogVideoX.encode` expects.
    masks    `(B, 1, F, H, W)` float in {0, 1}; 1 = regenerate, 0 = keep (the reference's 255 / 0).
    latents  `(B, F_lat, C, H_lat, W_lat)` -- transformer layout, F_lat = (F - 1) // 4 + 1,
             H_lat = H / 8, W_lat = W / 8 for the CogVideoX VAE.

Inpaint latents, channel order `[mask (1) | masked-video latents (C)]`, concatenated by the
transformer after the noisy latents (16 + 1 + 16 = 33 input channels):
    mask channel   = resize_mask(1 - mask) * scaling_factor     (so 1 * scaling_factor = known)
    masked latents = vae.encode(masked_video(video, mask)).latent_dist.mode() * scaling_factor
A sample whose mask regenerates everything gets all-zero inpaint latents, as in the reference.

Known quirk (kept, not hidden; docs/design.md 1.1): `resize_mask` maps pixel frames 1.. to latent
frames with a trilinear resize (align_corners=False), so latent frame k >= 1 reads the mean of
pixel frames 4k-2 and 4k-1 and never pixel frame 4k -- in particular never the last frame. With
an end image at frame 48 of 49, the mask channel of the last latent frame is exactly 0 (the same
as plain image-to-video): the end image reaches the model only through the masked latents.
`resize_mask(..., method="max")` is a study alternative that cannot drop a frame; released
checkpoints were NOT trained with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from .models.cpu_batching import run_as_pair

MODES = (
    "text_to_video",
    "image_to_video",
    "start_end_to_video",
    "video_to_video",
    "inpaint",
    "continuation",
)

# Noise augmentation of the reference video (`add_noise_in_inpaint_model`): fixed sigma at
# inference (the reference pipeline's `noise_aug_strength` default), log-normal in training.
INFERENCE_NOISE_SIGMA = 0.0563
TRAINING_LOG_SIGMA_MEAN = -3.0
TRAINING_LOG_SIGMA_STD = 0.5

RESIZE_METHODS = ("reference", "max")


# ----------------------------------------------------------------------------------------------
# The conditioning record
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Conditioning:
    """What one mode gives the pipeline: a pixel video, a regenerate-mask and the mode's name.

    Attributes:
        video: `(B, 3, F, H, W)` float in [-1, 1], or None for text-to-video (nothing to keep).
            Frames under mask 1 are only an init for SDEdit (`strength < 1`); the inpaint latents
            replace them by -1.
        mask: `(B, 1, F, H, W)` float in {0, 1}, 1 = regenerate, 0 = keep.
        mode: one of `MODES`.
    """

    video: torch.Tensor | None
    mask: torch.Tensor
    mode: str

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} (got {self.mode!r})")
        if self.mask.ndim != 5 or self.mask.shape[1] != 1:
            raise ValueError(
                f"mask must have shape (B, 1, F, H, W) (got {tuple(self.mask.shape)}); "
                "build it with a cogfun.masks builder"
            )
        _check_num_frames(self.mask.shape[2])
        if self.video is None:
            if not bool((self.mask == 1).all()):
                raise ValueError(
                    "a mask that keeps pixels needs a video to keep them from; pass video= "
                    "or use text_to_video()"
                )
            return
        b, _, f, h, w = self.mask.shape
        if self.video.ndim != 5 or self.video.shape[1] != 3:
            raise ValueError(
                f"video must have shape (B, 3, F, H, W) (got {tuple(self.video.shape)})"
            )
        if (self.video.shape[0], *self.video.shape[2:]) != (b, f, h, w):
            raise ValueError(
                f"video {tuple(self.video.shape)} and mask {tuple(self.mask.shape)} must agree on "
                "B, F, H, W"
            )

    @property
    def batch_size(self) -> int:
        return self.mask.shape[0]

    @property
    def num_frames(self) -> int:
        return self.mask.shape[2]

    @property
    def height(self) -> int:
        return self.mask.shape[3]

    @property
    def width(self) -> int:
        return self.mask.shape[4]

    def fully_masked(self) -> torch.Tensor:
        """`(B,)` bool: True where a sample regenerates every pixel (zero inpaint latents)."""
        return (self.mask >= 0.5).flatten(1).all(dim=1)


# ----------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------


def _check_num_frames(num_frames: int) -> None:
    # The CogVideoX VAE compresses time 4x with a causal first frame: 4k+1 frames -> k+1 latents.
    if num_frames < 1 or (num_frames - 1) % 4 != 0:
        lower = max(1, (num_frames - 1) // 4 * 4 + 1)
        raise ValueError(
            f"num_frames must be 4k+1 (got {num_frames}); try {lower} or {lower + 4}"
        )


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a torch.Tensor or numpy array (got {type(x).__name__})")
    return x


def _check_pixels(name: str, x: torch.Tensor) -> None:
    if not x.is_floating_point():
        raise ValueError(
            f"{name} must be float in [-1, 1] (got dtype {x.dtype}); map uint8 pixels with "
            "x / 127.5 - 1"
        )
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.001 or hi > 1.001:
        raise ValueError(
            f"{name} must be in [-1, 1] (got values in [{lo:.3g}, {hi:.3g}]); map [0, 1] with "
            "x * 2 - 1 and [0, 255] with x / 127.5 - 1"
        )


def _video_5d(name: str, video) -> torch.Tensor:
    video = _as_tensor(video)
    if video.ndim == 4:  # (3, F, H, W) -> (1, 3, F, H, W)
        video = video.unsqueeze(0)
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(
            f"{name} must have shape (B, 3, F, H, W) or (3, F, H, W) (got {tuple(video.shape)})"
        )
    _check_pixels(name, video)
    return video


def _image_4d(name: str, image) -> torch.Tensor:
    image = _as_tensor(image)
    if image.ndim == 3:  # (3, H, W) -> (1, 3, H, W)
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(
            f"{name} must have shape (3, H, W) or (B, 3, H, W) (got {tuple(image.shape)})"
        )
    _check_pixels(name, image)
    return image


# ----------------------------------------------------------------------------------------------
# Builders, one per mode (docs/design.md 1.2)
# ----------------------------------------------------------------------------------------------


def text_to_video(
    num_frames: int,
    height: int,
    width: int,
    batch_size: int = 1,
    device: torch.device | str | None = None,
) -> Conditioning:
    """Text-to-video: nothing to keep, everything regenerated.

    Args:
        num_frames: F, 4k+1.
        height, width: H, W in pixels.
        batch_size: B.
        device: where the mask lives.

    Returns:
        Conditioning with `video=None` and mask `(B, 1, F, H, W)` all ones; its inpaint latents
        are all zeros and the VAE is never called.
    """
    _check_num_frames(num_frames)
    mask = torch.ones(batch_size, 1, num_frames, height, width, device=device)  # (B, 1, F, H, W)
    return Conditioning(video=None, mask=mask, mode="text_to_video")


def image_to_video(start_image, num_frames: int, end_image=None) -> Conditioning:
    """Image-to-video (start image) and start+end image to video.

    As the reference's `get_image_to_video_latent`: the start image is repeated on every frame
    (the repeats are only an SDEdit init; the model sees -1 there), frame 0 is kept. With an end
    image the last frame holds it and is kept too.

    Args:
        start_image: `(3, H, W)` or `(B, 3, H, W)` float in [-1, 1]. Required.
        num_frames: F, 4k+1 (at least 5 with an end image).
        end_image: optional `(3, H, W)` or `(B, 3, H, W)`, same H, W as the start image.

    Returns:
        Conditioning: video `(B, 3, F, H, W)`, mask `(B, 1, F, H, W)` = 1 except frame 0 (and the
        last frame with an end image) = 0.
    """
    if start_image is None:
        if end_image is not None:
            raise ValueError(
                "end_image needs a start_image (the model keeps frame 0 and the last frame); "
                "pass start_image=, or inpaint() with your own video and mask"
            )
        raise ValueError("image_to_video needs a start_image; for no image use text_to_video()")
    _check_num_frames(num_frames)
    start = _image_4d("start_image", start_image)  # (B, 3, H, W)
    video = start.unsqueeze(2).repeat(1, 1, num_frames, 1, 1)  # (B, 3, F, H, W)
    mask = torch.ones_like(video[:, :1])  # (B, 1, F, H, W)
    mask[:, :, 0] = 0
    mode = "image_to_video"

    if end_image is not None:
        if num_frames < 2:
            raise ValueError("a start and an end image need num_frames >= 5 (got 1)")
        end = _image_4d("end_image", end_image).to(video)  # (B', 3, H, W)
        if end.shape[-2:] != start.shape[-2:]:
            raise ValueError(
                f"start_image is {start.shape[-2]}x{start.shape[-1]} but end_image is "
                f"{end.shape[-2]}x{end.shape[-1]}; resize both to the video size"
            )
        if end.shape[0] not in (1, video.shape[0]):
            raise ValueError(
                f"start_image has batch {start.shape[0]} but end_image has batch {end.shape[0]}; "
                "give one end image or one per start image"
            )
        video[:, :, -1] = end
        mask[:, :, -1] = 0
        mode = "start_end_to_video"
    return Conditioning(video=video, mask=mask, mode=mode)


def video_to_video(video) -> Conditioning:
    """Video-to-video: the input video is only an init; everything is regenerated.

    The change is controlled by the pipeline's `strength` (SDEdit, default 0.70): the denoising
    starts from the noised video latents. The mask is all ones, so the inpaint latents are zero,
    as with the reference's `get_video_to_video_latent` without a mask.

    Args:
        video: `(B, 3, F, H, W)` or `(3, F, H, W)` float in [-1, 1], F = 4k+1.

    Returns:
        Conditioning with the video and mask `(B, 1, F, H, W)` all ones.
    """
    video = _video_5d("video", video)  # (B, 3, F, H, W)
    _check_num_frames(video.shape[2])
    mask = torch.ones_like(video[:, :1])  # (B, 1, F, H, W)
    return Conditioning(video=video, mask=mask, mode="video_to_video")


def inpaint(video, mask, threshold: float = 0.5) -> Conditioning:
    """Video inpainting with a user mask (1 / 255 = regenerate, 0 = keep).

    Scaling and binarisation: a mask (bool, integer or float) whose maximum exceeds 1 is read as
    [0, 255] and divided by 255, otherwise as [0, 1] (so a 0/1 uint8 array works too); then
    `mask >= threshold` -> 1.
    The reference binarises too (its pipeline's mask processor thresholds at 0.5; its
    `get_video_to_video_latent` first thresholds mask images at 240/255), so soft masks never
    reach the model; pass `threshold=240/255` to match its mask-file loading.

    Args:
        video: `(B, 3, F, H, W)` or `(3, F, H, W)` float in [-1, 1], F = 4k+1.
        mask: one image tiled over all frames -- `(H, W)`, `(1, H, W)`, `(B, 1, H, W)` -- or one
            per frame -- `(F, H, W)`, `(1, F, H, W)`, `(B, 1, F, H, W)`. A batch of 1 is shared
            by every sample.
        threshold: binarisation threshold on the [0, 1] scale.

    Returns:
        Conditioning with the video and mask `(B, 1, F, H, W)` in {0, 1}.
    """
    video = _video_5d("video", video)  # (B, 3, F, H, W)
    b, _, f, h, w = video.shape
    _check_num_frames(f)
    mask = _as_tensor(mask)
    shape = tuple(mask.shape)

    # 1. Bring every accepted layout to (B' or 1, 1, F' or 1, H, W).
    if mask.ndim == 2:  # (H, W)
        mask = mask[None, None, None]
    elif mask.ndim == 3:  # (1, H, W) one image, or (F, H, W) one per frame
        mask = mask[None, None]
    elif mask.ndim == 4:
        if mask.shape[1] == 1:  # (B, 1, H, W) one image per sample
            mask = mask.unsqueeze(2)
        elif mask.shape[0] == 1:  # (1, F, H, W) one per frame
            mask = mask.unsqueeze(0)
        else:
            raise ValueError(
                f"a 4-D mask must be (B, 1, H, W) or (1, F, H, W) (got {shape}); "
                "give (B, 1, F, H, W) for per-sample per-frame masks"
            )
    elif mask.ndim != 5 or mask.shape[1] != 1:
        raise ValueError(
            f"mask must be (H, W), (1, H, W), (F, H, W), (B, 1, H, W), (1, F, H, W) or "
            f"(B, 1, F, H, W) (got {shape})"
        )

    # 2. Check it against the video.
    if mask.shape[-2:] != (h, w):
        raise ValueError(
            f"mask is {mask.shape[-2]}x{mask.shape[-1]} but the video is {h}x{w}; resize the "
            "mask to the video size"
        )
    if mask.shape[2] not in (1, f):
        raise ValueError(
            f"mask has {mask.shape[2]} frames but the video has {f}; give one mask image or "
            "one per frame"
        )
    if mask.shape[0] not in (1, b):
        raise ValueError(
            f"mask has batch {mask.shape[0]} but the video has batch {b}; give one mask or one "
            "per sample"
        )

    # 3. Scale to [0, 1] and binarise.
    mask = mask.float()
    if float(mask.min()) < 0:
        raise ValueError(
            f"mask values must be in [0, 1] or [0, 255] (got min {float(mask.min()):.3g})"
        )
    if float(mask.max()) > 1:  # a [0, 255] mask (uint8 or float)
        mask = mask / 255
    mask = (mask >= threshold).to(device=video.device, dtype=video.dtype)
    mask = mask.expand(b, 1, f, h, w).contiguous()  # (B, 1, F, H, W)
    return Conditioning(video=video, mask=mask, mode="inpaint")


def continuation(previous_frames, num_frames: int, overlap: int = 4) -> Conditioning:
    """Long-video continuation: the next segment starts from the last frames of the previous one.

    The last `overlap` frames of `previous_frames` become frames 0..overlap-1, kept (mask 0).
    The remaining frames are filled by repeating the last given frame, mask 1 -- the fill is only
    an SDEdit init, the model sees -1 there. (The reference's long-video path goes through
    `get_image_to_video_latent` with a list of images, which tiles the FIRST kept frame instead;
    the inpaint latents are identical either way.)

    Args:
        previous_frames: `(B, 3, F_prev, H, W)` or `(3, F_prev, H, W)` float in [-1, 1],
            F_prev >= overlap.
        num_frames: F of the new segment, 4k+1 (reference default 25).
        overlap: number of frames carried over (reference default 4), 1 <= overlap < num_frames.

    Returns:
        Conditioning with video `(B, 3, F, H, W)` and mask `(B, 1, F, H, W)`.
    """
    _check_num_frames(num_frames)
    prev = _video_5d("previous_frames", previous_frames)  # (B, 3, F_prev, H, W)
    if overlap < 1 or overlap >= num_frames:
        raise ValueError(
            f"overlap must be in [1, num_frames) (got overlap={overlap}, num_frames="
            f"{num_frames}); the new segment needs frames to generate"
        )
    if prev.shape[2] < overlap:
        raise ValueError(
            f"previous_frames has {prev.shape[2]} frames but overlap is {overlap}; give at "
            "least overlap frames or lower overlap"
        )
    kept = prev[:, :, -overlap:]  # (B, 3, ov, H, W)
    fill = kept[:, :, -1:].expand(-1, -1, num_frames - overlap, -1, -1)  # (B, 3, F - ov, H, W)
    video = torch.cat([kept, fill], dim=2)  # (B, 3, F, H, W)
    mask = torch.ones_like(video[:, :1])  # (B, 1, F, H, W)
    mask[:, :, :overlap] = 0
    return Conditioning(video=video, mask=mask, mode="continuation")


# ----------------------------------------------------------------------------------------------
# Pixel-space helpers
# ----------------------------------------------------------------------------------------------


def masked_video(video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The video where kept, -1 where regenerated (the reference's pixel convention).

    Rule: `mask >= 0.5` -> -1. The reference pipeline writes
    `video * (mask < 0.5) + (-1) * (mask > 0.5)`, which gives 0 (not -1) at exactly 0.5, and its
    training data writes the soft blend `video * (1 - mask) - mask`; all three agree on the
    binary masks the builders produce.

    Args:
        video: `(B, 3, F, H, W)` in [-1, 1].
        mask: `(B, 1, F, H, W)` (or broadcastable), 1 = regenerate.

    Returns:
        `(B, 3, F, H, W)`.
    """
    return torch.where(mask >= 0.5, torch.full_like(video, -1.0), video)


def training_noise_sigma(
    batch_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Per-sample noise-augmentation sigma used in training: `exp(N(-3, 0.5))`.

    Median exp(-3) ~ 0.0498, close to the inference sigma 0.0563.

    Args:
        batch_size: B.
        generator: torch generator for reproducible draws (on `device`).

    Returns:
        `(B,)` sigmas.
    """
    # drawn on the generator's device (a CPU generator may drive a GPU run), then moved
    gen_device = generator.device if generator is not None else device
    log_sigma = torch.randn(batch_size, generator=generator, device=gen_device, dtype=torch.float32).to(device)
    log_sigma = TRAINING_LOG_SIGMA_MEAN + TRAINING_LOG_SIGMA_STD * log_sigma  # (B,)
    return log_sigma.exp().to(dtype)


def add_noise_to_reference_video(
    video: torch.Tensor,
    sigma: float | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gaussian noise augmentation of the (masked) reference video, never on pixels equal to -1.

    As the reference (`add_noise_in_inpaint_model`): `video + sigma * randn`, with the noise set
    to 0 wherever a value is exactly -1 (the regenerated pixels of a masked video). The test is
    per value, so a kept channel that is exactly -1 (pure black) is left clean too.

    Args:
        video: `(B, 3, F, H, W)` in [-1, 1], usually `masked_video(...)`.
        sigma: a float for every sample (inference: `INFERENCE_NOISE_SIGMA` = 0.0563), a `(B,)`
            tensor, or None to draw `training_noise_sigma(B)` (training).
        generator: torch generator; with sigma None it draws the sigmas first, then the noise
            `torch.randn(video.shape)`.

    Returns:
        `(B, 3, F, H, W)`.
    """
    b = video.shape[0]
    if sigma is None:
        sigma = training_noise_sigma(b, generator, device=video.device)
    sigma = torch.as_tensor(sigma, dtype=video.dtype, device=video.device)
    if sigma.ndim == 0:
        sigma = sigma.expand(b)
    if sigma.shape != (b,):
        raise ValueError(f"sigma must be a float or shape ({b},) (got {tuple(sigma.shape)})")
    gen_device = generator.device if generator is not None else video.device  # CPU generator, GPU video: fine
    noise = torch.randn(video.shape, generator=generator, device=gen_device, dtype=video.dtype).to(video.device)
    noise = noise * sigma.view(b, 1, 1, 1, 1)  # (B, 3, F, H, W)
    noise = torch.where(video == -1, torch.zeros_like(noise), noise)
    return video + noise


# ----------------------------------------------------------------------------------------------
# Mask -> latent grid
# ----------------------------------------------------------------------------------------------


def _latent_size(latent_size) -> tuple[int, int, int]:
    if isinstance(latent_size, torch.Tensor):
        if latent_size.ndim != 5:
            raise ValueError(
                "latents must be (B, F_lat, C, H_lat, W_lat) (transformer layout) "
                f"(got {tuple(latent_size.shape)}); or pass (F_lat, H_lat, W_lat)"
            )
        _, f, _, h, w = latent_size.shape
        return f, h, w
    size = tuple(int(s) for s in latent_size)
    if len(size) != 3:
        raise ValueError(f"latent_size must be (F_lat, H_lat, W_lat) (got {size})")
    return size


def resize_mask(
    mask: torch.Tensor,
    latent_size: Sequence[int] | torch.Tensor,
    process_first_frame_only: bool = True,
    method: str = "reference",
) -> torch.Tensor:
    """Resize a pixel mask to the latent grid.

    method="reference" (what checkpoints were trained on; the reference's `resize_mask`):
    pixel frame 0 -> latent frame 0 alone, resized spatially; pixel frames 1.. -> latent frames
    1.. by one trilinear resize (align_corners=False). With the exact 4x / 8x ratios of the
    CogVideoX VAE this samples, for latent frame k >= 1, the mean of pixel frames 4k-2 and 4k-1
    (never 4k: the last pixel frame is dropped), and spatially the mean of the 2x2 centre pixels
    of each 8x8 cell. With `process_first_frame_only=False` all frames go through one resize.

    method="max": see `resize_mask_max_pool`.

    Args:
        mask: `(B, 1, F, H, W)` pixel-frame mask (any values; usually `1 - regenerate_mask`).
        latent_size: `(F_lat, H_lat, W_lat)`, or latents `(B, F_lat, C, H_lat, W_lat)` in
            transformer layout to read it from.
        process_first_frame_only: treat pixel frame 0 apart (the CogVideoX causal VAE does).
        method: "reference" or "max".

    Returns:
        `(B, 1, F_lat, H_lat, W_lat)`, in the mask's floating dtype (float32 otherwise).
    """
    if method == "max":
        return resize_mask_max_pool(mask, latent_size, process_first_frame_only)
    if method != "reference":
        raise ValueError(f"method must be one of {RESIZE_METHODS} (got {method!r})")
    f_lat, h_lat, w_lat = _latent_size(latent_size)
    dtype = mask.dtype if mask.is_floating_point() else torch.float32
    x = mask.float()  # (B, 1, F, H, W)
    if not process_first_frame_only:
        out = F.interpolate(x, size=(f_lat, h_lat, w_lat), mode="trilinear", align_corners=False)
        return out.to(dtype)
    first = F.interpolate(
        x[:, :, :1], size=(1, h_lat, w_lat), mode="trilinear", align_corners=False
    )  # (B, 1, 1, H_lat, W_lat)
    if f_lat == 1:
        return first.to(dtype)
    if x.shape[2] < 2:
        raise ValueError(
            f"a 1-frame mask cannot fill {f_lat} latent frames; give one mask frame per video frame"
        )
    rest = F.interpolate(
        x[:, :, 1:], size=(f_lat - 1, h_lat, w_lat), mode="trilinear", align_corners=False
    )  # (B, 1, F_lat - 1, H_lat, W_lat)
    return torch.cat([first, rest], dim=2).to(dtype)


def resize_mask_max_pool(
    mask: torch.Tensor,
    latent_size: Sequence[int] | torch.Tensor,
    process_first_frame_only: bool = True,
) -> torch.Tensor:
    """Study alternative to `resize_mask` that cannot drop a frame. NOT what checkpoints saw.

    Latent frame 0 = max over pixel frame 0; latent frame k >= 1 = max over pixel frames
    4k-3..4k (the four frames the causal VAE folds into it). Spatially, max over each latent
    cell's pixels (8x8 for the CogVideoX VAE). Applied to the known-map `1 - mask`, a latent
    cell counts as known as soon as one of its pixels is known, so an end image at the last
    frame gives the last latent frame 1 (the reference gives 0). Uneven ratios use adaptive
    max pooling windows.

    Args:
        mask: `(B, 1, F, H, W)`.
        latent_size: `(F_lat, H_lat, W_lat)`, or latents `(B, F_lat, C, H_lat, W_lat)`.
        process_first_frame_only: pool frame 0 alone (True) or all frames together (False).

    Returns:
        `(B, 1, F_lat, H_lat, W_lat)`.
    """
    f_lat, h_lat, w_lat = _latent_size(latent_size)
    dtype = mask.dtype if mask.is_floating_point() else torch.float32
    x = mask.float()  # (B, 1, F, H, W)
    if not process_first_frame_only:
        return F.adaptive_max_pool3d(x, (f_lat, h_lat, w_lat)).to(dtype)
    first = F.adaptive_max_pool3d(x[:, :, :1], (1, h_lat, w_lat))  # (B, 1, 1, H_lat, W_lat)
    if f_lat == 1:
        return first.to(dtype)
    if x.shape[2] < 2:
        raise ValueError(
            f"a 1-frame mask cannot fill {f_lat} latent frames; give one mask frame per video frame"
        )
    rest = F.adaptive_max_pool3d(x[:, :, 1:], (f_lat - 1, h_lat, w_lat))
    return torch.cat([first, rest], dim=2).to(dtype)


# ----------------------------------------------------------------------------------------------
# Inpaint latents for the transformer
# ----------------------------------------------------------------------------------------------


def _is_diffusers_vae(vae) -> bool:
    config = getattr(vae, "config", None)
    return hasattr(vae, "encode") and hasattr(config, "latent_channels")


def _encode(vae, pixels: torch.Tensor) -> torch.Tensor:
    """`(B, 3, F, H, W)` -> `(B, C, F_lat, H_lat, W_lat)`, one sample at a time like the reference
    (the 3D VAE's activations dominate memory)."""
    outs = []
    for i in range(pixels.shape[0]):
        x = pixels[i : i + 1]
        if _is_diffusers_vae(vae):
            x = x.to(device=vae.device, dtype=vae.dtype)
            outs.append(run_as_pair(lambda v: vae.encode(v).latent_dist.mode(), x))  # CPU: fast conv3d path
        else:
            outs.append(vae(x))
    return torch.cat(outs, dim=0)


def inpaint_latents(
    vae: Callable[[torch.Tensor], torch.Tensor] | torch.nn.Module,
    conditioning: Conditioning,
    scaling_factor: float | None = None,
    *,
    latent_shape: Sequence[int] | None = None,
    noise_aug_sigma: float | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    resize_method: str = "reference",
    zero_fully_masked: bool = True,
) -> torch.Tensor:
    """The transformer's inpaint input `[mask (1) | masked-video latents (C)]`, transformer layout.

    Args:
        vae: a diffusers `AutoencoderKLCogVideoX` (its `encode(x).latent_dist.mode()` is used), or
            an encode callable `(1, 3, F, H, W) -> (1, C, F_lat, H_lat, W_lat)`.
        conditioning: from one of the builders; video `(B, 3, F, H, W)`, mask `(B, 1, F, H, W)`.
        scaling_factor: multiplies both parts; defaults to `vae.config.scaling_factor`
            (required with a callable).
        latent_shape: `(B, F_lat, C, H_lat, W_lat)` of the noisy latents. Needed when every
            sample is fully masked and `vae` is a callable (the VAE is then not called, so its
            output shape is unknown); otherwise optional and checked.
        noise_aug_sigma: None for no noise; a float (inference 0.0563) or `(B,)` tensor
            (training: `training_noise_sigma(B)`) for `add_noise_to_reference_video` on the
            masked video before encoding.
        generator: for the noise.
        resize_method: "reference" or "max" (see `resize_mask`).
        zero_fully_masked: samples whose mask regenerates everything get all-zero inpaint
            latents without calling the VAE (reference inference). False encodes them like the
            others (the all -1 video; the reference's training does so 10% of the time).
            The reference pipeline checks the whole batch at once; here it is per sample, so a
            sample's result does not depend on its batch mates.

    Returns:
        `(B, F_lat, 1 + C, H_lat, W_lat)`; channel 0 = `resize_mask(1 - mask) * scaling_factor`,
        channels 1.. = masked-video latents * scaling_factor.
    """
    # 1. Resolve the VAE's numbers.
    is_diffusers = _is_diffusers_vae(vae)
    if scaling_factor is None:
        if not is_diffusers:
            raise ValueError("scaling_factor is required with an encode callable; pass the VAE's")
        scaling_factor = float(vae.config.scaling_factor)
    if resize_method not in RESIZE_METHODS:
        raise ValueError(f"resize_method must be one of {RESIZE_METHODS} (got {resize_method!r})")
    cond = conditioning
    b, f, h, w = cond.batch_size, cond.num_frames, cond.height, cond.width
    if is_diffusers:
        spatial = 2 ** (len(vae.config.block_out_channels) - 1)
        temporal = int(vae.config.temporal_compression_ratio)
        c = int(vae.config.latent_channels)
        derived = (b, (f - 1) // temporal + 1, c, h // spatial, w // spatial)
        device, dtype = vae.device, vae.dtype
    else:
        derived = None
        device, dtype = cond.mask.device, cond.mask.dtype
    if latent_shape is not None:
        latent_shape = tuple(int(s) for s in latent_shape)
        if len(latent_shape) != 5 or latent_shape[0] != b:
            raise ValueError(
                f"latent_shape must be (B={b}, F_lat, C, H_lat, W_lat) (got {latent_shape})"
            )

    # 2. Which samples go through the VAE.
    zero = cond.fully_masked() if zero_fully_masked else torch.zeros(b, dtype=torch.bool)
    encode_idx = (~zero).nonzero().flatten().tolist()

    encoded = None
    if encode_idx:
        # 3. Masked video (+ optional noise) -> latents.
        video = cond.video if cond.video is not None else torch.full(
            (b, 3, f, h, w), -1.0, device=cond.mask.device
        )
        pixels = masked_video(video, cond.mask)  # (B, 3, F, H, W), -1 where regenerated
        if noise_aug_sigma is not None:
            pixels = add_noise_to_reference_video(pixels, noise_aug_sigma, generator)
        pixels = pixels[encode_idx]  # (B_enc, 3, F, H, W)
        latents = _encode(vae, pixels) * scaling_factor  # (B_enc, C, F_lat, H_lat, W_lat)
        _, c, f_lat, h_lat, w_lat = latents.shape
        device, dtype = latents.device, latents.dtype

        # 4. Mask channel: 1 = known, on the latent grid.
        known = 1 - cond.mask[encode_idx].float()  # (B_enc, 1, F, H, W)
        mask_ch = resize_mask(known, (f_lat, h_lat, w_lat), method=resize_method)
        mask_ch = (mask_ch * scaling_factor).to(device=device, dtype=dtype)
        encoded = torch.cat([mask_ch, latents], dim=1)  # (B_enc, 1 + C, F_lat, H_lat, W_lat)
        encoded = rearrange(encoded, "b c f h w -> b f c h w")
        got = (b, f_lat, c, h_lat, w_lat)
        if latent_shape is not None and latent_shape != got:
            raise ValueError(
                f"the VAE gives latents {got} but latent_shape is {latent_shape}; the video and "
                "the noisy latents must have the same size"
            )
        shape = got
    elif latent_shape is not None:
        shape = latent_shape
    elif derived is not None:
        shape = derived
    else:
        raise ValueError(
            "every sample is fully masked, so the VAE is not called and the latent shape is "
            "unknown; pass latent_shape=(B, F_lat, C, H_lat, W_lat)"
        )

    # 5. Scatter into the batch; fully-masked samples stay zero.
    b_, f_lat, c, h_lat, w_lat = shape
    out = torch.zeros(b_, f_lat, 1 + c, h_lat, w_lat, device=device, dtype=dtype)
    if encoded is not None:
        out[encode_idx] = encoded
    return out
