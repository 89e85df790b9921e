"""One pipeline for every CogVideoX-Fun mode, the samplers, input helpers and the long-video driver.

Names are imported on first use (torch and diffusers are heavy), so the CLI starts fast.
"""

import importlib

_EXPORTS = {
    "CogVideoXFunPipeline": ".pipeline",
    "frames_to_numpy": ".pipeline",
    "SAMPLERS": ".samplers",
    "make_scheduler": ".samplers",
    "generate_long_video": ".long_video",
    "plan_segments": ".long_video",
    "size_from_image": ".inputs",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'cogfun.pipelines' has no attribute {name!r}")
