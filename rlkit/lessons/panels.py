"""Slider panels for the notebooks (ipywidgets + matplotlib): the shared :class:`Panel` and the
sweep panel of notebooks 07 and 09.

A panel is three plain pieces, so that the numbers behind a picture are tested without a
browser: a computation ``compute(**values) -> dict`` (a plain tested function), a drawing
``draw(data, fig)`` and a builder that makes the controls (named with the kit's names:
``delta``, ``eta_max``, ``eps_eta``, ``eps_alpha``, ``damping``) and wires them to both.
Changing a control's ``value`` recomputes ``panel.data`` and redraws ``panel.figure`` at once;
``panel.seconds`` is the time the last redraw took.
"""
from __future__ import annotations

import base64
import io
import time
from typing import Any, Callable, Mapping

import ipywidgets as widgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image


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


class BlittedPanel(Panel):
    """A :class:`Panel` that draws its figure once and then, on a control change, redraws only the
    artists that depend on the controls over the saved background (matplotlib's blitting), so that a
    redraw costs a few artists instead of the whole figure. A subclass's ``update`` calls
    :meth:`draw_static` the first time and :meth:`blit` every time."""

    def draw_static(self, draw: Callable[[], Any]) -> Any:
        """Clear the figure, call ``draw()`` (which creates the moving artists with ``animated=True``
        and returns them), render everything else once and keep it as the background."""
        self.figure.clear()
        self._canvas = FigureCanvasAgg(self.figure)
        moving = draw()
        self._canvas.draw()  # the animated artists are left out of this rendering
        self._background = self._canvas.copy_from_bbox(self.figure.bbox)
        return moving

    def blit(self, artists, regions=()) -> None:
        """Restore the background, draw ``artists`` on it, paste the saved pixel ``regions`` on top
        and show the result."""
        self._canvas.restore_region(self._background)
        for artist in artists:
            self.figure.draw_artist(artist)  # an invisible artist draws nothing
        for region in regions:
            self._canvas.restore_region(region)
        self._show(self.png())

    def png(self) -> bytes:
        """The canvas as PNG bytes (what the ``Output`` shows)."""
        buffer = io.BytesIO()
        Image.frombuffer("RGBA", self._canvas.get_width_height(), self._canvas.buffer_rgba()).save(
            buffer, format="png", compress_level=1)
        return buffer.getvalue()


# The per-update diagnostic drawn beside the curves, by algorithm: what the swept knobs bound.
SWEEP_DIAGNOSTIC = {"acktr": ("measured_kl", "measured KL(π_old ‖ π_new) per update"),
                    "vmpo": ("mstep_kl", "M-step KL(π_old ‖ π_θ) per update")}


def sweep_panel_data(sweep, grid: dict, live: dict | None = None, **values) -> dict:
    """The numbers of a sweep panel: :func:`rlkit.experiments.sweeps.sweep_point` at ``values``, the heatmap ``grid``
    (:func:`rlkit.experiments.sweeps.sweep_grid`, computed once) and the ``live`` run's curve if one was trained."""
    from rlkit.experiments.sweeps import sweep_point

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
        from rlkit.experiments.sweeps import sweep_grid

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
        """Train with the current slider values; returns the ``rlkit.experiments.train.TrainResult``."""
        import tempfile

        from rlkit.experiments.train import train

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
    """Sliders over a precomputed sweep (``rlkit.experiments.sweeps``): one per axis, named by the kit's names
    (``delta`` and ``eta_max`` for ACKTR, ``eps_eta`` and ``eps_alpha`` for V-MPO), log sliders for
    δ, ε_η, ε_α stepping on the swept half-decades, a linear slider for η_max; start values ``values``
    (default: the middle of each axis). ``sweep``: a name or a :class:`rlkit.experiments.sweeps.Sweep`."""
    from rlkit.experiments.sweeps import LOG_AXES, load_sweep

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
