"""How long does a slider move take to redraw each panel of the notebooks? Measured headlessly.

Every slider panel of the kit is built as its notebook builds it (same data, same start values):

    damping            notebook 04   rlkit.lessons.nb04_kfac_in_practice.panels.damping_panel
    trust_region       notebook 05   rlkit.lessons.nb05_trust_region.panels.trust_region_panel
    acktr_sweep        notebook 07   rlkit.lessons.panels.sweep_panel("acktr-delta-eta-max")
    eps_eta            notebook 08   rlkit.lessons.nb08_vmpo_em.panels.eps_eta_panel
    eps_alpha          notebook 08   rlkit.lessons.nb08_vmpo_em.panels.eps_alpha_panel
    vmpo_sweep         notebook 09   rlkit.lessons.panels.sweep_panel("vmpo-eps-eta-eps-alpha")

Then each control is set, one after the other, to ``--values`` values spread over its range (log-spaced
on a log slider; every option of a toggle), as a student moving it would; each set recomputes the
panel's data and redraws its figure into PNG, and ``panel.seconds`` times that (compute + draw + PNG,
what the kernel spends before the browser can show the new picture). Printed per panel: the median and
the worst redraw against the 0.3 s target, the median and the largest CPU time of a redraw (the wall time
less what other processes took from it: on a shared machine the wall time grows with the load average,
printed before and after), the time to build the panel (its first drawing) and the control change that
took longest.

    python benchmarks/panels.py                      # every panel, 5 values per slider
    python benchmarks/panels.py --panels trust_region damping --values 9
    python benchmarks/panels.py --quick              # the trust-region panel, 2 values per slider

One torch thread, as the notebooks run. This is a benchmark (a measurement that prints), not a test;
the committed report is data/benchmarks/panels.txt.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

TARGET_SECONDS = 0.3


# ------------------------------------------------------------------ the panels, as their notebooks build them


def damping():
    """Notebook 04: the factors of the K-FAC-trained network after 100 steps, the damping sweep over 49 λ."""
    from rlkit.lessons.nb03_kronecker_factors.demos import exact_kfac, seeded_mlp, teacher_regression, train
    from rlkit.lessons.nb04_kfac_in_practice.demos import damping_sweep
    from rlkit.lessons.nb04_kfac_in_practice.panels import damping_panel

    x, y, _ = teacher_regression(n=4096, dim=8, outputs=4, condition=30.0, offset=3.0, seed=0)
    settings = dict(output="gaussian", damping=1e-3, stats_decay=0.95, inverse_every=1)
    net = seeded_mlp([8, 32, 32, 4], seed=0)
    train(net, x, y, "kfac", 0.1, 30, seed=100, **settings)
    train(net, x, y, "kfac", 0.1, 70, seed=101, **settings)
    dampings = np.logspace(-6, 6, 49)
    sweep = damping_sweep(net, x[:512], y[:512], dampings, output="gaussian")
    factors = exact_kfac(net, x[:512], "gaussian")
    return lambda: damping_panel(factors, sweep, dampings, damping=1e-3)


def trust_region():
    """Notebook 05: the fixed batch of the contextual bandit."""
    from rlkit.lessons.nb05_trust_region.demos import fixed_batch
    from rlkit.lessons.nb05_trust_region.panels import trust_region_panel

    batch = fixed_batch()
    return lambda: trust_region_panel(batch, delta=0.01, eta_max=0.25)


def acktr_sweep():
    """Notebook 07: the committed ACKTR sweep over δ and η_max (data/sweeps/)."""
    from rlkit.lessons.panels import sweep_panel

    return lambda: sweep_panel("acktr-delta-eta-max", delta=1e-3, eta_max=0.25)


def eps_eta():
    """Notebook 08: the CartPole batch of an untrained actor-critic."""
    from rlkit.lessons.nb08_vmpo_em.demos import cartpole_batch
    from rlkit.lessons.nb08_vmpo_em.panels import eps_eta_panel

    batch = cartpole_batch()
    return lambda: eps_eta_panel(batch, eps_eta=0.1)


def eps_alpha():
    """Notebook 08: the M-step fits of the bandit batch over the ε_α grid."""
    from rlkit.lessons.nb08_vmpo_em.demos import bandit_batch, m_step_sweep
    from rlkit.lessons.nb08_vmpo_em.panels import eps_alpha_panel

    sweep = m_step_sweep(bandit_batch())
    return lambda: eps_alpha_panel(sweep, eps_alpha=0.01)


def vmpo_sweep():
    """Notebook 09: the committed V-MPO sweep over ε_η and ε_α (data/sweeps/)."""
    from rlkit.experiments.sweeps import load_sweep
    from rlkit.lessons.panels import sweep_panel

    sweep = load_sweep("vmpo-eps-eta-eps-alpha")
    return lambda: sweep_panel(sweep, eps_eta=0.1, eps_alpha=0.01)


PANELS = {"damping": (damping, "04"), "trust_region": (trust_region, "05"), "acktr_sweep": (acktr_sweep, "07"),
          "eps_eta": (eps_eta, "08"), "eps_alpha": (eps_alpha, "08"), "vmpo_sweep": (vmpo_sweep, "09")}


# ------------------------------------------------------------------ moving the controls


def control_values(control, count: int) -> list:
    """``count`` values over the control's range (log-spaced on a log slider), or every option of a toggle."""
    if isinstance(control, widgets.FloatLogSlider):
        return [float(control.base ** e) for e in np.linspace(control.min, control.max, count)]
    if isinstance(control, (widgets.FloatSlider, widgets.IntSlider)):
        return [type(control.value)(v) for v in np.linspace(control.min, control.max, count)]
    options = [o[1] if isinstance(o, tuple) else o for o in control.options]
    return options[1:] + options[:1]  # every other option, then back to the first


def measure(build, count: int) -> dict:
    """Build the panel (timed), then set every control to each of its values; the redraw time of each change."""
    start = time.perf_counter()
    panel = build()
    built = time.perf_counter() - start
    seconds, cpu, moves = [], [], []
    for name, control in panel.controls.items():
        for value in control_values(control, count):
            before = control.value
            cpu_start = time.process_time()
            control.value = value
            if control.value != before:  # a value the control takes (a slider may snap to its step)
                seconds.append(panel.seconds)
                cpu.append(time.process_time() - cpu_start)
                moves.append(f"{name} = {control.value:.3g}" if isinstance(control.value, float)
                             else f"{name} = {control.value}")
    return {"build": built, "seconds": seconds, "cpu": cpu, "controls": list(panel.controls), "moves": moves}


def header(argv: list[str]) -> list[str]:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    today = datetime.date.today().isoformat()
    return [f"$ python benchmarks/panels.py{''.join(' ' + a for a in argv)}   # {os.cpu_count()}-core CPU, {today},"
            f" load average {load}",
            f"python {platform.python_version()}  torch {torch.__version__}  matplotlib {matplotlib.__version__}"
            f"  ipywidgets {widgets.__version__}  torch threads {torch.get_num_threads()}",
            "redraw = panel.seconds after one control change: the panel's computation, its drawing and the PNG"
            " (wall time);",
            "cpu = the process's CPU time for the same change: what the redraw costs when the machine is not shared"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--panels", nargs="+", choices=list(PANELS), default=list(PANELS))
    parser.add_argument("--values", type=int, default=5, help="values per slider (default 5)")
    parser.add_argument("--quick", action="store_true", help="the trust-region panel, 2 values per slider")
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.panels, args.values = ["trust_region"], 2
    torch.set_num_threads(1)
    lines = header(sys.argv[1:] if argv is None else argv)
    for line in lines:
        print(line, flush=True)
    rows = [f"{'panel':13s} {'notebook':8s} {'controls':28s} {'redraws':>7s} {'median s':>9s} {'worst s':>8s}"
            f"  {'target s':>8s}  {'median':6s} {'worst':6s} {'cpu med s':>9s} {'cpu max s':>9s} {'build s':>8s}"
            f"  worst at"]
    print(rows[0], flush=True)
    for name in args.panels:
        setup, notebook = PANELS[name]
        result = measure(setup(), args.values)
        median, worst = statistics.median(result["seconds"]), max(result["seconds"])
        worst_at = result["moves"][result["seconds"].index(worst)]
        verdict = lambda s: "pass" if s < TARGET_SECONDS else "miss"  # noqa: E731
        row = (f"{name:13s} {notebook:8s} {', '.join(result['controls']):28s} {len(result['seconds']):7d}"
               f" {median:9.3f} {worst:8.3f}  {TARGET_SECONDS:8.1f}  {verdict(median):6s} {verdict(worst):6s}"
               f" {statistics.median(result['cpu']):9.3f} {max(result['cpu']):9.3f} {result['build']:8.2f}  {worst_at}")
        rows.append(row)
        print(row, flush=True)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    rows.append(f"load average at the end: {load}")
    print(rows[-1], flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write("\n".join(lines + rows) + "\n")


if __name__ == "__main__":
    main()
