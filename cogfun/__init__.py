"""cogfun: a research kit for CogVideoX-Fun inpaint video diffusion.

The package holds the inpaint transformer with resizable positional embeddings (``cogfun.models``), the
conditioning of every generation mode (``cogfun.masks``), one pipeline for every mode
(``cogfun.pipelines``), token-length buckets (``cogfun.buckets``), data, training and evaluation.
Heavy imports (torch, diffusers) happen on first use, so ``import cogfun.experiments`` stays fast.
"""

__all__ = ["CogVideoXFunTransformer3DModel", "CogVideoXFunPipeline"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "CogVideoXFunTransformer3DModel":
        from .models.transformer import CogVideoXFunTransformer3DModel

        return CogVideoXFunTransformer3DModel
    if name == "CogVideoXFunPipeline":
        from .pipelines.pipeline import CogVideoXFunPipeline

        return CogVideoXFunPipeline
    raise AttributeError(f"module 'cogfun' has no attribute {name!r}")
