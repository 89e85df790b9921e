"""ipywidgets panels for JupyterLab: generation, mask builder, embedding explorer (one panel per file).

Each panel is a plain object with a root ``widget`` (a ``VBox``) and ``_repr_mimebundle_``, so putting the
panel last in a cell (or ``display(panel)``) shows it; every button has a Python method that does the same
(``generate()``, ``update()``), so tests and notebooks can drive the panels without a browser.
"""

from .embedding_explorer import EmbeddingExplorerPanel, similarity_figure
from .generation import GENERATION_MODES, GenerationPanel
from .mask_builder import MASK_SOURCES, MaskBuilderPanel, build_mask, latent_mask_channel
from .media import upload_to_frames, upload_value

__all__ = [
    "EmbeddingExplorerPanel",
    "GENERATION_MODES",
    "GenerationPanel",
    "MASK_SOURCES",
    "MaskBuilderPanel",
    "build_mask",
    "latent_mask_channel",
    "similarity_figure",
    "upload_to_frames",
    "upload_value",
]
