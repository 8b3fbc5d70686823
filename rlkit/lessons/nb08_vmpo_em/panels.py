"""Notebook 08's V-MPO panels: the temperature dual over ε_η and the M-step fit over ε_α.
"""
from __future__ import annotations

import math
from functools import partial

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from rlkit.lessons.panels import Panel


def draw_eps_eta(data: dict, fig: Figure | None = None) -> Figure:
    """Draw :func:`rlkit.lessons.nb08_vmpo_em.demos.eps_eta_panel_data` onto ``fig`` (a new pyplot figure if None).

    Three panels: L_η(η) with its minimizer η*; KL(ψ_η ‖ U) against η with the line ε_η (they
    cross at η*); ψ at η*, sorted, against the uniform 1/k.
    """
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(13, 3.8))
    axes = fig.subplots(1, 3)
    etas, eta_star, eps = data["etas"], data["eta_star"], data["eps_eta"]
    ax = axes[0]
    ax.semilogx(etas, data["loss"], color="C0", lw=2, label="L_η(η) = η ε_η + η log mean exp(A/η)")
    ax.plot(eta_star, data["loss_star"], "o", color="C3", ms=8, label=f"η* = {eta_star:.3g}")
    ax.set(xlabel="η (temperature)", ylabel="L_η", title=f"the temperature dual, ε_η = {eps:.3g}")
    ax.legend(fontsize=8, loc="upper left")
    ax = axes[1]
    ax.semilogx(etas, data["kl"], color="C2", lw=2, label="KL(ψ_η ‖ uniform on the selection)")
    ax.axhline(eps, color="k", ls=":", lw=1, label="ε_η")
    ax.axhline(data["log_k"], color="0.6", ls="--", lw=1, label=f"log k = {data['log_k']:.2f} (η → 0)")
    ax.plot(eta_star, data["kl_star"], "o", color="C3", ms=8)
    ax.set(xlabel="η", ylabel="KL (nats)", title=f"at η*: KL = {data['kl_star']:.4f}, dL/dη = {data['grad_star']:.1e}")
    ax.legend(fontsize=8, loc="upper right")
    ax = axes[2]
    psi = data["psi_sorted"]
    ax.bar(np.arange(1, psi.size + 1), psi, width=1.0, color="C1", lw=0)
    ax.axhline(1.0 / data["k"], color="k", ls=":", lw=1, label=f"uniform 1/k, k = {data['k']}")
    ax.set(xlabel="selected sample (sorted by ψ)", ylabel="ψ", ylim=(0, max(psi[0] * 1.1, 2.0 / data["k"])),
           title=f"ψ at η*: max {data['max_psi']:.3f}, entropy {data['entropy_psi']:.2f}")
    ax.legend(fontsize=8)
    for a in axes:  # major ticks only: log-axis minor ticks cost more to lay out than the rest
        a.xaxis.set_minor_locator(NullLocator())
        a.yaxis.set_minor_locator(NullLocator())
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.14, top=0.9, wspace=0.28)
    return fig


def eps_eta_panel(batch, *, eps_eta: float = 0.1, fraction: float = 0.5, low: float = 1e-3, high: float | None = None) -> Panel:
    """V-MPO's E-step temperature: a log slider ``eps_eta`` over [low, high].

    ``batch`` is an ``rlkit.lessons.nb08_vmpo_em.demos.EBatch``. ``high`` defaults to 0.9 · log k (beyond log k no η
    reaches the KL). The L_η and KL curves are computed once (``temperature_curve``); a slider move
    solves for η* (bisection) and runs one E-step: ``rlkit.lessons.nb08_vmpo_em.demos.eps_eta_panel_data``.
    """
    from rlkit.lessons.nb08_vmpo_em.demos import (
        eps_eta_panel_data,
        selection_summary,
        temperature_curve,
    )

    k = selection_summary(batch, fraction)["k"]
    high = 0.9 * math.log(k) if high is None else high
    curve = temperature_curve(batch, eps_eta, fraction=fraction)
    controls = {
        "eps_eta": widgets.FloatLogSlider(value=eps_eta, base=10, min=math.log10(low), max=math.log10(high),
                                          step=0.05, description="eps_eta", readout_format=".3g",
                                          continuous_update=False),
    }
    compute = partial(eps_eta_panel_data, batch, fraction=fraction, curve=curve)
    return Panel(compute, draw_eps_eta, controls, figsize=(13, 3.8))


def draw_eps_alpha(data: dict, fig: Figure | None = None) -> Figure:
    """Draw :func:`rlkit.lessons.nb08_vmpo_em.demos.eps_alpha_panel_data` onto ``fig`` (a new pyplot figure if None).

    Three panels: the fitted KL(π_old ‖ π_new) against ε_α over the precomputed grid (the dotted
    diagonal is KL = ε_α); π_old, the unconstrained target Σψ per action and the fitted π_new; the
    KL and α during the fit at the chosen ε_α.
    """
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(13, 3.8))
    axes = fig.subplots(1, 3)
    grid, fit, eps = data["eps_grid"], data["fit"], data["eps_alpha"]
    ax = axes[0]
    ax.loglog(grid, grid, ":", color="0.45", lw=1, label="KL = ε_α")
    ax.loglog(grid, data["kl_grid"], "o-", color="C3", ms=4, lw=1, label="fitted KL(π_old ‖ π_new)")
    ax.plot(eps, data["kl"], "o", color="C3", ms=9)
    ax.set(xlabel="ε_α", ylabel="KL after the M-step", title=f"ε_α = {eps:.3g}: KL = {data['kl']:.3g}")
    ax.legend(fontsize=8, loc="upper left")
    ax = axes[1]
    arms = np.arange(fit["probs_old"].size)
    ax.bar(arms - 0.27, fit["probs_old"], width=0.27, color="0.6", label="π_old")
    ax.bar(arms, fit["probs_new"], width=0.27, color="C3", label="π_new (fitted)")
    ax.bar(arms + 0.27, fit["target"], width=0.27, color="C1", label="Σψ per action (no trust region)")
    ax.set(xlabel="action", ylabel="probability", title="the M-step moves π towards ψ, by ε_α")
    ax.legend(fontsize=8, loc="upper left")
    ax = axes[2]
    steps = np.arange(1, fit["kl_trace"].size + 1)
    ax.semilogy(steps, np.maximum(fit["kl_trace"], 1e-8), color="C3", label="KL(π_old ‖ π_θ)")
    ax.axhline(eps, color="k", ls=":", lw=1, label="ε_α")
    ax.set(xlabel="M-step iteration", ylabel="KL", title=f"the fit; final α = {fit['alpha']:.2f}")
    twin = ax.twinx()
    twin.plot(steps, fit["alpha_trace"], color="C0", lw=1, label="α")
    twin.set_ylabel("α", color="C0")
    ax.legend(fontsize=8, loc="lower right")
    for a in (*axes, twin):  # major ticks only: log-axis minor ticks cost more to lay out than the rest
        a.xaxis.set_minor_locator(NullLocator())
        a.yaxis.set_minor_locator(NullLocator())
    fig.subplots_adjust(left=0.06, right=0.95, bottom=0.14, top=0.9, wspace=0.32)
    return fig


def eps_alpha_panel(sweep: list, *, eps_alpha: float = 0.01) -> Panel:
    """V-MPO's M-step trust region: a log slider ``eps_alpha`` over a precomputed sweep.

    ``sweep`` is ``rlkit.lessons.nb08_vmpo_em.demos.m_step_sweep(batch, eps_alphas)`` with log-spaced ε_α (the
    slider steps on that grid); a slider move only selects a fit and redraws
    (``rlkit.lessons.nb08_vmpo_em.demos.eps_alpha_panel_data``).
    """
    from rlkit.lessons.nb08_vmpo_em.demos import eps_alpha_panel_data

    grid = np.log10([f["eps_alpha"] for f in sweep])
    step = float(np.round(np.mean(np.diff(grid)), 6)) if grid.size > 1 else 0.1
    controls = {
        "eps_alpha": widgets.FloatLogSlider(value=eps_alpha, base=10, min=float(grid[0]), max=float(grid[-1]),
                                            step=step, description="eps_alpha", readout_format=".3g",
                                            continuous_update=False),
    }
    return Panel(partial(eps_alpha_panel_data, sweep), draw_eps_alpha, controls, figsize=(13, 3.8))
