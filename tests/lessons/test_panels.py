"""rlkit.widgets: panels built headlessly; setting a control changes the data behind the figure
as the mathematics says, and the figure shows that data."""

import base64
import math

import ipywidgets as widgets
import numpy as np
import pytest
from matplotlib.figure import Figure

from rlkit.lessons.nb05_trust_region import demos as trd
from rlkit.lessons.panels import Panel
from rlkit.lessons.nb05_trust_region.panels import draw_trust_region, trust_region_panel


@pytest.fixture(scope="module")
def batch():
    return trd.fixed_batch()


@pytest.fixture
def panel(batch):
    return trust_region_panel(batch, delta=0.001, eta_max=1.0)


# ------------------------------------------------------------------ the generic panel


def test_panel_wires_controls_to_compute_and_draw():
    calls = []

    def compute(a, b):
        calls.append((a, b))
        return {"x": np.arange(3), "y": a * np.arange(3) + b}

    def draw(data, fig):
        fig.subplots().plot(data["x"], data["y"], label="y")

    controls = {"a": widgets.IntSlider(value=1, min=0, max=5, continuous_update=False),
                "b": widgets.FloatSlider(value=0.5, continuous_update=False)}
    panel = Panel(compute, draw, controls)
    assert calls == [(1, 0.5)] and panel.values == {"a": 1, "b": 0.5}
    controls["a"].value = 3
    assert calls[-1] == (3, 0.5)
    assert np.array_equal(panel.data["y"], [0.5, 3.5, 6.5])
    (line,) = panel.figure.axes[0].get_lines()
    assert np.array_equal(line.get_ydata(), panel.data["y"])  # redrawn, not stacked on the old figure
    assert panel.png().startswith(b"\x89PNG") and panel.seconds >= 0
    assert isinstance(panel, widgets.VBox) and panel.output in panel.children  # the panel is the container
    (shown,) = panel.output.outputs  # the Output holds exactly the current figure, as a PNG
    assert base64.b64decode(shown["data"]["image/png"]) == panel.png()


def test_encode_png_is_a_png_of_the_same_pixels():
    import io

    from PIL import Image

    from rlkit.lessons.panels import encode_png

    rgba = np.random.default_rng(0).integers(0, 256, size=(7, 5, 4), dtype=np.uint8)
    image = Image.open(io.BytesIO(encode_png(rgba)))
    assert image.format == "PNG" and image.mode == "RGBA" and image.size == (5, 7)
    assert np.array_equal(np.asarray(image), rgba)


def test_redraw_order_is_what_a_full_drawing_paints_over_what_moves():
    """The moving artists, and in their axes whatever a full drawing paints over them (a later line, the
    legend, the spines), in a full drawing's order and left out of the background; not the axes' ticks and
    title. An axes whose y-axis moves (its limits follow the data) has all its content repainted."""
    from rlkit.lessons.panels import redraw_order

    fig = Figure()
    left, right = fig.subplots(1, 2)
    below = left.plot([0, 1], [0, 1], zorder=1)[0]
    moving = left.plot([0, 1], [1, 0], label="moving")[0]
    above = left.plot([0, 1], [0.5, 0.5], label="above")[0]
    legend = left.legend()
    left.set_title("static")
    still = right.plot([0, 1], [0, 1])[0]
    bars = list(right.bar([0, 1], [1, 2]))
    order = redraw_order([moving])
    assert order[0] is moving and above in order and legend in order and below not in order
    assert order.index(moving) < order.index(above) < order.index(legend)  # as Axes.draw sorts: by zorder
    assert all(spine in order for spine in left.spines.values())
    assert left.title not in order and left.xaxis not in order and left.yaxis not in order
    assert all(artist.get_animated() for artist in order) and not below.get_animated()
    assert not any(artist.axes is right for artist in order)
    order = redraw_order([right.yaxis])
    assert still in order and all(bar in order for bar in bars) and right.yaxis in order
    assert right.xaxis not in order and right.title not in order


# ------------------------------------------------------------------ the trust-region panel


def test_trust_region_controls_use_the_kits_names(panel):
    delta, eta_max = panel.controls["delta"], panel.controls["eta_max"]
    assert isinstance(delta, widgets.FloatLogSlider) and delta.description == "delta"
    assert isinstance(eta_max, widgets.FloatSlider) and eta_max.description == "eta_max"
    assert delta.continuous_update is False and eta_max.continuous_update is False
    assert list(panel.controls["convention"].options) == ["paper", "baselines"]
    assert panel.values == {"delta": 0.001, "eta_max": 1.0, "convention": "paper"}


def test_panel_only_wires_the_plain_computation(panel, batch):
    expected = trd.step_size_panel_data(batch, delta=0.001, eta_max=1.0)
    assert panel.data["at_delta"] == expected["at_delta"]
    for name in trd.PRECONDITIONERS:
        for key in ("eta", "predicted_kl", "measured_kl", "capped"):
            assert np.array_equal(panel.data["curves"][name][key], expected["curves"][name][key])


def test_larger_delta_gives_larger_measured_kl(panel):
    before = panel.data["at_delta"]
    panel.controls["delta"].value = 0.01
    after = panel.data["at_delta"]
    for name in trd.PRECONDITIONERS:
        assert not after[name]["capped"]
        assert after[name]["predicted_kl"] == pytest.approx(0.01, rel=1e-12)
        assert after[name]["eta"] == pytest.approx(before[name]["eta"] * math.sqrt(10), rel=1e-12)  # η ∝ sqrt(δ)
        assert after[name]["measured_kl"] > 5 * before[name]["measured_kl"]


def test_lowering_eta_max_below_the_uncapped_step_caps_it(panel):
    panel.controls["delta"].value = 0.01
    uncapped = panel.data["at_delta"]
    eta_max = 0.5 * min(s["eta"] for s in uncapped.values())
    panel.controls["eta_max"].value = round(eta_max, 2)
    capped = panel.data["at_delta"]
    for name in trd.PRECONDITIONERS:
        assert capped[name]["capped"] and capped[name]["eta"] == panel.controls["eta_max"].value
        assert capped[name]["predicted_kl"] < 0.01
        assert capped[name]["measured_kl"] < 0.5 * uncapped[name]["measured_kl"]
        curves = panel.data["curves"][name]
        assert curves["delta_cap"] < 0.01 and curves["capped"][-1]


def test_baselines_convention_halves_the_predicted_kl(panel):
    panel.controls["delta"].value = 0.01
    paper = panel.data["at_delta"]
    panel.controls["convention"].value = "baselines"
    baselines = panel.data["at_delta"]
    for name in trd.PRECONDITIONERS:
        assert baselines[name]["predicted_kl"] == pytest.approx(paper[name]["predicted_kl"] / 2, rel=1e-12)
        assert baselines[name]["eta"] == pytest.approx(paper[name]["eta"] / math.sqrt(2), rel=1e-12)
        assert baselines[name]["measured_kl"] < paper[name]["measured_kl"]


def test_figure_shows_the_data(panel):
    panel.controls["delta"].value = 0.003
    axes = panel.figure.axes
    assert len(axes) == 4
    for col, name in enumerate(trd.PRECONDITIONERS):
        lines = {line.get_label(): line for line in axes[col].get_lines()}
        measured = lines["measured KL(π_old ‖ π_new)"]
        assert np.array_equal(measured.get_ydata(), panel.data["curves"][name]["measured_kl"])
        predicted = lines["predicted ½η²q (paper rule)"]
        assert np.array_equal(predicted.get_ydata(), panel.data["curves"][name]["predicted_kl"])
        assert f"δ = {0.003:.2g}" in axes[col].get_title()


def test_static_drawing_of_the_same_data(batch):
    data = trd.step_size_panel_data(batch, delta=0.01, eta_max=0.25)
    fig = draw_trust_region(data, Figure(figsize=(11, 7.5)))
    assert len(fig.axes) == 4


def _pixels(png: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)


@pytest.mark.parametrize("control, value", [("delta", 2e-5), ("delta", 0.05), ("eta_max", 0.01), ("eta_max", 0.6),
                                            ("convention", "baselines")])
def test_trust_region_redraw_shows_the_same_figure_as_a_full_drawing(panel, control, value):
    """A control change redraws only what depends on the controls over the saved background (the legends
    pasted from pixels rendered once per convention): the picture must be the one a full drawing of the
    same data gives, and the axes keep their limits."""
    import io

    limits = [(ax.get_xlim(), ax.get_ylim()) for ax in panel.figure.axes]
    panel.controls["delta"].value = 0.003
    panel.controls[control].value = value
    assert panel.values[control] == pytest.approx(value) and 0 < panel.seconds < 30
    assert [(ax.get_xlim(), ax.get_ylim()) for ax in panel.figure.axes] == limits
    full = draw_trust_region(panel.data, Figure(figsize=panel.figure.get_size_inches(), dpi=panel.figure.dpi))
    buffer = io.BytesIO()
    full.savefig(buffer, format="png")
    redrawn, drawn = _pixels(panel.png()), _pixels(buffer.getvalue())
    assert redrawn.shape == drawn.shape
    assert np.mean(np.abs(redrawn - drawn).max(-1) > 60) < 0.001  # the same picture, up to a few pixels
    labels = [text.get_text() for text in panel.figure.axes[0].get_legend().get_texts()]
    assert f"predicted ½η²q ({panel.values['convention']} rule)" in labels


def test_trust_region_axes_cover_every_setting_of_the_controls(batch):
    """The fixed limits (panel_limits) hold every KL and ratio the sliders can reach: the corners of the
    controls' ranges, in both conventions."""
    deltas = trd.DEFAULT_DELTAS
    limits = trd.panel_limits(batch, deltas)
    for eta_max in trd.ETA_MAX_RANGE:
        for convention in ("paper", "baselines"):
            data = trd.step_size_panel_data(batch, delta=deltas[0], eta_max=eta_max, convention=convention,
                                            limits=limits)
            for name in trd.PRECONDITIONERS:
                c = data["curves"][name]
                values = np.concatenate([c["predicted_kl"], c["measured_kl"], data["other_convention"][name], deltas])
                assert limits["kl"][0] < values.min() and values.max() < limits["kl"][1]
                assert np.max(c["measured_kl"] / c["predicted_kl"]) < limits["ratio"][1]
    assert limits["delta"][0] < deltas[0] and deltas[-1] < limits["delta"][1]


# ------------------------------------------------------------------ notebook 04: damping


@pytest.fixture(scope="module")
def damping_setup():
    from rlkit.lessons.nb04_kfac_in_practice.demos import damping_sweep
    from rlkit.lessons.nb03_kronecker_factors.demos import exact_kfac, seeded_mlp, teacher_regression

    x, y, _ = teacher_regression(n=64, dim=3, outputs=2, hidden=4, seed=0)
    model = seeded_mlp([3, 6, 2], seed=0)
    dampings = np.logspace(-4, 2, 7)
    sweep = damping_sweep(model, x, y, dampings, output="gaussian")
    return exact_kfac(model, x, "gaussian"), sweep, dampings


def test_damping_panel_marks_lambda_on_the_spectrum_as_the_math_says(damping_setup):
    from rlkit.lessons.nb04_kfac_in_practice.panels import damping_panel

    kfac, sweep, dampings = damping_setup
    panel = damping_panel(kfac, sweep, dampings, damping=1e-3)
    before_png, before = panel.png(), panel.data
    spectrum = before["spectrum"]
    # eigen mode adds λ to every eigenvalue of S⊗A; the fraction below λ is counted on S⊗A.
    assert np.allclose(spectrum["eigen"], spectrum["undamped"] + 1e-3)
    assert before["fraction_below"] == pytest.approx(np.mean(spectrum["undamped"] < 1e-3))

    panel.controls["damping"].value = 10.0
    after = panel.data
    assert after["damping"] == pytest.approx(10.0)
    assert np.allclose(after["spectrum"]["eigen"], after["spectrum"]["undamped"] + 10.0)
    # a larger λ dominates more directions, and each factored eigenvalue
    # (λ_S + √λ/κ)(λ_A + κ√λ) grows with λ (κ does not depend on λ)
    assert after["fraction_below"] > before["fraction_below"]
    assert np.all(after["spectrum"]["factored"] > spectrum["factored"])
    assert panel.png() != before_png


def test_damping_panel_redraw_shows_the_same_figure_as_a_full_drawing(damping_setup):
    """A slider move redraws only what depends on λ over the saved background: the picture must be
    the one a full drawing of the same data gives (and the redraw is timed in panel.seconds)."""
    import io

    from PIL import Image

    from rlkit.lessons.nb04_kfac_in_practice.panels import damping_panel, draw_damping

    kfac, sweep, dampings = damping_setup
    panel = damping_panel(kfac, sweep, dampings, damping=1e-3)
    panel.controls["damping"].value = 1.0
    assert panel.data["damping"] == pytest.approx(1.0) and 0 < panel.seconds < 30
    redrawn = np.asarray(Image.open(io.BytesIO(panel.png())).convert("RGB"), dtype=float)
    full = draw_damping(panel.data, Figure(figsize=panel.figure.get_size_inches(), dpi=panel.figure.dpi))
    buffer = io.BytesIO()
    full.savefig(buffer, format="png")
    drawn = np.asarray(Image.open(buffer).convert("RGB"), dtype=float)
    assert redrawn.shape == drawn.shape
    assert np.mean(np.abs(redrawn - drawn).max(-1) > 60) < 0.001  # the same picture, up to a few pixels
    assert panel.data["fraction_below"] > 0 and f"{panel.data['fraction_below']:.0%} below λ" in panel._moving["title"].get_text()
