"""The notebook-08 panels, built headlessly: setting a slider changes the data behind the figure as
the mathematics says, and the figure (PNG) changes with it."""

import base64
import io

import ipywidgets as widgets
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from rlkit.lessons.nb08_vmpo_em import demos as vd
from rlkit.lessons.nb08_vmpo_em.panels import (
    draw_decoupling,
    draw_eps_alpha,
    draw_eps_eta,
    draw_selection,
    eps_alpha_panel,
    eps_eta_panel,
)


def _png(panel) -> bytes:
    (item,) = panel.output.outputs
    return base64.b64decode(item["data"]["image/png"])


@pytest.fixture(scope="module")
def bandit():
    return vd.bandit_batch()


def test_eps_eta_panel(bandit):
    panel = eps_eta_panel(bandit, eps_eta=0.05)
    slider = panel.controls["eps_eta"]
    assert isinstance(slider, widgets.FloatLogSlider)
    assert slider.description == "eps_eta" and slider.continuous_update is False
    before, png_before = panel.data, _png(panel)
    slider.value = 1.0
    after = panel.data
    assert after["eps_eta"] == pytest.approx(1.0)
    assert after["kl_star"] == pytest.approx(1.0, abs=1e-9)  # the KL reached is the new ε_η
    assert after["tau_star"] < before["tau_star"]
    assert after["max_psi"] > before["max_psi"] and after["entropy_psi"] < before["entropy_psi"]
    assert _png(panel) != png_before


def test_eps_alpha_panel(bandit):
    sweep = vd.m_step_sweep(bandit, np.logspace(-2, -0.5, 7), steps=200)
    panel = eps_alpha_panel(sweep, eps_alpha=0.01)
    slider = panel.controls["eps_alpha"]
    assert isinstance(slider, widgets.FloatLogSlider)
    assert slider.description == "eps_alpha" and slider.continuous_update is False
    before, png_before = panel.data, _png(panel)
    slider.value = 0.3
    after = panel.data
    assert after["eps_alpha"] == pytest.approx(10**-0.5)
    assert after["kl"] > 5 * before["kl"]  # a larger budget: the fitted policy moves further
    assert after["fit"]["probs_new"][4] > before["fit"]["probs_new"][4]  # towards the best arm
    assert _png(panel) != png_before


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def _fresh(draw, data) -> bytes:
    fig = Figure(figsize=(13, 3.8), dpi=80)
    draw(data, fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def test_refreshed_panels_equal_a_fresh_drawing(bandit):
    """After a slider move the panels repaint only what moved over the background rendered once (blitting):
    the picture is pixel for pixel the one the drawing function makes from scratch with the same data, at
    both ends of the slider too (where τ* leaves the τ grid and ψ's axis grows tenfold)."""
    panel = eps_eta_panel(bandit, eps_eta=0.05)
    background = panel._background
    slider = panel.controls["eps_eta"]
    for value in (0.3, 1.0, 0.02, 10 ** slider.min, 10 ** slider.max):
        slider.value = value
        assert np.array_equal(_pixels(_png(panel)), _pixels(_fresh(draw_eps_eta, panel.data))), value
    assert panel._background is background
    sweep = vd.m_step_sweep(bandit, np.logspace(-2, -0.5, 7), steps=50)
    panel = eps_alpha_panel(sweep, eps_alpha=0.01)
    for value in (0.3, 0.0316, 0.01, 0.3):  # the last: its titles pasted from the pixels rendered the first time
        panel.controls["eps_alpha"].value = value
        assert np.array_equal(_pixels(_png(panel)), _pixels(_fresh(draw_eps_alpha, panel.data))), value


def test_panel_axes_hold_the_whole_slider(bandit):
    """The panels fix the axes the slider would otherwise move (τ: τ* at both ends of the ε_η range; the KL
    axis: ε_η's whole range; the probabilities: every fit's bars); a plain drawing scales to its own data."""
    panel = eps_eta_panel(bandit, eps_eta=0.05)
    slider = panel.controls["eps_eta"]
    low, high = (vd.eps_eta_panel_data(bandit, 10 ** e) for e in (slider.min, slider.max))
    (tau_low, tau_high), (kl_low, kl_high) = panel.data["tau_limits"], panel.data["kl_limits"]
    assert tau_low < high["tau_star"] < low["tau_star"] < tau_high
    assert kl_low < low["eps_eta"] < high["eps_eta"] < kl_high
    assert panel.figure.axes[0].get_xlim() == pytest.approx(panel.data["tau_limits"])
    assert "tau_limits" not in vd.eps_eta_panel_data(bandit, 0.05)
    sweep = vd.m_step_sweep(bandit, np.logspace(-2, -0.5, 7), steps=50)
    panel = eps_alpha_panel(sweep, eps_alpha=0.01)
    largest = max(float(np.max(f[key])) for f in sweep for key in ("probs_old", "probs_new", "target"))
    assert panel.figure.axes[1].get_ylim() == pytest.approx((0, 1.05 * largest))


def test_static_figures_draw():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cartpole = vd.cartpole_batch()
    fig = draw_selection(cartpole, vd.selection_summary(cartpole))
    assert len(fig.axes) == 2
    gb = vd.gaussian_bandit_weights(target=0.3)
    dec = vd.gaussian_m_step(gb["actions"], gb["weights"])
    cou = vd.gaussian_m_step(gb["actions"], gb["weights"], coupled_eps=0.0101)
    em = vd.gaussian_em(iterations=3)
    fig2 = draw_decoupling(gb, dec, cou, em, eps_alpha_mu=0.01, eps_alpha_sigma=1e-4, coupled_eps=0.0101)
    assert len(fig2.axes) == 3
    plt.close(fig)
    plt.close(fig2)
