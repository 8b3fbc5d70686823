"""Notebook 05's trust-region panel: predicted and measured KL of ACKTR's step over a δ grid,
the capped region, for the exact Fisher and K-FAC.
"""
from __future__ import annotations

import math
from functools import partial

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from rlkit.lessons.nb05_trust_region.demos import (
    DEFAULT_DELTAS,
    LABELS,
    PRECONDITIONERS,
    FixedBatch,
    fixed_batch,
    step_size_panel_data,
)
from rlkit.lessons.panels import Panel
from rlkit.trust_region import CONVENTIONS


def draw_trust_region(data: dict, fig: Figure | None = None) -> Figure:
    """Draw :func:`rlkit.lessons.nb05_trust_region.demos.step_size_panel_data` onto ``fig`` (a new pyplot figure if None).

    Two columns (exact Fisher, K-FAC), two rows: the predicted and the measured KL against δ
    (log-log; the dotted diagonal is KL = δ, the grey region is where η = η_max), and their ratio
    measured/predicted with its δ → 0 limit ΔᵀFΔ/ΔᵀF̂Δ. The vertical line marks the chosen δ.
    """
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(11, 7.5))
    deltas, delta, convention = data["deltas"], data["delta"], data["convention"]
    axes = fig.subplots(2, 2, sharex=True)
    ratio_top = 1.15 * max(
        max(np.max(c["measured_kl"] / c["predicted_kl"]) for c in data["curves"].values()),
        max(data["limit_ratio"].values()), 1.0,
    )
    for col, name in enumerate(PRECONDITIONERS):
        curves, at = data["curves"][name], data["at_delta"][name]
        ratio = curves["measured_kl"] / curves["predicted_kl"]
        top, bottom = axes[0, col], axes[1, col]
        for ax in (top, bottom):
            if curves["delta_cap"] < deltas[-1]:
                ax.axvspan(max(curves["delta_cap"], deltas[0]), deltas[-1], color="0.9", lw=0,
                           label=f"capped: η = η_max = {data['eta_max']:.2f}")
            ax.axvline(delta, color="k", lw=0.8)
        top.loglog(deltas, deltas, ":", color="0.45", lw=1, label="KL = δ")
        top.loglog(deltas, curves["predicted_kl"], "-", color="C0", lw=2, label=f"predicted ½η²q ({convention} rule)")
        top.loglog(deltas, data["other_convention"][name], "--", color="C0", lw=1, alpha=0.7,
                   label=f"predicted ½η²q ({data['other']} rule)")
        top.loglog(deltas, curves["measured_kl"], "o", color="C3", ms=3, label="measured KL(π_old ‖ π_new)")
        top.plot(delta, at["predicted_kl"], "s", color="C0", mfc="white", ms=8)
        top.plot(delta, at["measured_kl"], "o", color="C3", ms=8)
        capped = " = η_max" if at["capped"] else ""
        top.set_title(f"{LABELS[name]}, δ = {delta:.2g}: η = {at['eta']:.3g}{capped}\n"
                      f"predicted KL {at['predicted_kl']:.2e}, measured {at['measured_kl']:.2e}", fontsize=10)
        top.set_ylabel("KL of the step")
        bottom.semilogx(deltas, ratio, "o-", color="C3", ms=3, lw=1, label="measured / predicted")
        bottom.axhline(1.0, color="0.45", ls=":", lw=1)
        bottom.axhline(data["limit_ratio"][name], color="C2", ls="--", lw=1.2,
                       label=f"δ → 0 limit ΔᵀFΔ / ΔᵀF̂Δ = {data['limit_ratio'][name]:.2f}")
        bottom.plot(delta, at["ratio"], "o", color="C3", ms=8)
        bottom.set(xlabel="δ (trust-region radius)", ylabel="measured / predicted", ylim=(0, ratio_top))
        top.legend(fontsize=7, loc="upper left")
        bottom.legend(fontsize=7, loc="lower left")
        for ax in (top, bottom):  # major ticks only: log-axis minor ticks cost more to lay out than the rest
            ax.xaxis.set_minor_locator(NullLocator())
        top.yaxis.set_minor_locator(NullLocator())
    # fixed margins instead of tight_layout (which measures every tick label: slow for a slider)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.08, top=0.91, wspace=0.2, hspace=0.12)
    return fig


def trust_region_panel(batch: FixedBatch | None = None, *, delta: float = 0.01, eta_max: float = 0.25,
                       convention: str = "paper", deltas=DEFAULT_DELTAS) -> Panel:
    """ACKTR's step size on a fixed batch: sliders ``delta`` and ``eta_max``, buttons ``convention``.

    ``batch`` defaults to ``rlkit.lessons.nb05_trust_region.demos.fixed_batch()``. The curves over ``deltas``
    need one forward pass per new step size η (cached by η, so moving ``delta`` alone only
    evaluates the marked point); the computation is ``step_size_panel_data``.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    batch = fixed_batch() if batch is None else batch
    deltas = np.asarray(deltas, dtype=float)
    low, high = math.log10(deltas[0]), math.log10(deltas[-1])
    controls = {
        "delta": widgets.FloatLogSlider(value=delta, base=10, min=low, max=high, step=0.05, description="delta",
                                        readout_format=".1e", continuous_update=False),
        "eta_max": widgets.FloatSlider(value=eta_max, min=0.01, max=1.0, step=0.01, description="eta_max",
                                       readout_format=".2f", continuous_update=False),
        "convention": widgets.ToggleButtons(options=list(CONVENTIONS), value=convention, description="convention"),
    }
    return Panel(partial(step_size_panel_data, batch, deltas=deltas), draw_trust_region, controls, figsize=(11, 7.5))
