r"""Slider panels for the notebooks (ipywidgets + matplotlib).

Every panel is three plain pieces, so that the numbers behind a picture are tested without a
browser and the same picture can be drawn statically (for readers on GitHub):

* a **computation** ``compute(**values) -> data``: a plain function of the controls' values
  (in a ``*_demos`` module, with its own unit tests), returning a dict of numbers;
* a **drawing** ``draw(data, fig)``: draws that dict onto a matplotlib ``Figure`` (called by the
  panel, and by a notebook for the static version of the same figure);
* a **builder** (``trust_region_panel``, ...): makes the controls, named with the kit's names
  (``delta``, ``eta_max``, ``eps_eta``, ``eps_alpha``, ``damping``), and returns a :class:`Panel`
  (a container widget) that wires every control to ``compute`` and ``draw``.

A :class:`Panel` is itself the container widget (a ``VBox``: the controls, then an ``Output``
holding the figure) and carries the numbers behind its figure in ``panel.data``. Changing a
control's ``value`` (by hand in the notebook, or ``panel.controls[name].value = x`` in a test)
recomputes ``panel.data`` and redraws ``panel.figure`` at once; sliders use
``continuous_update=False``, one update when the slider is released. ``panel.seconds`` is the time
the last update took. The ``Output`` holds the figure as one PNG display item
(``panel.output.outputs``), set directly rather than captured, so a panel works the same without
a kernel (tests).

Panels
------
``trust_region_panel``: notebook 05, ACKTR's step size on a fixed batch (``rlkit.trust_region_demos``):
sliders ``delta`` (log) and ``eta_max``, buttons ``convention`` (paper / baselines); per
preconditioner (exact Fisher, K-FAC) the predicted and measured KL over a δ grid, the capped
region, and measured/predicted with its δ → 0 limit.

``damping_panel``: notebook 04, K-FAC's damping (``rlkit.kfac_demos``): slider ``damping`` (log);
the spectrum of F̂ with λ added in the two damping modes, and where λ sits on the precomputed
curves of the direction's cosines and length.

``eps_eta_panel``: notebook 08, V-MPO's E-step temperature (``rlkit.vmpo_demos``): slider ``eps_eta``
(log); L_η(η) and its minimizer η*, KL(ψ ‖ uniform) crossing ε_η at η*, and ψ at η* sorted.

``sweep_panel``: notebooks 07 and 09, a precomputed sweep (``rlkit.sweeps``): sliders ``delta`` (log) and
``eta_max`` (ACKTR) or ``eps_eta`` and ``eps_alpha`` (V-MPO, both log) select the nearest swept point;
its learning curves (per seed and mean), the diagnostic the knobs bound (measured KL for ACKTR, M-step KL
for V-MPO) and the final return over the whole grid; a **Train live** button trains with the exact values.

``eps_alpha_panel``: notebook 08, V-MPO's M-step trust region (``rlkit.vmpo_demos``): slider
``eps_alpha`` (log) over a precomputed sweep of fits; the fitted KL(π_old ‖ π_new) against ε_α,
π_old / π_new / Σψ per action, and the KL and α during the chosen fit.
"""
from __future__ import annotations

import base64
import io
import math
import time
from functools import partial
from typing import Any, Callable, Mapping

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from rlkit.kfac import KFAC
from rlkit.kfac_demos import damping_panel_data
from rlkit.trust_region import CONVENTIONS
from rlkit.trust_region_demos import (
    DEFAULT_DELTAS,
    LABELS,
    PRECONDITIONERS,
    FixedBatch,
    fixed_batch,
    step_size_panel_data,
)

__all__ = ["Panel", "trust_region_panel", "draw_trust_region", "damping_panel", "draw_damping",
           "eps_eta_panel", "draw_eps_eta", "eps_alpha_panel", "draw_eps_alpha", "sweep_panel", "SweepPanel",
           "sweep_panel_data", "draw_sweep"]


class Panel(widgets.VBox):
    """A container widget: the controls in a row, then an ``Output`` holding the figure.

    Args:
        compute: ``compute(**values) -> dict``, called with every control's value by name.
        draw: ``draw(data, fig)``, draws the dict onto a cleared ``Figure``.
        controls: ``{name: ipywidgets value widget}``; names are the kit's parameter names.
        figsize, dpi: size and resolution of the figure.

    Attributes (besides the ``VBox``'s own):
        controls, output, figure: the pieces.
        data: the dict behind the figure now (what tests inspect).
        seconds: wall time of the last update (compute + draw + PNG).
    """

    def __init__(self, compute: Callable[..., dict], draw: Callable[[dict, Figure], Any],
                 controls: Mapping[str, widgets.ValueWidget], *, figsize: tuple[float, float] = (10, 6), dpi: int = 80):
        self.compute, self.draw = compute, draw
        self.controls = dict(controls)
        self.figure = Figure(figsize=figsize, dpi=dpi)  # not pyplot's: never shown twice, never leaked
        self.output = widgets.Output()
        super().__init__(children=[widgets.HBox(list(self.controls.values())), self.output])
        self.data: dict = {}
        self.seconds = float("nan")
        for control in self.controls.values():
            control.observe(self.update, names="value")
        self.update()

    @property
    def values(self) -> dict[str, Any]:
        """The controls' current values, by name."""
        return {name: control.value for name, control in self.controls.items()}

    def update(self, change=None) -> None:
        """Recompute the data from the controls and redraw (called on every value change)."""
        start = time.perf_counter()
        self.data = self.compute(**self.values)
        self.figure.clear()
        self.draw(self.data, self.figure)
        self._show(self.png())
        self.seconds = time.perf_counter() - start

    def _show(self, png: bytes) -> None:
        # Replace the Output's content in one state update instead of ``with output: display(...)``:
        # atomic (no flicker, no clear/display race) and the same with or without a kernel. The
        # captured form made ``jupyter nbconvert --execute`` wait after the panel's cell, sometimes
        # for good (an output capture during execution; compare jupyter/nbclient#312).
        self.output.outputs = ({
            "output_type": "display_data",
            "data": {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": "<panel figure>"},
            "metadata": {},
        },)

    def png(self) -> bytes:
        """The figure rendered as PNG bytes (what the ``Output`` shows)."""
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png")
        return buffer.getvalue()



# ----------------------------------------------------------------------------------------------
# Notebook 05: the trust region
# ----------------------------------------------------------------------------------------------


def draw_trust_region(data: dict, fig: Figure | None = None) -> Figure:
    """Draw :func:`rlkit.trust_region_demos.step_size_panel_data` onto ``fig`` (a new pyplot figure if None).

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

    ``batch`` defaults to ``rlkit.trust_region_demos.fixed_batch()``. The curves over ``deltas``
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


# ----------------------------------------------------------------------------------------------
# Notebook 04: damping
# ----------------------------------------------------------------------------------------------


def draw_damping(data: dict, fig: Figure | None = None) -> Figure:
    """Draw :func:`rlkit.kfac_demos.damping_panel_data` onto ``fig`` (a new pyplot figure if None):
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
    ``rlkit.kfac_demos.damping_sweep`` over ``dampings``, computed once. The computation is
    ``rlkit.kfac_demos.damping_panel_data``.
    """
    dampings = np.asarray(dampings, dtype=float)
    controls = {
        "damping": widgets.FloatLogSlider(value=damping, base=10, min=math.log10(dampings[0]),
                                          max=math.log10(dampings[-1]), step=0.25, description="damping",
                                          readout_format=".1e", continuous_update=False),
    }
    compute = partial(damping_panel_data, kfac, sweep, dampings, gradient_norm)
    return Panel(compute, draw_damping, controls, figsize=(14, 4))


# ----------------------------------------------------------------------------------------------
# Notebook 08: V-MPO's EM (rlkit.vmpo_demos)
# ----------------------------------------------------------------------------------------------


def draw_eps_eta(data: dict, fig: Figure | None = None) -> Figure:
    """Draw :func:`rlkit.vmpo_demos.eps_eta_panel_data` onto ``fig`` (a new pyplot figure if None).

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

    ``batch`` is an ``rlkit.vmpo_demos.EBatch``. ``high`` defaults to 0.9 · log k (beyond log k no η
    reaches the KL). The L_η and KL curves are computed once (``temperature_curve``); a slider move
    solves for η* (bisection) and runs one E-step: ``rlkit.vmpo_demos.eps_eta_panel_data``.
    """
    from rlkit.vmpo_demos import eps_eta_panel_data, selection_summary, temperature_curve

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
    """Draw :func:`rlkit.vmpo_demos.eps_alpha_panel_data` onto ``fig`` (a new pyplot figure if None).

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

    ``sweep`` is ``rlkit.vmpo_demos.m_step_sweep(batch, eps_alphas)`` with log-spaced ε_α (the
    slider steps on that grid); a slider move only selects a fit and redraws
    (``rlkit.vmpo_demos.eps_alpha_panel_data``).
    """
    from rlkit.vmpo_demos import eps_alpha_panel_data

    grid = np.log10([f["eps_alpha"] for f in sweep])
    step = float(np.round(np.mean(np.diff(grid)), 6)) if grid.size > 1 else 0.1
    controls = {
        "eps_alpha": widgets.FloatLogSlider(value=eps_alpha, base=10, min=float(grid[0]), max=float(grid[-1]),
                                            step=step, description="eps_alpha", readout_format=".3g",
                                            continuous_update=False),
    }
    return Panel(partial(eps_alpha_panel_data, sweep), draw_eps_alpha, controls, figsize=(13, 3.8))


# ----------------------------------------------------------------------------------------------
# Notebooks 07 and 09: precomputed sweeps (δ × η_max for ACKTR, ε_η × ε_α for V-MPO), live training
# ----------------------------------------------------------------------------------------------

# The per-update diagnostic drawn beside the curves, by algorithm: what the swept knobs bound.
SWEEP_DIAGNOSTIC = {"acktr": ("measured_kl", "measured KL(π_old ‖ π_new) per update"),
                    "vmpo": ("mstep_kl", "M-step KL(π_old ‖ π_θ) per update")}


def sweep_panel_data(sweep, grid: dict, live: dict | None = None, **values) -> dict:
    """The numbers of a sweep panel: :func:`rlkit.sweeps.sweep_point` at ``values``, the heatmap ``grid``
    (:func:`rlkit.sweeps.sweep_grid`, computed once) and the ``live`` run's curve if one was trained."""
    from rlkit.sweeps import sweep_point

    data = sweep_point(sweep, **values)
    algorithm = sweep.meta.get("algorithm", "acktr")
    name, label = SWEEP_DIAGNOSTIC.get(algorithm, (sweep.diagnostics[0], sweep.diagnostics[0]))
    return {**data, "grid": grid, "live": live, "diagnostic": name, "diagnostic_label": label,
            "env": sweep.meta.get("env", ""), "algorithm": algorithm, "threshold": sweep.meta.get("threshold")}


def _fmt_point(point: dict) -> str:
    return ", ".join(f"{name} = {value:.3g}" for name, value in point.items())


def draw_sweep(data: dict, fig: Figure | None = None) -> Figure:
    """Draw :func:`sweep_panel_data`: the learning curves at the chosen point (each seed thin, the mean
    thick, the live run black), the chosen diagnostic over training, and the final return over the
    whole grid with the chosen point circled."""
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(14, 4))
    curves, diag, heat = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.2, 1.0, 1.0]})
    steps = data["env_steps"]
    for seed, returns in zip(data["seeds"], data["returns"]):
        curves.plot(steps, returns, color="C0", lw=0.8, alpha=0.5)
    curves.plot(steps, data["mean"], color="C0", lw=2.2, label=f"sweep: mean of {len(data['seeds'])} seeds")
    live = data.get("live")
    if live is not None and len(live["env_steps"]):
        curves.plot(live["env_steps"], live["returns"], color="k", lw=1.5,
                    label=f"live: {_fmt_point(live['values'])}")
    if data.get("threshold") is not None:
        curves.axhline(data["threshold"], color="0.5", ls=":", lw=1)
    curves.set(xlabel="env steps", ylabel="mean return (last 10 episodes)",
               title=f"{data['algorithm']} on {data['env']}: {_fmt_point(data['point'])}")
    curves.legend(fontsize=7, loc="upper left")
    for values in data["diagnostics"][data["diagnostic"]]:
        diag.plot(steps, values, color="C3", lw=0.8, alpha=0.6)
    diag.set_yscale("log")
    diag.set(xlabel="env steps", title=data["diagnostic_label"])
    for name in ("delta", "eps_alpha"):
        if name in data["point"] and data["diagnostic"] in ("measured_kl", "mstep_kl"):
            diag.axhline(data["point"][name], color="k", ls="--", lw=1, label=f"{name} = {data['point'][name]:.3g}")
            diag.legend(fontsize=7)
    grid = data["grid"]
    image = heat.imshow(grid["values"], origin="lower", aspect="auto", cmap="viridis")
    heat.set_xticks(range(len(grid["x_values"])), [f"{v:.2g}" for v in grid["x_values"]], fontsize=7)
    heat.set_yticks(range(len(grid["y_values"])), [f"{v:.2g}" for v in grid["y_values"]], fontsize=7)
    j = int(np.flatnonzero(np.isclose(grid["x_values"], data["point"][grid["x"]]))[0])
    i = int(np.flatnonzero(np.isclose(grid["y_values"], data["point"][grid["y"]]))[0])
    heat.plot(j, i, "o", ms=14, mfc="none", mec="red", mew=2)
    heat.set(xlabel=grid["x"], ylabel=grid["y"], title="final return, mean over seeds")
    fig.colorbar(image, ax=heat, fraction=0.05)
    fig.subplots_adjust(left=0.05, right=0.97, bottom=0.14, top=0.88, wspace=0.28)
    return fig


class SweepPanel(Panel):
    """A :class:`Panel` over a precomputed sweep, with a **Train live** button.

    The sliders select the nearest swept point (drawn at once from the table). The button trains the
    sweep's algorithm on its env with the sliders' exact values (seed 0, ``train_steps`` env steps,
    the classic preset otherwise) into a fresh temporary directory, drawing the curve as it learns.
    """

    def __init__(self, sweep, controls, *, train_steps: int | None = None):
        from rlkit.sweeps import sweep_grid

        self.sweep, self.live = sweep, None
        self.train_steps = int(train_steps or sweep.meta.get("steps", 100_000))
        grid = sweep_grid(sweep, "final_return")
        super().__init__(lambda **values: sweep_panel_data(sweep, grid, self.live, **values), draw_sweep, controls,
                         figsize=(14, 4))
        self.button = widgets.Button(description="Train live", tooltip="train with these values, seed 0")
        self.status = widgets.Label(value=f"Train live: {self.train_steps:,} env steps, seed 0")
        self.button.on_click(lambda _: self.train_live())
        self.children = (widgets.HBox(list(self.controls.values()) + [self.button, self.status]), self.output)

    def train_live(self, steps: int | None = None, redraw_every: int = 20):
        """Train with the current slider values; returns the ``rlkit.train.TrainResult``."""
        import tempfile

        from rlkit.train import train

        values = self.values
        steps = self.train_steps if steps is None else steps
        self.live = {"values": values, "env_steps": [], "returns": []}
        recent: list[float] = []

        def on_update(info) -> None:
            recent.extend(e.episode_return for e in info.episodes)
            if recent:
                self.live["env_steps"].append(info.env_steps)
                self.live["returns"].append(float(np.mean(recent[-10:])))
            if info.update % redraw_every == 0:
                self.status.value = f"training: {info.env_steps:,} / {steps:,} env steps"
                self.update()

        self.button.disabled = True
        try:
            run_dir = tempfile.mkdtemp(prefix="rlkit-live-")
            result = train(self.sweep.meta.get("algorithm", "acktr"), self.sweep.meta["env"], steps=steps, seed=0,
                           overrides=values, run_dir=run_dir, overwrite=True, progress=False, callback=on_update)
            self.status.value = f"trained {result.env_steps:,} env steps in {result.wall_time_s:.0f} s ({run_dir})"
        finally:
            self.button.disabled = False
        self.update()
        return result


def sweep_panel(sweep="acktr-delta-eta-max", *, train_steps: int | None = None, **values) -> SweepPanel:
    """Sliders over a precomputed sweep (``rlkit.sweeps``): one per axis, named by the kit's names
    (``delta`` and ``eta_max`` for ACKTR, ``eps_eta`` and ``eps_alpha`` for V-MPO), log sliders for
    δ, ε_η, ε_α stepping on the swept half-decades, a linear slider for η_max; start values ``values``
    (default: the middle of each axis). ``sweep``: a name or a :class:`rlkit.sweeps.Sweep`."""
    from rlkit.sweeps import LOG_AXES, load_sweep

    sweep = load_sweep(sweep) if isinstance(sweep, str) else sweep
    controls = {}
    for name, grid in sweep.axes.items():
        start = float(values.get(name, grid[len(grid) // 2]))
        if name in LOG_AXES:
            logs = np.log10(grid)
            step = float(np.round(np.min(np.diff(logs)), 6)) if len(logs) > 1 else 0.5
            controls[name] = widgets.FloatLogSlider(value=start, base=10, min=float(logs[0]), max=float(logs[-1]),
                                                    step=step, description=name, readout_format=".3g",
                                                    continuous_update=False)
        else:
            controls[name] = widgets.FloatSlider(value=start, min=float(grid[0]), max=float(grid[-1]), step=0.05,
                                                 description=name, readout_format=".2f", continuous_update=False)
    return SweepPanel(sweep, controls, train_steps=train_steps)
