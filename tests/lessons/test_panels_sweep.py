"""The sweep panels of notebooks 07 and 09 on the committed sweeps (data/sweeps/): each slider moves the
data behind the figure as the mathematics says, and the numbers equal the CSV read independently."""
import csv

import numpy as np
import pytest

from rlkit.experiments.sweeps import sweep_path
from rlkit.lessons.panels import sweep_panel


def csv_mean_curve(name, **point):
    """Mean over seeds of episode_return at each env_steps, straight from the CSV (the csv module only)."""
    with open(sweep_path(name), newline="", encoding="utf-8") as file:
        rows = [row for row in csv.DictReader(file)
                if all(np.isclose(float(row[k]), v, rtol=1e-9) for k, v in point.items())]
    by_step = {}
    for row in rows:
        if row["episode_return"] != "":
            by_step.setdefault(int(row["env_steps"]), []).append(float(row["episode_return"]))
    steps = sorted(by_step)
    return np.array(steps), np.array([np.mean(by_step[s]) for s in steps])


def mean_of(panel, diagnostic):
    return float(np.nanmean(panel.data["diagnostics"][diagnostic]))


@pytest.fixture(scope="module")
def acktr_panel():
    return sweep_panel("acktr-delta-eta-max")


@pytest.fixture(scope="module")
def vmpo_panel():
    return sweep_panel("vmpo-eps-eta-eps-alpha")


def test_acktr_panel_has_the_kits_sliders_on_the_swept_grid(acktr_panel):
    assert set(acktr_panel.controls) == {"delta", "eta_max"}
    delta = acktr_panel.controls["delta"]
    assert 10 ** delta.min == pytest.approx(1e-4) and 10 ** delta.max == pytest.approx(10 ** -1.5)
    assert delta.step == pytest.approx(0.5)  # half-decades: every slider stop is a swept value
    assert type(acktr_panel.controls["eta_max"]).__name__ == "FloatSlider"


def test_a_larger_delta_gives_a_larger_measured_kl(acktr_panel):
    acktr_panel.controls["eta_max"].value = 1.0  # no cap in the way
    kls = []
    for exponent in np.arange(-4.0, -1.49, 0.5):
        acktr_panel.controls["delta"].value = 10 ** exponent
        assert acktr_panel.data["point"]["delta"] == pytest.approx(10 ** exponent, rel=1e-5)
        kls.append(mean_of(acktr_panel, "measured_kl"))
    assert all(b > a for a, b in zip(kls, kls[1:])), kls
    assert kls[-1] / kls[0] > 100  # δ spans 2.5 decades; the KL follows it (more than proportionally here)


def test_a_small_eta_max_caps_the_step_and_its_kl(acktr_panel):
    acktr_panel.controls["delta"].value = 10 ** -1.5
    acktr_panel.controls["eta_max"].value = 1.0
    free = mean_of(acktr_panel, "measured_kl")
    acktr_panel.controls["eta_max"].value = 0.05
    capped = mean_of(acktr_panel, "measured_kl")
    assert capped < free / 10
    assert np.nanmean(acktr_panel.data["diagnostics"]["step_size_capped"]) > 0.9  # almost every update hit η_max


def test_the_panel_curve_is_the_csv_mean_over_seeds(acktr_panel):
    acktr_panel.controls["delta"].value = 1e-3
    acktr_panel.controls["eta_max"].value = 0.25
    steps, mean = csv_mean_curve("acktr-delta-eta-max", delta=1e-3, eta_max=0.25)
    defined = ~np.isnan(acktr_panel.data["mean"])
    np.testing.assert_array_equal(acktr_panel.data["env_steps"][defined], steps)
    np.testing.assert_allclose(acktr_panel.data["mean"][defined], mean, rtol=1e-12)
    assert acktr_panel.output.outputs[0]["data"]["image/png"]  # the figure was drawn


def test_eta_max_slider_snaps_to_the_nearest_swept_value(acktr_panel):
    acktr_panel.controls["eta_max"].value = 0.35  # between 0.25 and 0.5: nearer 0.25
    assert acktr_panel.data["point"]["eta_max"] == 0.25
    acktr_panel.controls["eta_max"].value = 0.4  # nearer 0.5
    assert acktr_panel.data["point"]["eta_max"] == 0.5


def test_a_larger_eps_eta_gives_a_larger_e_step_kl(vmpo_panel):
    assert set(vmpo_panel.controls) == {"eps_eta", "eps_alpha"}
    vmpo_panel.controls["eps_alpha"].value = 1e-2
    kls = []
    for exponent in np.arange(-2.0, 0.01, 0.5):
        vmpo_panel.controls["eps_eta"].value = 10 ** exponent
        kls.append(mean_of(vmpo_panel, "estep_kl"))
        # the temperature dual holds KL(ψ ‖ uniform) near its bound ε_η
        assert 0.4 * 10 ** exponent < kls[-1] <= 1.05 * 10 ** exponent
    assert all(b > a for a, b in zip(kls, kls[1:])), kls


def test_a_larger_eps_alpha_lets_the_m_step_move_further(vmpo_panel):
    vmpo_panel.controls["eps_eta"].value = 0.1
    vmpo_panel.controls["eps_alpha"].value = 1e-3
    tight = mean_of(vmpo_panel, "mstep_kl")
    vmpo_panel.controls["eps_alpha"].value = 1e-2
    loose = mean_of(vmpo_panel, "mstep_kl")
    # the α dual holds the M-step KL at ε_α on average (a Lagrange multiplier: met on average, not per step)
    assert 0.9e-3 <= tight <= 1.1e-3
    assert loose > 2 * tight
