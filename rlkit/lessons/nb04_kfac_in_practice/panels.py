"""Notebook 04's damping panel: the spectrum of F̂ with λ added in both damping modes, and where λ
sits on the precomputed curves of the direction's cosine and length.
"""
from __future__ import annotations

import math
from functools import partial

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure

from rlkit.kfac import KFAC
from rlkit.lessons.nb04_kfac_in_practice.demos import damping_panel_data
from rlkit.lessons.panels import Panel


def draw_damping(data: dict, fig: Figure | None = None) -> Figure:
    """Draw :func:`rlkit.lessons.nb04_kfac_in_practice.demos.damping_panel_data` onto ``fig`` (a new pyplot figure if None):
    the spectrum with λ, the direction's cosines and its length against λ."""
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(14, 4))
    damping, spectrum, dampings, sweep = data["damping"], data["spectrum"], data["dampings"], data["sweep"]
    axes = fig.subplots(1, 3)
    ax = axes[0]
    index = np.arange(1, spectrum["undamped"].size + 1)
    floor = 1e-14  # zero eigenvalues drawn at the floor of a log axis
    ax.semilogy(index, np.maximum(spectrum["undamped"], floor), color="k", lw=1.5, label="S⊗A (undamped)")
    ax.semilogy(index, spectrum["eigen"], color="C0", lw=1.2, label="eigen: μ + λ")
    ax.semilogy(index, spectrum["factored"], color="C3", lw=1.2, ls="--", label="factored: (λ_S + √λ/π)(λ_A + π√λ)")
    ax.axhline(damping, color="0.5", lw=0.8, ls=":")
    ax.set(xlabel="eigenvalue index (decreasing)", ylabel="eigenvalue", ylim=(floor, 1e6),
           title=f"K-FAC's spectrum, λ = {damping:.1e}: {data['fraction_below']:.0%} below λ")
    ax.legend(fontsize=8, loc="lower left")
    ax = axes[1]
    for mode, color in [("factored", "C3"), ("eigen", "C0")]:
        ax.semilogx(dampings, sweep[mode]["cos_natural"], color=color, label=f"{mode}: cos(Δ, (F+λI)⁻¹g)")
        ax.semilogx(dampings, sweep[mode]["cos_gradient"], color=color, ls=":", label=f"{mode}: cos(Δ, g)")
    ax.semilogx(dampings, sweep["natural_cos_gradient"], color="k", lw=1, ls="--", label="exact: cos((F+λI)⁻¹g, g)")
    ax.axvline(damping, color="0.5", lw=0.8)
    ax.set(xlabel="damping λ", ylabel="cosine", ylim=(-0.05, 1.05), title="the K-FAC direction Δ as λ grows")
    ax.legend(fontsize=7, loc="upper left")
    ax = axes[2]
    for mode, color in [("factored", "C3"), ("eigen", "C0")]:
        ax.loglog(dampings, sweep[mode]["norm"], color=color, label=mode)
    ax.loglog(dampings, data["gradient_norm"] / dampings, color="0.5", ls=":", label="‖g‖/λ (gradient step)")
    ax.axvline(damping, color="0.5", lw=0.8)
    ax.set(xlabel="damping λ", ylabel="‖Δ‖", title="length of the K-FAC direction")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def damping_panel(kfac: KFAC, sweep: dict, dampings, gradient_norm: float, *, damping: float = 1e-3) -> Panel:
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
    compute = partial(damping_panel_data, kfac, sweep, dampings, gradient_norm)
    return Panel(compute, draw_damping, controls, figsize=(14, 4))
