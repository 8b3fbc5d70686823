"""Slider panels for the notebooks (ipywidgets + matplotlib): the shared :class:`Panel`, the blitting
:class:`BlittedPanel` and the sweep panel of notebooks 07 and 09.

A panel is three plain pieces, so that the numbers behind a picture are tested without a
browser: a computation ``compute(**values) -> dict`` (a plain tested function), a drawing
``draw(data, fig)`` and a builder that makes the controls (named with the kit's names:
``delta``, ``eta_max``, ``eps_eta``, ``eps_alpha``, ``damping``) and wires them to both.
Changing a control's ``value`` recomputes ``panel.data`` and redraws ``panel.figure`` at once;
``panel.seconds`` is the time the last redraw took.

Every slider panel of the notebooks redraws in well under 0.3 s (``benchmarks/panels.py``): text is
what matplotlib draws slowest (a few milliseconds per label), so a :class:`BlittedPanel` renders the
axes, their ticks and labels once and on a slider move paints only what moved.
"""
from __future__ import annotations

import base64
import io
import struct
import time
import zlib
from typing import Any, Callable, Iterable, Mapping

import ipywidgets as widgets
import numpy as np
from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.ticker import FuncFormatter


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
    :meth:`draw_static` the first time and :meth:`blit` (or :meth:`blit_order`) every time.

    What a redraw must paint, for its picture to be the one a full drawing makes, is
    :func:`redraw_order` of the moving artists. Text is what matplotlib draws slowest (a few
    milliseconds a label): a title that takes one of a few texts, and an opaque legend, are pasted as
    pixels rendered once (:meth:`pasted`)."""

    def draw_static(self, draw: Callable[[], Any]) -> Any:
        """Clear the figure, call ``draw()`` (which draws the figure, sets the moving artists
        ``animated``, e.g. with :func:`redraw_order`, and returns them), render everything else once and
        keep it as the background."""
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

    def rendered(self, artist: Artist, pad: float = 2):
        """The pixels of ``artist`` drawn alone over the background, in its box widened by ``pad`` pixels
        on each side (its antialiased edges); to paste with :meth:`blit`'s ``regions``."""
        self._canvas.restore_region(self._background)
        self.figure.draw_artist(artist)
        return self._canvas.copy_from_bbox(artist.get_window_extent().padded(pad))

    def pasted(self, artist: Artist, key) -> Any:
        """:meth:`rendered` pixels of ``artist``, rendered once per ``key`` (what it shows) and background.

        Pasting is drawing it, without laying out and rendering its text again (text is what a redraw
        spends most on), for an artist that nothing moving passes under: a title above its axes. An
        opaque legend on top of moving lines is split in two: its frame, a patch, drawn again in the
        order of the redraw (``legend.legendPatch``), and the pixels inside the frame's edge, pasted.
        """
        cache = self.__dict__.setdefault("_pasted", {})
        if cache.get("background") is not self._background:
            cache.clear()
            cache["background"] = self._background
        if (id(artist), key) not in cache:
            if isinstance(artist, Legend):
                region = self.rendered(artist, pad=-2)  # inside the frame's edge (1 pt) and its antialiasing
                frame = artist.legendPatch
                cache[id(artist), key] = region, (frame.get_x(), frame.get_y(), frame.get_width(), frame.get_height())
            else:
                cache[id(artist), key] = self.rendered(artist), None
        region, bounds = cache[id(artist), key]
        if bounds is not None:
            artist.legendPatch.set_bounds(*bounds)  # where this legend's frame was, for the redraw to draw it
        return region

    def blit_order(self, order: list[Artist], pasted: Iterable[Artist] = ()) -> None:
        """:meth:`blit` the artists of ``order`` (from :func:`redraw_order`): an opaque legend among them, or
        an artist of ``pasted`` (a title with few texts: one per grid point, say), as :meth:`pasted` pixels."""
        pasted = [artist for artist in pasted if any(artist is a for a in order)]
        artists, regions = [], []
        for artist in order:
            if isinstance(artist, Legend) and _opaque(artist):
                artists.append(artist.legendPatch)
                regions.append(self.pasted(artist, tuple(text.get_text() for text in artist.get_texts())))
            elif any(artist is p for p in pasted):
                regions.append(self.pasted(artist, artist.get_text()))
            else:
                artists.append(artist)
        self.blit(artists, regions)

    def png(self) -> bytes:
        """The canvas as PNG bytes (what the ``Output`` shows)."""
        return encode_png(np.asarray(self._canvas.buffer_rgba()))


def encode_png(rgba: np.ndarray) -> bytes:
    """An (H, W, 4) uint8 image as a PNG: no row filters and zlib's fastest level, about twice as fast as
    PIL's encoder (the format: https://www.w3.org/TR/png-3/ ; a chunk is length, type, data, CRC-32)."""
    height, width, _ = rgba.shape
    rows = np.empty((height, 4 * width + 1), dtype=np.uint8)
    rows[:, 0] = 0  # filter type 0 (None) for every row
    rows[:, 1:] = rgba.reshape(height, -1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8 bits per channel, RGBA, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
            + chunk(b"IEND", b""))


def _opaque(legend: Legend) -> bool:
    frame = legend.get_frame()
    return legend.get_frame_on() and frame.get_alpha() in (None, 1) and frame.get_facecolor()[3] == 1


def redraw_order(moving: Iterable[Artist]) -> list[Artist]:
    """What a blitted redraw paints, in the order a full drawing paints it; each is set ``animated`` (left
    out of the background).

    That is the ``moving`` artists and, in each axes holding one, every artist a full drawing paints over
    one of them inside the axes' box (a line or patch of higher zorder, the legend, the spines): a picture
    equal to the full drawing's. An axes whose ``xaxis`` or ``yaxis`` is among ``moving`` (its limits
    change) has all its content redrawn, but the other axis and the title stay in the background unless
    they are moving themselves: text is what costs.
    """
    moving = list(moving)
    ids = {id(artist) for artist in moving}
    order: list[Artist] = []
    seen_axes = []
    for artist in moving:
        ax = artist.axes
        if ax is None:
            order.append(artist)  # a figure-level artist
            continue
        if any(ax is other for other in seen_axes):
            continue
        seen_axes.append(ax)
        titles = {id(ax.title), id(ax._left_title), id(ax._right_title)}
        limits_move = id(ax.xaxis) in ids or id(ax.yaxis) in ids
        children = [a for a in ax.get_children() if a is not ax.patch]  # an invisible one draws nothing
        started = False
        for child in sorted(children, key=lambda a: a.zorder):  # a stable sort, as Axes.draw sorts
            if id(child) in ids:
                started = True
                order.append(child)
            elif isinstance(child, Axis) or id(child) in titles:
                continue  # outside the box, and text
            elif started or limits_move:
                order.append(child)
    for artist in order:
        artist.set_animated(True)
    return order


# The per-update diagnostic drawn beside the curves, by algorithm: what the swept knobs bound.
SWEEP_DIAGNOSTIC = {"acktr": ("measured_kl", "measured KL(π_old ‖ π_new) per update"),
                    "vmpo": ("mstep_kl", "M-step KL(π_old ‖ π_θ) per update")}


def sweep_panel_data(sweep, grid: dict, live: dict | None = None, *, limits: dict | None = None, **values) -> dict:
    """The numbers of a sweep panel: :func:`rlkit.experiments.sweeps.sweep_point` at ``values``, the heatmap ``grid``
    (:func:`rlkit.experiments.sweeps.sweep_grid`, computed once), the ``live`` run's curve if one was trained and
    the axis ``limits`` (:func:`sweep_limits`; None: each drawing scales its axes to its own curves)."""
    from rlkit.experiments.sweeps import sweep_point

    data = sweep_point(sweep, **values)
    algorithm = sweep.meta.get("algorithm", "acktr")
    name, label = SWEEP_DIAGNOSTIC.get(algorithm, (sweep.diagnostics[0], sweep.diagnostics[0]))
    return {**data, "grid": grid, "live": live, "diagnostic": name, "diagnostic_label": label,
            "env": sweep.meta.get("env", ""), "algorithm": algorithm, "threshold": sweep.meta.get("threshold"),
            "limits": limits}


def padded(low: float, high: float, log: bool = False) -> tuple[float, float]:
    """``[low, high]`` widened by 5 % of its span on each side (in log10 on a log axis), as matplotlib's autoscaling."""
    if log:
        low, high = np.log10(low), np.log10(high)
    pad = 0.05 * (high - low) if high > low else 0.5
    low, high = low - pad, high + pad
    return (float(10 ** low), float(10 ** high)) if log else (float(low), float(high))


def _extent(*arrays, positive: bool = False) -> tuple[float, float]:
    values = np.concatenate([np.ravel(np.asarray(a, dtype=float)) for a in arrays])
    values = values[np.isfinite(values) & ((values > 0) if positive else True)]
    if values.size == 0:  # nothing to show: any axis will do
        return (0.1, 1.0) if positive else (0.0, 1.0)
    return float(values.min()), float(values.max())


def sweep_limits(sweep, live: dict | None = None) -> dict:
    """Axis limits that hold every point of the sweep (and the ``live`` curve): fixed while the sliders move,
    so that the panel redraws only its curves, and a move compares points on the same scale.

    ``{"env_steps": (low, high), "returns": (low, high), "diagnostic": (low, high)}``, each the data's extent
    (the threshold line and the swept values of δ or ε_α, drawn as lines, included) widened by 5 % per side.
    """
    columns = sweep.columns
    algorithm = sweep.meta.get("algorithm", "acktr")
    name = SWEEP_DIAGNOSTIC.get(algorithm, (sweep.diagnostics[0],))[0]
    steps, returns = [columns["env_steps"]], [columns["episode_return"]]
    if sweep.meta.get("threshold") is not None:
        returns.append([sweep.meta["threshold"]])
    if live is not None and len(live["env_steps"]):
        steps.append(live["env_steps"])
        returns.append(live["returns"])
    bounds = ("delta", "eps_alpha") if name in ("measured_kl", "mstep_kl") else ()  # drawn as lines (_bound)
    lines = [sweep.axes[axis] for axis in bounds if axis in sweep.axes]
    return {"env_steps": padded(*_extent(*steps)), "returns": padded(*_extent(*returns)),
            "diagnostic": padded(*_extent(columns[name], *lines, positive=True), log=True)}


def _fmt_point(point: dict) -> str:
    return ", ".join(f"{name} = {value:.3g}" for name, value in point.items())


#: "25k" env-step labels: shorter than "25000" (which run into each other on a 200,000-step axis)
_THOUSANDS = FuncFormatter(lambda value, _: f"{value / 1000:g}k" if value else "0")


def _draw_sweep(data: dict, fig: Figure) -> dict:
    """Draw the sweep panel; returns the artists that depend on the sliders (and on the live run), by name."""
    curves, diag, heat = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.2, 1.0, 1.0]})
    steps = data["env_steps"]
    moving: dict = {"seeds": [curves.plot(steps, returns, color="C0", lw=0.8, alpha=0.5)[0]
                              for returns in data["returns"]]}
    moving["mean"] = curves.plot(steps, data["mean"], color="C0", lw=2.2, label=_mean_label(data))[0]
    live = data.get("live")
    if live is not None and len(live["env_steps"]):
        moving["live"] = curves.plot(live["env_steps"], live["returns"], color="k", lw=1.5,
                                     label=f"live: {_fmt_point(live['values'])}")[0]
    if data.get("threshold") is not None:
        curves.axhline(data["threshold"], color="0.5", ls=":", lw=1)
    curves.set(xlabel="env steps", ylabel="mean return (last 10 episodes)")
    moving["title"] = curves.set_title(_sweep_title(data))
    # opaque legends (they hide what passes behind them): a redraw pastes their pixels, rendered once
    moving["legend"] = curves.legend(fontsize=7, loc="upper left", framealpha=1)
    moving["diagnostics"] = [diag.plot(steps, values, color="C3", lw=0.8, alpha=0.6)[0]
                             for values in data["diagnostics"][data["diagnostic"]]]
    diag.set_yscale("log")
    diag.set(xlabel="env steps", title=data["diagnostic_label"])
    bound = _bound(data)
    if bound is not None:
        moving["bound"] = diag.axhline(data["point"][bound], color="k", ls="--", lw=1)
        moving["bound_label"] = diag.text(0.98, data["point"][bound], _bound_label(data, bound), fontsize=7, ha="right",
                                          va="bottom", transform=diag.get_yaxis_transform())
    grid = data["grid"]
    finite = np.where(np.isfinite(grid["values"]), grid["values"], np.nan)  # a point that never reached it: blank
    cmap = colormaps["viridis"].with_extremes(bad="white")
    image = heat.imshow(finite, origin="lower", aspect="auto", cmap=cmap)
    heat.set_xticks(range(len(grid["x_values"])), [f"{v:.2g}" for v in grid["x_values"]], fontsize=7)
    heat.set_yticks(range(len(grid["y_values"])), [f"{v:.2g}" for v in grid["y_values"]], fontsize=7)
    moving["circle"] = heat.plot(*_grid_cell(data), "o", ms=14, mfc="none", mec="red", mew=2)[0]
    heat.set(xlabel=grid["x"], ylabel=grid["y"], title=HEAT_TITLES.get(grid.get("metric"), grid.get("metric", "")))
    fig.colorbar(image, ax=heat, fraction=0.05)
    limits = data.get("limits")
    for ax in (curves, diag):
        ax.xaxis.set_major_formatter(_THOUSANDS)
        if limits is not None:
            ax.set_xlim(limits["env_steps"])
    if limits is not None:
        curves.set_ylim(limits["returns"])
        diag.set_ylim(limits["diagnostic"])
    fig.subplots_adjust(left=0.05, right=0.97, bottom=0.14, top=0.88, wspace=0.28)
    return moving


def _mean_label(data: dict) -> str:
    return f"sweep: mean of {len(data['seeds'])} seeds"


def _sweep_title(data: dict) -> str:
    return f"{data['algorithm']} on {data['env']}: {_fmt_point(data['point'])}"


def _bound(data: dict) -> str | None:
    """The swept knob that bounds the diagnostic (δ bounds ACKTR's KL, ε_α V-MPO's M-step KL), drawn as a line."""
    if data["diagnostic"] not in ("measured_kl", "mstep_kl"):
        return None
    return next((name for name in ("delta", "eps_alpha") if name in data["point"]), None)


def _bound_label(data: dict, name: str) -> str:
    return f"{name} = {data['point'][name]:.3g}"


# The heatmap's title by sweep_grid metric
HEAT_TITLES = {"final_return": "final return, mean over seeds",
               "steps_to_threshold": "env steps to threshold, median over seeds\n(blank: most seeds never reached it)"}


def _grid_cell(data: dict) -> tuple[int, int]:
    """The heatmap cell (column, row) of the chosen point."""
    grid = data["grid"]
    j = int(np.flatnonzero(np.isclose(grid["x_values"], data["point"][grid["x"]]))[0])
    i = int(np.flatnonzero(np.isclose(grid["y_values"], data["point"][grid["y"]]))[0])
    return j, i


def draw_sweep(data: dict, fig: Figure | None = None) -> Figure:
    """Draw :func:`sweep_panel_data`: the learning curves at the chosen point (each seed thin, the mean
    thick, the live run black), the chosen diagnostic over training, and the final return over the
    whole grid with the chosen point circled. The axes span ``data["limits"]`` when given."""
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(14, 4))
    _draw_sweep(data, fig)
    return fig


def _structure(data: dict) -> tuple:
    """What decides which artists a sweep drawing has: a change redraws the figure from scratch."""
    live = data.get("live")
    return len(data["seeds"]), live is not None and len(live["env_steps"]) > 0, _bound(data), data["limits"]


def _artists(moving: dict) -> list:
    return [a for value in moving.values() for a in (value if isinstance(value, list) else [value])
            if isinstance(a, Artist)]


class SweepPanel(BlittedPanel):
    """A :class:`BlittedPanel` over a precomputed sweep, with a **Train live** button.

    The sliders select the nearest swept point (drawn at once from the table, on axes that hold the whole
    sweep: :func:`sweep_limits`). The button trains the sweep's algorithm on its env with the sliders' exact
    values (seed 0, ``train_steps`` env steps, the classic preset otherwise) into a fresh temporary
    directory, drawing the curve as it learns.
    """

    def __init__(self, sweep, controls, *, train_steps: int | None = None, heat: str = "final_return"):
        from rlkit.experiments.sweeps import sweep_grid

        self.sweep, self.live = sweep, None
        self.train_steps = int(train_steps or sweep.meta.get("steps", 100_000))
        self.limits = sweep_limits(sweep)
        self._moving: dict | None = None
        grid = sweep_grid(sweep, heat, sweep.meta.get("threshold") if heat == "steps_to_threshold" else None)
        super().__init__(lambda **values: sweep_panel_data(sweep, grid, self.live, limits=self.limits, **values),
                         draw_sweep, controls, figsize=(14, 4))
        self.button = widgets.Button(description="Train live", tooltip="train with these values, seed 0")
        self.status = widgets.Label(value=f"Train live: {self.train_steps:,} env steps, seed 0")
        self.button.on_click(lambda _: self.train_live())
        self.children = (widgets.HBox(list(self.controls.values()) + [self.button, self.status]), self.output)

    def update(self, change=None) -> None:
        """Recompute the data; redraw the moving artists (everything, when the artists themselves change:
        another number of seeds, a live curve appearing or leaving the axes)."""
        start = time.perf_counter()
        live = self.live
        if live is not None and len(live["env_steps"]):
            limits = sweep_limits(self.sweep, live)
            if any(limits[k][0] < self.limits[k][0] or limits[k][1] > self.limits[k][1] for k in limits):
                self.limits = {k: (min(limits[k][0], self.limits[k][0]), max(limits[k][1], self.limits[k][1]))
                               for k in limits}
        self.data = data = self.compute(**self.values)
        if self._moving is None or self._moving["structure"] != _structure(data):
            def draw() -> dict:
                moving = _draw_sweep(data, self.figure)
                self._order = redraw_order(_artists(moving))  # animated: left out of the background
                return moving

            self._moving = self.draw_static(draw)
            self._moving["structure"] = _structure(data)
        else:
            self._refresh(data)
        self.blit_order(self._order, pasted=[self._moving["title"]])  # one title per swept point
        self.seconds = time.perf_counter() - start

    def _refresh(self, data: dict) -> None:
        moving, steps = self._moving, data["env_steps"]
        for line, returns in zip(moving["seeds"], data["returns"]):
            line.set_data(steps, returns)
        moving["mean"].set_data(steps, data["mean"])
        live = data.get("live")
        if "live" in moving:
            moving["live"].set_data(live["env_steps"], live["returns"])
            moving["live"].set_label(f"live: {_fmt_point(live['values'])}")
        moving["title"].set_text(_sweep_title(data))
        for line, values in zip(moving["diagnostics"], data["diagnostics"][data["diagnostic"]]):
            line.set_data(steps, values)
        bound = _bound(data)
        if bound is not None:
            moving["bound"].set_ydata([data["point"][bound]] * 2)
            moving["bound_label"].set_y(data["point"][bound])
            moving["bound_label"].set_text(_bound_label(data, bound))
        texts = moving["legend"].get_texts()
        texts[0].set_text(_mean_label(data))
        if "live" in moving:
            texts[1].set_text(moving["live"].get_label())
        moving["circle"].set_data(*([v] for v in _grid_cell(data)))

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


def sweep_panel(sweep="acktr-delta-eta-max", *, train_steps: int | None = None, heat: str = "final_return",
                **values) -> SweepPanel:
    """Sliders over a precomputed sweep (``rlkit.experiments.sweeps``): one per axis, named by the kit's names
    (``delta`` and ``eta_max`` for ACKTR, ``eps_eta`` and ``eps_alpha`` for V-MPO), log sliders for
    δ, ε_η, ε_α stepping on the swept half-decades, a linear slider for η_max; start values ``values``
    (default: the middle of each axis). ``sweep``: a name or a :class:`rlkit.experiments.sweeps.Sweep`.
    ``heat``: the heatmap's metric, ``"final_return"`` or ``"steps_to_threshold"`` (at the sweep's threshold;
    the one to pick where every point ends at the same return)."""
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
    return SweepPanel(sweep, controls, train_steps=train_steps, heat=heat)
