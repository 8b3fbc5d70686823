"""Notebook 05's trust-region panel: predicted and measured KL of ACKTR's step over a δ grid,
the capped region, for the exact Fisher and K-FAC.

The axes never change with the controls (their limits come from
:func:`rlkit.lessons.nb05_trust_region.demos.panel_limits`), so the panel draws the figure once
and, on a slider move, redraws only the artists that depend on the controls (curves, markers,
the capped region, titles, legends) over the saved background (blitting on matplotlib's Agg
canvas). The picture is the one :func:`draw_trust_region` makes from scratch
(``tests/lessons/test_panels.py``).
"""
from __future__ import annotations

import math
import time
from functools import partial

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import NullLocator

from rlkit.lessons.nb05_trust_region.demos import (
    DEFAULT_DELTAS,
    ETA_MAX_RANGE,
    LABELS,
    PRECONDITIONERS,
    FixedBatch,
    fixed_batch,
    panel_limits,
    step_size_panel_data,
)
from rlkit.lessons.panels import BlittedPanel
from rlkit.trust_region import CONVENTIONS


def _title(data: dict, name: str) -> str:
    at = data["at_delta"][name]
    capped = " = η_max" if at["capped"] else ""
    return (f"{LABELS[name]}, δ = {data['delta']:.2g}: η = {at['eta']:.3g}{capped}\n"
            f"predicted KL {at['predicted_kl']:.2e}, measured {at['measured_kl']:.2e}")


def _span(data: dict, name: str) -> tuple[float, float, bool]:
    """The capped region [max(δ_cap, δ_min), δ_max] and whether it is visible."""
    deltas, cap = data["deltas"], data["curves"][name]["delta_cap"]
    return max(cap, deltas[0]), deltas[-1], bool(cap < deltas[-1])


def _legends(data: dict, moving: dict, animated: bool) -> None:
    """Name the convention in the labels of the predicted-KL lines and (re)build the four legends."""
    for name in PRECONDITIONERS:
        moving[f"predicted_{name}"].set_label(f"predicted ½η²q ({data['convention']} rule)")
        moving[f"other_{name}"].set_label(f"predicted ½η²q ({data['other']} rule)")
    for ax, handles, loc in zip(moving["axes"].flat, moving["legend_handles"], ["upper left"] * 2 + ["lower left"] * 2):
        # opaque: a redraw pastes the legend's pixels over whatever moved behind it, as a full drawing covers it
        ax.legend(handles=handles, fontsize=7, loc=loc, framealpha=1).set_animated(animated)


def _draw(data: dict, fig: Figure, animated: bool = False) -> dict:
    """Draw the panel. Returns the artists that depend on the controls, by name, and ``"order"``: per axes,
    what a redraw paints over the background, in the order a full drawing stacks it (``animated``: the
    artists that depend on the controls are left out of a full draw, for blitting)."""
    deltas, delta, limits = data["deltas"], data["delta"], data["limits"]
    axes = fig.subplots(2, 2, sharex=True)
    moving: dict = {"axes": axes}
    order, handles = [], {}
    for col, name in enumerate(PRECONDITIONERS):
        curves, at = data["curves"][name], data["at_delta"][name]
        top, bottom = axes[0, col], axes[1, col]
        for position, ax in (("top", top), ("bottom", bottom)):
            low, high, visible = _span(data, name)
            moving[f"span_{position}_{name}"] = ax.axvspan(low, high, color="0.9", lw=0, visible=visible)
            handles[position, name] = [Patch(color="0.9", lw=0, label="capped: η = η_max")]
            moving[f"line_{position}_{name}"] = ax.axvline(delta, color="k", lw=0.8)
        diagonal = top.loglog(deltas, deltas, ":", color="0.45", lw=1, label="KL = δ")[0]
        moving[f"predicted_{name}"] = top.loglog(deltas, curves["predicted_kl"], "-", color="C0", lw=2)[0]
        moving[f"other_{name}"] = top.loglog(deltas, data["other_convention"][name], "--", color="C0", lw=1,
                                             alpha=0.7)[0]
        moving[f"measured_{name}"] = top.loglog(deltas, curves["measured_kl"], "o", color="C3", ms=3,
                                                label="measured KL(π_old ‖ π_new)")[0]
        moving[f"predicted_at_{name}"] = top.plot(delta, at["predicted_kl"], "s", color="C0", mfc="white", ms=8)[0]
        moving[f"measured_at_{name}"] = top.plot(delta, at["measured_kl"], "o", color="C3", ms=8)[0]
        moving[f"title_{name}"] = top.set_title(_title(data, name), fontsize=10)
        top.set(ylabel="KL of the step", ylim=limits["kl"])
        moving[f"ratio_{name}"] = bottom.semilogx(deltas, curves["measured_kl"] / curves["predicted_kl"], "o-",
                                                  color="C3", ms=3, lw=1, label="measured / predicted")[0]
        one = bottom.axhline(1.0, color="0.45", ls=":", lw=1)
        limit = bottom.axhline(data["limit_ratio"][name], color="C2", ls="--", lw=1.2,
                               label=f"δ → 0 limit ΔᵀFΔ / ΔᵀF̂Δ = {data['limit_ratio'][name]:.2f}")
        moving[f"ratio_at_{name}"] = bottom.plot(delta, at["ratio"], "o", color="C3", ms=8)[0]
        bottom.set(xlabel="δ (trust-region radius)", ylabel="measured / predicted", xlim=limits["delta"],
                   ylim=limits["ratio"])
        for ax in (top, bottom):  # major ticks only: log-axis minor ticks cost more to lay out than the rest
            ax.xaxis.set_minor_locator(NullLocator())
        top.yaxis.set_minor_locator(NullLocator())
        handles["top", name] += [diagonal, moving[f"predicted_{name}"], moving[f"other_{name}"], moving[f"measured_{name}"]]
        handles["bottom", name] += [moving[f"ratio_{name}"], limit]
        # what a redraw paints: the grey region covers the lines and the spines behind it, so they follow it
        order.append([moving[f"span_top_{name}"], diagonal, moving[f"line_top_{name}"], moving[f"predicted_{name}"],
                      moving[f"other_{name}"], moving[f"measured_{name}"], moving[f"predicted_at_{name}"],
                      moving[f"measured_at_{name}"], *top.spines.values(), moving[f"title_{name}"]])
        order.append([moving[f"span_bottom_{name}"], moving[f"line_bottom_{name}"], moving[f"ratio_{name}"], one,
                      limit, moving[f"ratio_at_{name}"], *bottom.spines.values()])
    moving["legend_handles"] = [handles[position, name] for position in ("top", "bottom") for name in PRECONDITIONERS]
    _legends(data, moving, animated)
    # fixed margins instead of tight_layout (which measures every tick label: slow for a slider)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.08, top=0.91, wspace=0.2, hspace=0.12)
    for key, artist in moving.items():
        if key not in ("axes", "legend_handles"):
            artist.set_animated(animated)
    moving["order"] = order
    return moving


def _refresh(data: dict, moving: dict) -> None:
    """Move the artists of ``moving`` to ``data`` (the axes stay as they are)."""
    delta = data["delta"]
    for name in PRECONDITIONERS:
        curves, at = data["curves"][name], data["at_delta"][name]
        low, high, visible = _span(data, name)
        for position in ("top", "bottom"):
            span = moving[f"span_{position}_{name}"]
            span.set_x(low)
            span.set_width(high - low)
            span.set_visible(visible)
            moving[f"line_{position}_{name}"].set_xdata([delta, delta])
        moving[f"predicted_{name}"].set_ydata(curves["predicted_kl"])
        moving[f"other_{name}"].set_ydata(data["other_convention"][name])
        moving[f"measured_{name}"].set_ydata(curves["measured_kl"])
        moving[f"ratio_{name}"].set_ydata(curves["measured_kl"] / curves["predicted_kl"])
        moving[f"predicted_at_{name}"].set_data([delta], [at["predicted_kl"]])
        moving[f"measured_at_{name}"].set_data([delta], [at["measured_kl"]])
        moving[f"ratio_at_{name}"].set_data([delta], [at["ratio"]])
        moving[f"title_{name}"].set_text(_title(data, name))


def draw_trust_region(data: dict, fig: Figure | None = None) -> Figure:
    """Draw :func:`rlkit.lessons.nb05_trust_region.demos.step_size_panel_data` onto ``fig`` (a new pyplot figure if None).

    Two columns (exact Fisher, K-FAC), two rows: the predicted and the measured KL against δ
    (log-log; the dotted diagonal is KL = δ, the grey region is where η = η_max), and their ratio
    measured/predicted with its δ → 0 limit ΔᵀFΔ/ΔᵀF̂Δ. The vertical line marks the chosen δ.
    """
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(11, 7.5))
    _draw(data, fig)
    return fig


class TrustRegionPanel(BlittedPanel):
    """:class:`~rlkit.lessons.panels.BlittedPanel` whose moving artists are those that depend on the
    controls; the legends' pixels, rendered once per convention, are pasted on top."""

    _moving: dict | None = None

    def update(self, change=None) -> None:
        start = time.perf_counter()
        self.data = data = self.compute(**self.values)
        if self._moving is None:  # everything that does not depend on the controls is drawn once
            self._moving = self.draw_static(lambda: _draw(data, self.figure, animated=True))
            self._legend_pixels = {}
            for rule in CONVENTIONS:  # the legends' pixels, rendered once per convention
                other = CONVENTIONS[1 - CONVENTIONS.index(rule)]
                _legends({"convention": rule, "other": other}, self._moving, animated=True)
                self._legend_pixels[rule] = [self._rendered(ax.get_legend()) for ax in self._moving["axes"].flat]
            self._moving["labelled"] = None
        else:
            _refresh(data, self._moving)
        if data["convention"] != self._moving["labelled"]:  # the artists' labels name the convention
            _legends(data, self._moving, animated=True)
            self._moving["labelled"] = data["convention"]
        self.blit([artist for artists in self._moving["order"] for artist in artists],
                  regions=self._legend_pixels[data["convention"]])
        self.seconds = time.perf_counter() - start

    def _rendered(self, legend):
        """The pixels of ``legend`` drawn alone over the background."""
        self._canvas.restore_region(self._background)
        self.figure.draw_artist(legend)
        return self._canvas.copy_from_bbox(legend.get_window_extent().padded(1))


def trust_region_panel(batch: FixedBatch | None = None, *, delta: float = 0.01, eta_max: float = 0.25,
                       convention: str = "paper", deltas=DEFAULT_DELTAS) -> TrustRegionPanel:
    """ACKTR's step size on a fixed batch: sliders ``delta`` and ``eta_max``, buttons ``convention``.

    ``batch`` defaults to ``rlkit.lessons.nb05_trust_region.demos.fixed_batch()``. Computed once: the
    axis limits (``panel_limits``) and the measured KL of every uncapped step of the δ grid in both
    conventions (cached by η); a control change then costs at most one forward pass per direction
    and new η. The computation is ``step_size_panel_data``.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    batch = fixed_batch() if batch is None else batch
    deltas = np.asarray(deltas, dtype=float)
    limits = panel_limits(batch, deltas, ETA_MAX_RANGE)
    for rule in CONVENTIONS:  # the uncapped steps of the grid: what δ alone selects
        step_size_panel_data(batch, deltas[-1], ETA_MAX_RANGE[1], rule, deltas, limits)
    low, high = math.log10(deltas[0]), math.log10(deltas[-1])
    controls = {
        "delta": widgets.FloatLogSlider(value=delta, base=10, min=low, max=high, step=0.05, description="delta",
                                        readout_format=".1e", continuous_update=False),
        "eta_max": widgets.FloatSlider(value=eta_max, min=ETA_MAX_RANGE[0], max=ETA_MAX_RANGE[1], step=0.01,
                                       description="eta_max", readout_format=".2f", continuous_update=False),
        "convention": widgets.ToggleButtons(options=list(CONVENTIONS), value=convention, description="convention"),
    }
    compute = partial(step_size_panel_data, batch, deltas=deltas, limits=limits)
    return TrustRegionPanel(compute, draw_trust_region, controls, figsize=(11, 7.5))
