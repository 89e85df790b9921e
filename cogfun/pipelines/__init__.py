"""One pipeline for every CogVideoX-Fun mode, the samplers, input helpers and the long-video driver."""

from .inputs import size_from_image
from .long_video import generate_long_video, plan_segments
from .pipeline import CogVideoXFunPipeline, frames_to_numpy
from .samplers import SAMPLERS, make_scheduler

__all__ = [
    "CogVideoXFunPipeline",
    "SAMPLERS",
    "frames_to_numpy",
    "generate_long_video",
    "make_scheduler",
    "plan_segments",
    "size_from_image",
]
