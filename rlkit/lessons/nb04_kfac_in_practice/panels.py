"""Notebook 04's damping panel: the spectrum of F̂ with λ added in both damping modes, and where λ
sits on the precomputed curves of the direction's cosines.

A slider move changes only a few artists (the two damped spectra, the λ lines, a title), so the
panel draws the figure once and then redraws just those on the saved background (blitting on
matplotlib's Agg canvas): ``panel.seconds`` stays well under a second even on a slow CPU.
"""
from __future__ import annotations

import math
import time
from functools import partial

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from rlkit.kfac import KFAC
from rlkit.lessons.nb04_kfac_in_practice.demos import damping_panel_data
from rlkit.lessons.panels import BlittedPanel

#: "1e-3" tick labels: plain text is several times cheaper to lay out than matplotlib's mathtext.
_POWER = FuncFormatter(lambda value, _: f"1e{round(math.log10(value))}" if value > 0 else "")
_FLOOR = 1e-14  # zero eigenvalues drawn at the floor of the log axis


def _decades(axis, numticks: int) -> None:
    axis.set_major_locator(LogLocator(base=10, numticks=numticks))
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(_POWER)


def _title(data: dict) -> str:
    return f"K-FAC's spectrum, λ = {data['damping']:.1e}: {data['fraction_below']:.0%} below λ"


def _draw(data: dict, fig: Figure, animated: bool = False) -> dict:
    """Draw the panel; returns the artists that depend on λ (``animated``: left out of a full draw)."""
    damping, spectrum, dampings, sweep = data["damping"], data["spectrum"], data["dampings"], data["sweep"]
    left, right = fig.subplots(1, 2)
    index = np.arange(1, spectrum["undamped"].size + 1)
    left.semilogy(index, np.maximum(spectrum["undamped"], _FLOOR), color="k", lw=1.5, label="S⊗A (undamped)")
    moving = {
        "eigen": left.semilogy(index, spectrum["eigen"], color="C0", lw=1.2, label="eigen: μ + λ")[0],
        "factored": left.semilogy(index, spectrum["factored"], color="C3", lw=1.2, ls="--",
                                  label="factored: (λ_S + √λ/κ)(λ_A + κ√λ)")[0],
        "level": left.axhline(damping, color="0.5", lw=0.8, ls=":"),
        "title": left.set_title(_title(data)),
    }
    left.set(xlabel="eigenvalue index (decreasing)", ylabel="eigenvalue", ylim=(_FLOOR, 1e6))
    _decades(left.yaxis, 6)
    left.legend(fontsize=8, loc="lower left")  # below every damped eigenvalue (λ ≥ 1e-6): never crossed by them
    for mode, color in [("factored", "C3"), ("eigen", "C0")]:
        right.semilogx(dampings, sweep[mode]["cos_natural"], color=color, label=f"{mode}: cos(Δ, (F+λI)⁻¹g)")
        right.semilogx(dampings, sweep[mode]["cos_gradient"], color=color, ls=":", label=f"{mode}: cos(Δ, g)")
    right.semilogx(dampings, sweep["natural_cos_gradient"], color="k", lw=1, ls="--", label="exact: cos((F+λI)⁻¹g, g)")
    moving["marker"] = right.axvline(damping, color="0.5", lw=0.8)
    right.set(xlabel="damping λ", ylabel="cosine", ylim=(-0.05, 1.05), title="the K-FAC direction Δ as λ grows")
    _decades(right.xaxis, 7)
    right.legend(fontsize=7, loc="upper left")
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.13, top=0.92, wspace=0.18)
    for artist in moving.values():
        artist.set_animated(animated)
    return moving


def draw_damping(data: dict, fig: Figure | None = None) -> Figure:
    """Draw :func:`rlkit.lessons.nb04_kfac_in_practice.demos.damping_panel_data` onto ``fig`` (a new
    pyplot figure if None): the spectrum with λ added in both modes, and the direction's cosines against λ."""
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(11, 4))
    _draw(data, fig)
    return fig


class DampingPanel(BlittedPanel):
    """:class:`~rlkit.lessons.panels.BlittedPanel` whose moving artists are those that depend on λ."""

    _moving: dict | None = None

    def update(self, change=None) -> None:
        start = time.perf_counter()
        self.data = data = self.compute(**self.values)
        if self._moving is None:  # everything that does not depend on λ is drawn once
            self._moving = self.draw_static(lambda: _draw(data, self.figure, animated=True))
        else:
            moving, spectrum, damping = self._moving, data["spectrum"], data["damping"]
            moving["eigen"].set_ydata(spectrum["eigen"])
            moving["factored"].set_ydata(spectrum["factored"])
            moving["level"].set_ydata([damping, damping])
            moving["marker"].set_xdata([damping, damping])
            moving["title"].set_text(_title(data))
        self.blit(self._moving.values())
        self.seconds = time.perf_counter() - start


def damping_panel(kfac: KFAC, sweep: dict, dampings, *, damping: float = 1e-3) -> DampingPanel:
    """K-FAC's damping λ: a log slider ``damping`` over the range of ``dampings``.

    ``kfac`` uses factored damping (its spectrum is recomputed at each λ); ``sweep`` is
    ``rlkit.lessons.nb04_kfac_in_practice.demos.damping_sweep`` over ``dampings``, computed once. The computation is
    ``rlkit.lessons.nb04_kfac_in_practice.demos.damping_panel_data``.
    """
    dampings = np.asarray(dampings, dtype=float)
    controls = {
        "damping": widgets.FloatLogSlider(value=damping, base=10, min=math.log10(dampings[0]),
                                          max=math.log10(dampings[-1]), step=0.25, description="damping",
                                          readout_format=".1e", continuous_update=False),
    }
    compute = partial(damping_panel_data, kfac, sweep, dampings)
    return DampingPanel(compute, draw_damping, controls, figsize=(11, 4))
