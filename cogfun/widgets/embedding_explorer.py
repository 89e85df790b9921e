"""The embedding explorer panel: how each positional-embedding resize mode lays out positions on a grid.

Pick a mode (the four sincos strategies of CogVideoX-Fun's 2B models, docs/design.md 1.3, or 3D RoPE with
either spacing), a target grid (latent frames x patch rows x patch columns) and a query position; the panel
draws the cosine similarity of the query with every position (in the query's frame, and across time along
the query's row) and the distance of every position to the base table. The numbers come from
``cogfun.models.embedding_analysis``; :func:`similarity_figure` draws them and is usable from notebooks.

The panel opens on a grid the table was not built for (the sample grid 1.5x wider: a new aspect ratio), where
the modes differ; at the sample grid every mode gives the base table itself (distance 0 everywhere, which the
figure says in words instead of drawing an empty map). A grid a mode cannot serve shows the reason in place of
the figure.
"""

from __future__ import annotations

import contextlib
import html
import io
from typing import Any, Sequence

import ipywidgets as W
import torch

from ..models.embedding_analysis import (
    DISTANCE_KINDS,
    EMBEDDING_MODES,
    ROPE_MODES,
    base_grid,
    default_mode,
    distance_to_base,
    embedding_config,
    position_similarity_map,
    position_table,
)
from .media import hide_picture, panel_bundle, panel_style, picture, show_picture


def similarity_figure(similarity: torch.Tensor, distance: torch.Tensor, query: Sequence[int], title: str = ""):
    """Three panels: similarity in the query's frame, similarity over (time, width) on the query's row, distance.

    Args:
        similarity: ``(F, h, w)`` from ``position_similarity_map``.
        distance: ``(F, h, w)`` from ``distance_to_base``.
        query: ``(t, y, x)``.
        title: figure title.

    Returns:
        a ``matplotlib.figure.Figure`` (not attached to pyplot, so nothing is shown twice in notebooks).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    t, y, x = (int(v) for v in query)
    low = min(float(similarity.min()), 1.0 - 1e-6)  # sincos similarities stay high: stretch the colours to the data
    top = float(distance.max())
    identical = top < 1e-6  # at the sample grid every mode is the base table: say so, not an all-black map
    fig = Figure(figsize=(11, 3.6))  # saved with bbox_inches="tight" (figure_png): no label is cut off
    # margins that hold the tick and axis labels, and the title above the three panel titles
    axes = fig.subplots(1, 3, gridspec_kw=dict(left=0.06, right=0.97, bottom=0.17, top=0.8, wspace=0.35))
    panels = [
        (similarity[t], f"cosine similarity, frame t={t}", "x (patch)", "y (patch)", (x, y), (low, 1), "viridis"),
        (similarity[:, y, :], f"cosine similarity, row y={y}", "x (patch)", "t (latent frame)", (x, t), (low, 1),
         "viridis"),
        (distance[t], f"distance to base table, frame t={t}", "x (patch)", "y (patch)", (x, y),
         (0, 1 if identical else top), "magma"),
    ]
    for ax, (image, name, xlabel, ylabel, point, limits, cmap) in zip(axes, panels):
        shown = ax.imshow(image.numpy(), cmap=cmap, vmin=limits[0], vmax=limits[1], interpolation="nearest",
                          aspect="auto")
        ax.plot(*point, marker="+", color="lime", markersize=12, mew=2)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # patches and frames are whole numbers
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.colorbar(shown, ax=ax, shrink=0.85)
    if identical:
        axes[2].text(0.5, 0.04, "0 everywhere: the sample grid\nis the base table itself", transform=axes[2].transAxes,
                     ha="center", va="bottom", color="white", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight", pad_inches=0.1)  # every label inside
    return buffer.getvalue()


class EmbeddingExplorerPanel:
    """Similarity maps of positions and distance to the base table, per mode and target grid.

    Args:
        source: a ``CogVideoXFunTransformer3DModel``, a preset name (``"tiny"``, ``"cogvideox-fun-2b-inp"``,
            ...) or a config dict; only the config is read.
        frames, height, width: initial target grid in latent frames and patches; default the sample grid's
            frames and rows with 1.5x its columns (an aspect ratio the table was not built for).
        max_scale: the grid sliders go up to ``max_scale`` x the sample grid.

    Attributes:
        widget: the root ``VBox``.
        similarity, distance: ``(F, h, w)`` maps of the current settings (``None`` when the mode cannot serve
            the grid; the reason is shown in place of the figure and kept in ``last_error``).
    """

    def __init__(self, source: Any, frames: int | None = None, height: int | None = None, width: int | None = None,
                 max_scale: int = 2):
        self.config = embedding_config(source)
        self.base = base_grid(self.config)
        t0, h0, w0 = self.base
        style = {"description_width": "initial"}
        self._tables: dict[tuple, torch.Tensor] = {}
        self.similarity = self.distance = None
        self.last_error: str | None = None
        self._held = False

        self.mode = W.Dropdown(options=list(EMBEDDING_MODES), value=default_mode(self.config), description="Mode",
                               style=style)
        self.how = W.Dropdown(options=list(DISTANCE_KINDS), value="aligned", description="Distance", style=style)
        self.frames = W.IntSlider(value=frames or t0, min=1, max=max_scale * t0, description="Latent frames",
                                  style=style)
        self.grid_height = W.IntSlider(value=height or h0, min=1, max=max_scale * h0, description="Rows (h)",
                                       style=style)
        wider = min(max_scale * w0, max(w0 + 1, (3 * w0 + 1) // 2))  # default: an unseen aspect ratio
        self.grid_width = W.IntSlider(value=width or wider, min=1, max=max_scale * w0, description="Columns (w)",
                                      style=style)
        self.query_t = W.IntSlider(value=0, min=0, max=self.frames.value - 1, description="Query t", style=style)
        self.query_y = W.IntSlider(value=self.grid_height.value // 2, min=0, max=self.grid_height.value - 1,
                                   description="Query y", style=style)
        self.query_x = W.IntSlider(value=self.grid_width.value // 2, min=0, max=self.grid_width.value - 1,
                                   description="Query x", style=style)
        self.image = picture(pixelated=False)  # a matplotlib figure at its own size (text stays crisp)
        self.summary = W.HTML()
        self.summary.add_class("cogfun-summary")

        wrap = W.Layout(flex_flow="row wrap")
        self.widget = W.VBox([
            panel_style(),
            W.HTML(f"<b>Embedding explorer</b> (sample grid {t0} x {h0} x {w0} latent frames x patches)"),
            W.HBox([self.mode, self.how], layout=wrap),
            W.HBox([W.VBox([self.frames, self.grid_height, self.grid_width]),
                    W.VBox([self.query_t, self.query_y, self.query_x])], layout=wrap),
            self.summary,
            self.image,
        ])
        self.widget.add_class("cogfun-embedding-explorer")
        for grid in (self.frames, self.grid_height, self.grid_width):
            grid.observe(lambda _: self._bound_query(), names="value")
        for widget in (self.mode, self.how, self.frames, self.grid_height, self.grid_width, self.query_t,
                       self.query_y, self.query_x):
            widget.observe(lambda _: self.update(), names="value")
        self.update()

    def _repr_mimebundle_(self, **kwargs) -> dict:
        return panel_bundle(self.widget, "EmbeddingExplorerPanel")

    def _bound_query(self) -> None:
        for slider, size in ((self.query_t, self.frames), (self.query_y, self.grid_height),
                             (self.query_x, self.grid_width)):
            slider.max = size.value - 1  # the slider clips its value

    def _table(self, mode: str, frames: int, height: int, width: int) -> torch.Tensor:
        key = (mode, frames, height, width)
        if key not in self._tables:
            self._tables[key] = position_table(self.config, mode, frames, height, width)
        return self._tables[key]

    @contextlib.contextmanager
    def hold_updates(self):
        """Change several widgets and redraw once at the end: ``with panel.hold_updates(): ...``."""
        self._held = True
        try:
            yield self
        finally:
            self._held = False
            self.update()

    def update(self) -> None:
        """Recompute the maps from the widgets and redraw (skipped inside ``hold_updates``)."""
        if self._held:
            return
        mode, how = self.mode.value, self.how.value
        grid = (self.frames.value, self.grid_height.value, self.grid_width.value)
        query = (min(self.query_t.value, grid[0] - 1), min(self.query_y.value, grid[1] - 1),
                 min(self.query_x.value, grid[2] - 1))
        try:
            table = self._table(mode, *grid)
            reference = self._table(mode if mode in ROPE_MODES else "extrapolate", *self.base)
        except ValueError as err:  # the reason replaces the figure: the previous settings' maps never stay up
            self.similarity = self.distance = None
            self.last_error = str(err)
            self.summary.value = f'<span class="cogfun-error" style="color:#b00020">{html.escape(str(err))}</span>'
            hide_picture(self.image)
            return
        self.last_error = None
        self.similarity = position_similarity_map(table, *grid, query=query)
        self.distance = distance_to_base(table, reference, *grid, base=self.base, how=how)
        fig = similarity_figure(self.similarity, self.distance, query,
                                title=f"{mode} at {grid[0]} x {grid[1]} x {grid[2]}, query {query}")
        show_picture(self.image, figure_png(fig))
        norm = float(table.norm(dim=-1).mean())
        self.summary.value = (
            f"distance to base ({how}): mean {float(self.distance.mean()):.3f}, max {float(self.distance.max()):.3f} "
            f"(row norm {norm:.2f}); similarity: mean {float(self.similarity.mean()):.3f}"
        )
