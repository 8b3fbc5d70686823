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


# ------------------------------------------------------------------ the redraw: blitting over a fixed frame


def _pixels(png: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def _full_drawing(panel) -> np.ndarray:
    """The panel's data drawn from scratch on a new figure of the same size: what a redraw must show."""
    import io

    from matplotlib.figure import Figure

    from rlkit.lessons.panels import draw_sweep

    fig = draw_sweep(panel.data, Figure(figsize=panel.figure.get_size_inches(), dpi=panel.figure.dpi))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return _pixels(buffer.getvalue())


@pytest.mark.parametrize("name, moves", [
    ("acktr-delta-eta-max", [("delta", 1e-4), ("delta", 10 ** -1.5), ("eta_max", 0.05), ("eta_max", 1.0),
                             ("delta", 1e-3)]),
    ("vmpo-eps-eta-eps-alpha", [("eps_eta", 0.01), ("eps_alpha", 0.1), ("eps_eta", 1.0), ("eps_alpha", 1e-3)]),
])
def test_a_slider_move_redraws_the_picture_a_full_drawing_makes(name, moves):
    """A move repaints only the curves, the markers, the title and the legend (pasted) over the background
    rendered once: the picture is pixel for pixel the one a full drawing of the same data makes, and the
    background (axes, ticks, heatmap) is not rendered again."""
    panel = sweep_panel(name)
    background = panel._background
    for control, value in moves:
        panel.controls[control].value = value
        assert np.array_equal(_pixels(panel.png()), _full_drawing(panel)), (control, value)
        assert panel._background is background and 0 < panel.seconds < 30


def test_the_axes_hold_the_whole_sweep():
    """The curves and the diagnostic are drawn on axes fixed over the sweep (a move moves the curves, not
    the axes): every return and every positive diagnostic of every point lies inside them."""
    from rlkit.experiments.sweeps import load_sweep
    from rlkit.lessons.panels import sweep_limits

    for name, diagnostic in [("acktr-delta-eta-max", "measured_kl"), ("vmpo-eps-eta-eps-alpha", "mstep_kl")]:
        sweep = load_sweep(name)
        limits = sweep_limits(sweep)
        columns = sweep.columns
        steps = columns["env_steps"]
        assert limits["env_steps"][0] < steps.min() and steps.max() < limits["env_steps"][1]
        returns = columns["episode_return"][~np.isnan(columns["episode_return"])]
        assert limits["returns"][0] < returns.min() and max(returns.max(), 475) < limits["returns"][1]
        values = columns[diagnostic][columns[diagnostic] > 0]
        assert limits["diagnostic"][0] < values.min() and values.max() < limits["diagnostic"][1]
        panel = sweep_panel(name)
        curves, diag = panel.figure.axes[:2]
        assert curves.get_ylim() == pytest.approx(limits["returns"])
        assert diag.get_ylim() == pytest.approx(limits["diagnostic"])
        axis, grid = next(iter(sweep.axes.items()))
        panel.controls[axis].value = float(grid[0])  # a move to the first swept value
        assert panel.data["point"][axis] == pytest.approx(grid[0])
        assert curves.get_ylim() == pytest.approx(limits["returns"])
        assert diag.get_ylim() == pytest.approx(limits["diagnostic"])


def test_a_live_curve_beyond_the_sweep_widens_the_axes_and_is_drawn():
    """A live run longer than the sweep's runs: its curve appears in black with its own legend entry, the
    axes widen to hold it (the figure is drawn again), and later updates redraw over the new background."""
    panel = sweep_panel("acktr-delta-eta-max", delta=1e-3, eta_max=0.25)
    steps = panel.sweep.columns["env_steps"].max()
    panel.live = {"values": panel.values, "env_steps": [10_000.0, 2 * steps], "returns": [20.0, 480.0]}
    panel.update()
    assert panel.limits["env_steps"][1] > 2 * steps
    assert panel.figure.axes[0].get_xlim()[1] > 2 * steps
    labels = [text.get_text() for text in panel.figure.axes[0].get_legend().get_texts()]
    assert labels[0] == "sweep: mean of 3 seeds" and labels[1].startswith("live: delta = 0.001")
    assert np.array_equal(_pixels(panel.png()), _full_drawing(panel))
    panel.live["env_steps"].append(2.5 * steps)
    panel.live["returns"].append(500.0)
    panel.controls["delta"].value = 1e-4
    assert np.array_equal(_pixels(panel.png()), _full_drawing(panel))
