"""The notebook-08 panels, built headlessly: setting a slider changes the data behind the figure as
the mathematics says, and the figure (PNG) changes with it."""

import base64

import ipywidgets as widgets
import numpy as np
import pytest

from rlkit.lessons.nb08_vmpo_em import demos as vd
from rlkit.lessons.nb08_vmpo_em.panels import eps_alpha_panel, eps_eta_panel


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
    assert after["eta_star"] < before["eta_star"]
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
