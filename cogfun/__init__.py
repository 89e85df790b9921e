"""cogfun: a research kit for CogVideoX-Fun inpaint video diffusion.

The package holds the inpaint transformer with resizable positional embeddings (``cogfun.models``), the
conditioning of every generation mode (``cogfun.masks``), one pipeline for every mode
(``cogfun.pipelines``), token-length buckets (``cogfun.buckets``), data, training and evaluation.
"""

from .models.transformer import CogVideoXFunTransformer3DModel

__all__ = ["CogVideoXFunTransformer3DModel"]
__version__ = "0.1.0"
