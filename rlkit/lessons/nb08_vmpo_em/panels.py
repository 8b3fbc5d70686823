"""Notebook 08's figures: the two V-MPO panels (the temperature dual over ε_η, the M-step fit over ε_α)
and the static pictures of the selection and of the decoupled Gaussian M-step.

The panels redraw on every slider move, so after the first drawing a move repaints only what moved
(:class:`RefreshPanel`, blitting): the curves and markers, the titles, and the y-axis of a plot whose
limits follow the data; the rest (the other axes, their ticks and labels, the legends) is pixels
rendered once. Log axes carry major ticks only, labelled as plain text (matplotlib's default
log-axis labels go through its math-text parser).
"""
from __future__ import annotations

import math
import time

import ipywidgets as widgets
import numpy as np
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from rlkit.lessons.panels import BlittedPanel, redraw_order


class RefreshPanel(BlittedPanel):
    """A :class:`~rlkit.lessons.panels.BlittedPanel` over two functions.

    ``draw(data, fig)`` draws the figure and returns its moving artists by name (``fig.artists_by_name``:
    what depends on the slider); ``refresh(data, fig)`` moves them to new data. The first update draws
    everything else once; every later one refreshes and repaints the moving artists over it, the titles
    named in ``pasted`` as pixels rendered once per text. The picture is the one ``draw`` makes from
    scratch (``tests/lessons/test_nb08_panels.py``).
    """

    def __init__(self, compute, draw, refresh, controls, *, pasted: tuple[str, ...] = (), **kwargs):
        self.refresh, self.pasted_names = refresh, pasted
        self._order: list[Artist] | None = None
        super().__init__(compute, draw, controls, **kwargs)

    def update(self, change=None) -> None:
        start = time.perf_counter()
        self.data = data = self.compute(**self.values)
        if self._order is None:
            def draw() -> None:
                self.draw(data, self.figure)
                self._order = redraw_order(_moving(self.figure.artists_by_name))

            self.draw_static(draw)
        else:
            self.refresh(data, self.figure)
        art = self.figure.artists_by_name
        self.blit_order(self._order, pasted=_moving({name: art[name] for name in self.pasted_names}))
        self.seconds = time.perf_counter() - start


def _moving(artists_by_name: dict) -> list[Artist]:
    return [a for value in artists_by_name.values() for a in (value if isinstance(value, list) else [value])
            if isinstance(a, Artist)]


def _new_figure(figsize) -> Figure:
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize)


def _plain_log_axis(axis) -> None:
    """Major ticks at powers of ten labelled as plain text ("0.01", "10"), no minor ticks."""
    axis.set_major_locator(LogLocator(base=10, numticks=6))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_locator(NullLocator())


def _eps_eta_titles(data: dict) -> tuple[str, str, str]:
    return (f"the dual L_τ, ε_η = {data['eps_eta']:.3g}: τ* = {data['tau_star']:.3g}",
            f"at τ*: KL(ψ ‖ U) = {data['kl_star']:.4f} = ε_η",
            f"ψ at τ*: max {data['max_psi']:.3f}, uniform 1/k = {1 / data['k']:.3f}")


def _psi_top(data: dict) -> float:
    return max(data["psi_sorted"][0] * 1.1, 2.0 / data["k"])


def draw_eps_eta(data: dict, fig: Figure | None = None) -> Figure:
    """Draw :func:`rlkit.lessons.nb08_vmpo_em.demos.eps_eta_panel_data` onto ``fig`` (a new pyplot figure if None).

    Three panels: L_τ(τ) with its minimizer τ*; KL(ψ_τ ‖ U) against τ with the line ε_η (they
    cross at τ*); ψ at τ*, sorted, against the uniform 1/k. :func:`refresh_eps_eta` updates it.
    ``data["tau_limits"]`` and ``data["kl_limits"]``, when given, fix the τ axes and the KL axis (the panel
    gives the ranges τ* and ε_η take over its slider, so that a move moves τ* and ε_η and not the axes).
    """
    fig = fig if fig is not None else _new_figure((13, 3.8))
    axes = fig.subplots(1, 3)
    taus, tau_star, eps = data["taus"], data["tau_star"], data["eps_eta"]
    titles = _eps_eta_titles(data)
    ax = axes[0]
    (loss,) = ax.plot(taus, data["loss"], color="C0", lw=2)
    (loss_star,) = ax.plot([tau_star], [data["loss_star"]], "o", color="C3", ms=8)
    ax.set_xscale("log")
    ax.set(xlabel="temperature τ", ylabel="L_τ")
    title0 = ax.set_title(titles[0])
    ax = axes[1]
    ax.plot(taus, data["kl"], color="C2", lw=2, label="KL(ψ_τ ‖ uniform)")
    eps_line = ax.axhline(eps, color="k", ls=":", lw=1, label="ε_η")
    ax.axhline(data["log_k"], color="0.6", ls="--", lw=1, label="log k")
    (kl_star,) = ax.plot([tau_star], [data["kl_star"]], "o", color="C3", ms=8)
    ax.set_xscale("log")
    ax.set(xlabel="temperature τ", ylabel="KL (nats)")
    if data.get("kl_limits") is not None:
        ax.set_ylim(data["kl_limits"])
    title1 = ax.set_title(titles[1])
    ax.legend(fontsize=8, loc="upper right", framealpha=1)
    ax = axes[2]
    psi = data["psi_sorted"]
    stairs = ax.stairs(psi, np.arange(psi.size + 1), fill=True, color="C1")
    uniform = ax.axhline(1.0 / data["k"], color="k", ls=":", lw=1)
    ax.set(xlabel="selected sample (sorted by ψ)", ylabel="ψ", ylim=(0, _psi_top(data)))
    title2 = ax.set_title(titles[2])
    for a in axes[:2]:
        _plain_log_axis(a.xaxis)
        if data.get("tau_limits") is not None:
            a.set_xlim(data["tau_limits"])
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.14, top=0.9, wspace=0.25)
    # what a slider move changes: L_τ shifts (its y-axis follows it), ε_η and τ* move, ψ changes (its y-axis too)
    fig.artists_by_name = {"axes": axes, "loss": loss, "loss_star": loss_star, "loss_axis": axes[0].yaxis,
                           "eps_line": eps_line, "kl_star": kl_star, "stairs": stairs, "uniform": uniform,
                           "psi_axis": axes[2].yaxis, "titles": [title0, title1, title2]}
    return fig


def refresh_eps_eta(data: dict, fig: Figure) -> Figure:
    """Update a figure drawn by :func:`draw_eps_eta` to new panel data (the same batch, another ε_η)."""
    art = fig.artists_by_name
    axes = art["axes"]
    art["loss"].set_ydata(data["loss"])
    art["loss_star"].set_data([data["tau_star"]], [data["loss_star"]])
    axes[0].relim()
    axes[0].autoscale_view()
    art["eps_line"].set_ydata([data["eps_eta"]] * 2)
    art["kl_star"].set_data([data["tau_star"]], [data["kl_star"]])
    psi = data["psi_sorted"]
    art["stairs"].set_data(psi, np.arange(psi.size + 1))
    axes[2].set_ylim(0, _psi_top(data))
    for text, title in zip(art["titles"], _eps_eta_titles(data)):
        text.set_text(title)
    return fig


def eps_eta_panel(batch, *, eps_eta: float = 0.1, fraction: float = 0.5, low: float = 1e-3, high: float | None = None) -> RefreshPanel:
    """V-MPO's E-step temperature: a log slider ``eps_eta`` over [low, high].

    ``batch`` is an ``rlkit.lessons.nb08_vmpo_em.demos.EBatch``. ``high`` defaults to 0.9 · log k (beyond log k no τ
    reaches the KL). The L_τ and KL curves are computed once (``temperature_curve``); a slider move
    solves for τ* (bisection) and runs one E-step: ``rlkit.lessons.nb08_vmpo_em.demos.eps_eta_panel_data``.
    """
    from rlkit.lessons.nb08_vmpo_em.demos import (
        eps_eta_panel_data,
        selection_summary,
        solve_eta,
        temperature_curve,
    )
    from rlkit.lessons.panels import padded

    k = selection_summary(batch, fraction)["k"]
    high = 0.9 * math.log(k) if high is None else high
    curve = temperature_curve(batch, eps_eta, fraction=fraction)
    controls = {
        "eps_eta": widgets.FloatLogSlider(value=eps_eta, base=10, min=math.log10(low), max=math.log10(high),
                                          step=0.05, description="eps_eta", readout_format=".3g",
                                          continuous_update=False),
    }
    # τ* falls as ε_η grows: the τ axes hold the grid and τ* at both ends of the slider
    taus = curve["etas"]
    tau_limits = padded(min(taus.min(), solve_eta(batch, high, fraction)),
                        max(taus.max(), solve_eta(batch, low, fraction)), log=True)

    kl_limits = padded(min(curve["kl"].min(), low), max(curve["kl"].max(), math.log(k), high))

    def compute(**values) -> dict:
        return {**eps_eta_panel_data(batch, fraction=fraction, curve=curve, **values), "tau_limits": tau_limits,
                "kl_limits": kl_limits}

    return RefreshPanel(compute, draw_eps_eta, refresh_eps_eta, controls, figsize=(13, 3.8))


def _eps_alpha_titles(data: dict) -> tuple[str, str]:
    return f"ε_α = {data['eps_alpha']:.3g}: KL = {data['kl']:.3g}", f"the fit (dotted: ε_α); final α = {data['fit']['alpha']:.2f}"


def draw_eps_alpha(data: dict, fig: Figure | None = None) -> Figure:
    """Draw :func:`rlkit.lessons.nb08_vmpo_em.demos.eps_alpha_panel_data` onto ``fig`` (a new pyplot figure if None).

    Three panels: the fitted KL(π_old ‖ π_new) against ε_α over the precomputed grid (the dotted
    diagonal is KL = ε_α); π_old, the unconstrained target Σψ per action and the fitted π_new; the
    KL during the fit at the chosen ε_α (the final α in the title). :func:`refresh_eps_alpha` updates it.
    ``data["probability_top"]``, when given, fixes the probability axis (the panel gives the largest bar of
    the whole sweep, so that moving ε_α moves the bars and not the axis).
    """
    fig = fig if fig is not None else _new_figure((13, 3.8))
    axes = fig.subplots(1, 3)
    grid, fit, eps = data["eps_grid"], data["fit"], data["eps_alpha"]
    titles = _eps_alpha_titles(data)
    ax = axes[0]
    ax.plot(grid, grid, ":", color="0.45", lw=1, label="KL = ε_α")
    ax.plot(grid, data["kl_grid"], "o-", color="C3", ms=4, lw=1, label="fitted KL(π_old ‖ π_new)")
    (chosen,) = ax.plot([eps], [data["kl"]], "o", color="C3", ms=9)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="ε_α", ylabel="KL after the M-step")
    title0 = ax.set_title(titles[0])
    ax.legend(fontsize=8, loc="upper left", framealpha=1)
    ax = axes[1]
    arms = np.arange(fit["probs_old"].size)
    ax.bar(arms - 0.27, fit["probs_old"], width=0.27, color="0.6", label="π_old")
    bars = ax.bar(arms, fit["probs_new"], width=0.27, color="C3", label="π_new (fitted)")
    ax.bar(arms + 0.27, fit["target"], width=0.27, color="C1", label="Σψ per action (no trust region)")
    ax.set(xlabel="action", ylabel="probability", title="the M-step moves π towards ψ, by ε_α")
    if data.get("probability_top") is not None:
        ax.set_ylim(0, data["probability_top"])
    ax.legend(fontsize=8, loc="upper left", framealpha=1)
    ax = axes[2]
    (trace,) = ax.plot(np.arange(1, fit["kl_trace"].size + 1), np.maximum(fit["kl_trace"], 1e-8), color="C3")
    eps_line = ax.axhline(eps, color="k", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set(xlabel="M-step iteration", ylabel="KL(π_old ‖ π_θ)")
    title2 = ax.set_title(titles[1])
    for axis in (axes[0].xaxis, axes[0].yaxis, axes[2].yaxis):
        _plain_log_axis(axis)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.14, top=0.9, wspace=0.3)
    # what a move to another grid point changes: the chosen point, π_new's bars, the fit's trace (its y-axis follows it)
    fig.artists_by_name = {"axes": axes, "chosen": chosen, "bars": list(bars), "trace": trace, "eps_line": eps_line,
                           "trace_axis": axes[2].yaxis, "titles": [title0, title2]}
    return fig


def refresh_eps_alpha(data: dict, fig: Figure) -> Figure:
    """Update a figure drawn by :func:`draw_eps_alpha` to another grid point of the same sweep."""
    art = fig.artists_by_name
    axes = art["axes"]
    art["chosen"].set_data([data["eps_alpha"]], [data["kl"]])
    for bar, p in zip(art["bars"], data["fit"]["probs_new"]):
        bar.set_height(p)
    trace = data["fit"]["kl_trace"]
    art["trace"].set_data(np.arange(1, trace.size + 1), np.maximum(trace, 1e-8))
    art["eps_line"].set_ydata([data["eps_alpha"]] * 2)
    axes[2].relim()
    axes[2].autoscale_view()
    for text, title in zip(art["titles"], _eps_alpha_titles(data)):
        text.set_text(title)
    return fig


def eps_alpha_panel(sweep: list, *, eps_alpha: float = 0.01) -> RefreshPanel:
    """V-MPO's M-step trust region: a log slider ``eps_alpha`` over a precomputed sweep.

    ``sweep`` is ``rlkit.lessons.nb08_vmpo_em.demos.m_step_sweep(batch, eps_alphas)`` with log-spaced ε_α (the
    slider steps on that grid); a slider move only selects a fit and redraws
    (``rlkit.lessons.nb08_vmpo_em.demos.eps_alpha_panel_data``; the probability axis holds every fit's bars).
    """
    from rlkit.lessons.nb08_vmpo_em.demos import eps_alpha_panel_data

    grid = np.log10([f["eps_alpha"] for f in sweep])
    step = float(np.round(np.mean(np.diff(grid)), 6)) if grid.size > 1 else 0.1
    controls = {
        "eps_alpha": widgets.FloatLogSlider(value=eps_alpha, base=10, min=float(grid[0]), max=float(grid[-1]),
                                            step=step, description="eps_alpha", readout_format=".3g",
                                            continuous_update=False),
    }
    top = 1.05 * max(float(np.max(f[key])) for f in sweep for key in ("probs_old", "probs_new", "target"))

    def compute(**values) -> dict:
        return {**eps_alpha_panel_data(sweep, **values), "probability_top": top}

    # one title per grid point: pasted as pixels rendered once
    return RefreshPanel(compute, draw_eps_alpha, refresh_eps_alpha, controls, pasted=("titles",), figsize=(13, 3.8))


# --------------------------------------------------------------------------- static figures


def draw_selection(batch, summary: dict, fig: Figure | None = None) -> Figure:
    """The top-k selection on a (T, N) rollout: advantages over time per env, selected samples as dots,
    invalid (reset) steps as ×; and the histogram of the valid advantages, selected and not.

    ``summary`` is ``rlkit.lessons.nb08_vmpo_em.demos.selection_summary(batch)``.
    """
    fig = fig if fig is not None else _new_figure((13, 3.6))
    axes = fig.subplots(1, 2)
    adv, valid, mask = batch.advantages.numpy(), batch.valid.numpy(), summary["mask"].numpy()
    t = np.arange(adv.shape[0])
    for env in range(adv.shape[1]):
        axes[0].plot(t, adv[:, env], color=f"C{env}", lw=1, label=f"env {env}")
        axes[0].plot(t[mask[:, env]], adv[mask[:, env], env], "o", color=f"C{env}", ms=3)
        axes[0].plot(t[~valid[:, env]], np.zeros(int((~valid[:, env]).sum())), "x", color="k", ms=7)
    axes[0].set(xlabel="time step t", ylabel="advantage Â", title="dots: selected; ×: reset steps (Â = NaN, never read)")
    axes[0].legend(fontsize=8, ncol=4)
    v, m = adv[valid], mask[valid]
    axes[1].hist([v[m], v[~m]], bins=30, stacked=True, color=["C3", "0.7"], label=["selected (top half)", "not selected"])
    axes[1].set(xlabel="advantage Â", ylabel="samples", title=f"k = {summary['k']} of {summary['n_valid']} valid samples")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def draw_decoupling(gb: dict, decoupled: dict, coupled: dict, em: dict, *, eps_alpha_mu: float, eps_alpha_sigma: float,
                    coupled_eps: float, target: float | None = None, fig: Figure | None = None) -> Figure:
    """The Gaussian M-step, decoupled against coupled.

    Left, one M-step in the (μ, σ) plane: contours of the weighted log-likelihood Σψ log N(a; μ, σ²)
    (``gb`` from ``gaussian_bandit_weights``), the decoupled feasible box (KL_μ ≤ ε_α_μ,
    KL_Σ ≤ ε_α_Σ), the coupled feasible set (KL ≤ ``coupled_eps``), the constrained optima
    (``decoupled``, ``coupled`` from ``gaussian_m_step``) and the unconstrained fit. Middle and
    right: μ and σ over repeated EM updates (``em`` from ``gaussian_em``), the best action ``target`` dotted.
    """
    from rlkit.lessons.nb08_vmpo_em.demos import _cov_interval

    fig = fig if fig is not None else _new_figure((13, 3.8))
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.25, 1, 1]})
    ax = axes[0]
    mus, sigmas = np.linspace(-0.2, 0.3, 201), np.linspace(0.3, 1.2, 181)
    mu, sigma = np.meshgrid(mus, sigmas)
    a, w = gb["actions"].numpy(), gb["weights"].numpy()
    ll = (w[:, None, None] * (-np.log(sigma) - (a[:, None, None] - mu) ** 2 / (2 * sigma**2))).sum(0)
    ax.contour(mu, sigma, ll, levels=np.linspace(ll.max() - 0.6, ll.max(), 7), colors="0.75", linewidths=0.8, linestyles="solid")
    v = np.log(sigma)
    full = 0.5 * (np.expm1(-2 * v) + 2 * v) + 0.5 * mu**2 / sigma**2
    ax.contour(mu, sigma, full, levels=[coupled_eps], colors="C3", linewidths=1.5, linestyles="solid")
    bound = math.sqrt(2 * eps_alpha_mu)
    low, high = (math.exp(x) for x in _cov_interval(eps_alpha_sigma))
    ax.fill_between([-bound, bound], low, high, color="C0", alpha=0.35, lw=0)
    ax.plot([gb["mle_mean"]], [gb["mle_std"]], "k*", ms=10, label="unconstrained weighted fit")
    ax.plot([decoupled["mean"]], [decoupled["std"]], "o", color="C0", ms=8, label="decoupled optimum (blue box)")
    ax.plot([coupled["mean"]], [coupled["std"]], "o", color="C3", ms=8, label="coupled optimum (red: KL = ε)")
    ax.plot([0], [1], "s", color="0.3", ms=6, label="π_old")
    ax.set(xlabel="μ", ylabel="σ", title="one M-step: where each budget lets π go")
    ax.legend(fontsize=7, loc="center right")
    for name, color in [("decoupled", "C0"), ("coupled", "C3")]:
        iterations = np.arange(em[name]["mean"].size)
        axes[1].plot(iterations, em[name]["mean"], color=color, label=name)
        axes[2].plot(iterations, em[name]["std"], color=color, label=name)
    if target is not None:
        axes[1].axhline(target, color="0.5", ls=":", lw=1, label="best action")
    axes[1].set(xlabel="update (E-step + M-step)", ylabel="μ", title="the mean, update after update")
    axes[2].set(xlabel="update (E-step + M-step)", ylabel="σ", title="σ, update after update", ylim=(0, 1.05))
    for ax in axes[1:]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
