"""rlkit.lessons.nb09_vmpo_runs.demos: the numbers behind notebook 09, checked against hand computations on
synthetic run directories and sweeps, and on short real V-MPO runs (categorical and Gaussian)."""

import math

import numpy as np
import pytest
from matplotlib.figure import Figure

from rlkit.lessons.nb09_vmpo_runs import demos as vr
from rlkit.agents.vmpo import VMPOConfig
from rlkit.experiments.runs import write_csv
from support.vmpo_runs import categorical_updates, make_run, make_sweep


@pytest.fixture
def run(tmp_path):
    returns = [10, 20, 30, 480, 490, 500, 470, 500, 500, 500, 500, 500]
    episodes = [(1000 * (i + 1), r) for i, r in enumerate(returns)]
    return make_run(tmp_path / "run", episodes, categorical_updates(), agent={"eps_alpha": 0.005})


def test_episode_numbers_by_hand(run):
    steps, curve = vr.learning_curve(run, window=3)
    assert curve[0] == 10 and curve[1] == 15 and curve[3] == pytest.approx((20 + 30 + 480) / 3)
    # first full window of 3 with mean >= 475: episodes 4, 5, 6 (480, 490, 500), ending at 6000 steps
    assert vr.steps_to_threshold(run, 475, window=3) == 6000
    assert vr.steps_to_threshold(run, 501, window=3) is None
    # window 10: the last full window, episodes 3..12, has mean 447; none reaches 475
    assert vr.steps_to_threshold(run, 475) is None
    assert vr.final_return(run) == pytest.approx((30 + 480 + 490 + 500 + 470 + 500 * 5) / 10)
    assert vr.final_return(run, window=2) == 500


def test_budgets_follow_the_policy_kind(run, tmp_path):
    assert vr.run_budgets(run) == {"eps_eta": 0.1, "target_period": 4.0, "eps_alpha": 0.005}
    gaussian = [{**{k: v for k, v in row.items() if k not in ("alpha", "mstep_kl")}, "alpha_mu": 1.0,
                 "alpha_sigma": 2.0, "mstep_kl_mean": 0.01, "mstep_kl_cov": 1e-4} for row in categorical_updates()]
    g = make_run(tmp_path / "g", [(100, -1000.0)], gaussian, env="Pendulum-v1")
    assert vr.run_budgets(g) == {"eps_eta": 0.1, "target_period": 4.0, "eps_alpha_mu": 0.01, "eps_alpha_sigma": 1e-4}
    s = vr.vmpo_run_summary(g)
    assert [p[0] for p in s["kl_parts"]] == ["mstep_kl_mean", "mstep_kl_cov"]
    assert s["mstep_kl_mean_ratio"] == pytest.approx(1.0) and s["mstep_kl_cov_ratio"] == pytest.approx(1.0)
    assert s["alpha_mu_last"] == 1.0 and s["alpha_sigma_last"] == 2.0
    assert s["threshold"] == -200.0 and s["steps_to_threshold"] is None


def test_summary_by_hand(run):
    s = vr.vmpo_run_summary(run, threshold=475)
    assert s["updates"] == 8 and s["env_steps"] == 800 and s["seed"] == 3
    assert s["temperature_first"] == 1.0 and s["temperature_last"] == 8.0
    # second half: updates 5..8, estep_kl 0.25, 0.30, 0.35, 0.40
    assert s["estep_kl_mean"] == pytest.approx(0.325) and s["estep_ratio"] == pytest.approx(3.25)
    # saw-tooth 0, .004, .008, .012 twice: mean .006, ε_α = .005
    assert s["mstep_kl_avg"] == pytest.approx(0.006) and s["mstep_kl_ratio"] == pytest.approx(1.2)
    assert s["alpha_first"] == 5.0 and s["alpha_last"] == pytest.approx(1.5)
    assert s["uniform_weight"] == pytest.approx(1 / 128) and s["max_weight_last"] == pytest.approx(0.02)
    assert s["entropy_first"] == pytest.approx(0.7) and s["entropy_last"] == pytest.approx(0.63)


def test_rolling_mean_against_a_loop():
    x = np.random.default_rng(0).normal(size=23)
    expected = [x[max(0, i - 4):i + 1].mean() for i in range(len(x))]
    np.testing.assert_allclose(vr.rolling_mean(x, 5), expected, rtol=1e-12)
    # over one full target period the saw-tooth averages to its mean
    assert vr.rolling_mean([0, 1, 2, 3] * 3, 4)[-1] == pytest.approx(1.5)


@pytest.fixture
def sweep():
    reach = {(0.1, 0.001): [1000, 2000, 2000], (0.1, 0.01): [1000, 1000, 3000],
             (1.0, 0.001): [3000, None, None], (1.0, 0.01): [2000, 3000, 3000]}
    final = {(0.1, 0.001): 500.0, (0.1, 0.01): 490.0, (1.0, 0.001): 480.0, (1.0, 0.01): 500.0}
    mstep = {(0.1, 0.001): 0.002, (0.1, 0.01): 0.005, (1.0, 0.001): 0.001, (1.0, 0.01): 0.02}
    return make_sweep(reach, final, mstep)


def test_sweep_table_by_hand(sweep):
    rows = {(r["eps_eta"], r["eps_alpha"]): r for r in vr.sweep_table(sweep)}
    assert set(rows) == {(0.1, 0.001), (0.1, 0.01), (1.0, 0.001), (1.0, 0.01)}
    assert rows[(0.1, 0.001)]["steps_to_threshold"] == 2000  # median of 1000, 2000, 2000
    assert rows[(0.1, 0.01)]["steps_to_threshold"] == 1000
    assert math.isinf(rows[(1.0, 0.001)]["steps_to_threshold"])  # two seeds of three never reach
    # final return: mean over seeds of the last point (the seeds that never reach end at 0)
    assert rows[(1.0, 0.001)]["final_return"] == pytest.approx(160.0)
    assert rows[(1.0, 0.01)]["mstep_ratio"] == pytest.approx(2.0)
    assert rows[(0.1, 0.001)]["mstep_ratio"] == pytest.approx(2.0)
    assert rows[(1.0, 0.01)]["estep_ratio"] == pytest.approx(1.0)


def test_axis_summary_by_hand(sweep):
    by_eta = {r["eps_eta"]: r for r in vr.axis_summary(sweep, "eps_eta")}
    # ε_η = 0.1: runs reach at 1000, 2000, 2000 (ε_α 0.001) and 1000, 1000, 3000 (ε_α 0.01)
    assert by_eta[0.1] == {"eps_eta": 0.1, "runs": 6, "reached": 6, "median_steps": 1500.0, "fastest": 1000,
                           "slowest": 3000, "final_return": pytest.approx(495.0)}
    # ε_η = 1: 3000, never, never, 2000, 3000, 3000 → median of (2000, 3000, 3000, 3000, inf, inf) = 3000
    assert by_eta[1.0]["reached"] == 4 and by_eta[1.0]["median_steps"] == 3000
    assert by_eta[1.0]["final_return"] == pytest.approx((480 + 0 + 0 + 500 * 3) / 6)
    by_alpha = {r["eps_alpha"]: r for r in vr.axis_summary(sweep, "eps_alpha")}
    assert by_alpha[0.001]["runs"] == 6 and by_alpha[0.001]["reached"] == 4


def test_point_steps_per_seed(sweep):
    steps = vr.point_steps(sweep)
    assert steps[(0.1, 0.001)] == [1000, 2000, 2000]
    assert steps[(1.0, 0.001)][0] == 3000 and all(math.isinf(s) for s in steps[(1.0, 0.001)][1:])


def test_sweep_heatmaps_draw(sweep):
    fig = vr.draw_sweep_heatmaps(sweep, fig=Figure(figsize=(12, 4)))
    heatmaps = [ax for ax in fig.axes if ax.images]
    assert len(heatmaps) == 3
    # the steps panel shows thousands with the seeds that reached; the censored point is NaN, hatched, "> budget"
    steps = heatmaps[0].images[0].get_array()
    assert steps[0, 0] == pytest.approx(2.0)
    assert np.ma.is_masked(steps[0, 1]) or np.isnan(steps[0, 1])
    texts = [t.get_text() for t in heatmaps[0].texts]
    assert "2.0k\n3/3" in texts and "> 3k\n1/3" in texts
    assert any(patch.get_hatch() for patch in heatmaps[0].patches)
    assert heatmaps[2].images[0].get_array()[1, 1] == pytest.approx(2.0)  # (ε_η 1, ε_α 0.01): 0.02 / 0.01
    assert "2.00" in [t.get_text() for t in heatmaps[2].texts]


def test_popart_figure_draws_the_loop_history():
    history = [{"env_steps": 256 * (i + 1), "return": 20.0 * i, "popart_mu": 5.0 + i, "popart_sigma": 1.0 + 0.5 * i}
               for i in range(5)]
    fig = vr.draw_popart(history, fig=Figure(figsize=(10, 3)))
    assert len(fig.axes) == 2
    assert list(fig.axes[1].get_lines()[0].get_ydata()) == [5.0, 6.0, 7.0, 8.0, 9.0]


@pytest.mark.parametrize("target_period, learner_steps, cycle", [(4, None, 4), (10, 1, 10), (10, 4, 5), (8, 4, 2),
                                                                 (3, 4, 3)])
def test_kl_cycle_updates_is_when_the_refresh_pattern_repeats(tmp_path, target_period, learner_steps, cycle):
    """Refreshes at learner steps T, 2T, ...; update u holds learner steps (u−1)·L+1 … u·L: the pattern of
    refreshes per update repeats after lcm(T, L) learner steps (runs without learner_steps: L = 1)."""
    agent = {"target_period": target_period} | ({} if learner_steps is None else {"learner_steps": learner_steps})
    run = make_run(tmp_path / "r", [(100, 10.0)], categorical_updates(), agent=agent)
    assert vr.kl_cycle_updates(run) == cycle
    L = learner_steps or 1
    refreshed = [any(step % target_period == 0 for step in range(u * L + 1, (u + 1) * L + 1)) for u in range(60)]
    assert refreshed[:cycle] == refreshed[cycle:2 * cycle] and refreshed[:30] == refreshed[cycle:30 + cycle]


def test_benchmark_numbers_from_the_committed_csv():
    """benchmark_steps against the committed CSV read with the csv module and statistics.median."""
    import csv
    import statistics

    from rlkit.experiments.data import data_dir

    with open(data_dir() / "benchmarks" / "sample_efficiency_vmpo.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    b = vr.benchmark_steps()
    assert set(b) == {(r["env"], r["algorithm"]) for r in rows}
    for (env, algorithm), entry in b.items():
        mine = sorted((r for r in rows if (r["env"], r["algorithm"]) == (env, algorithm)), key=lambda r: int(r["seed"]))
        steps = [float(r["env_steps_to_threshold"]) if r["status"] == "reached" else math.inf for r in mine]
        assert entry["seeds"] == [int(r["seed"]) for r in mine] and entry["steps"] == steps
        assert entry["median"] == statistics.median(steps)
        assert entry["reached"] == sum(r["status"] == "reached" for r in mine)
        assert entry["threshold"] == float(mine[0]["threshold"])
    assert b[("Pendulum-v1", "a2c")]["reached"] == 0 and math.isinf(b[("Pendulum-v1", "a2c")]["median"])


def test_benchmark_numbers_keep_an_agent_at_another_preset_apart():
    """In the merged report with the peers, ACKTR at classic-checked is its own entry, not more seeds of ACKTR."""
    import csv

    from rlkit.experiments.data import data_dir

    with open(data_dir() / "benchmarks" / "sample_efficiency_with_peers.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["env"] == "CartPole-v1" and r["algorithm"] == "acktr"]
    b = vr.benchmark_steps(name="sample_efficiency_with_peers")
    for key, preset in (("acktr", "classic"), ("acktr@classic-checked", "classic-checked")):
        mine = sorted((r for r in rows if r["preset"] == preset), key=lambda r: int(r["seed"]))
        assert b[("CartPole-v1", key)]["steps"] == [float(r["env_steps_to_threshold"]) for r in mine]
    assert b[("CartPole-v1", "sb3-ppo")]["reached"] == 5


def test_reproduction_reads_the_four_files(tmp_path):
    folder = tmp_path / "reproductions" / "x-laptop"
    folder.mkdir(parents=True)
    write_csv(folder / "rows.csv", ["env", "variant"], [{"env": "CartPole-v1", "variant": "vmpo"}])
    write_csv(folder / "runs.csv", ["run"], [{"run": "CartPole-v1/vmpo/s0"}, {"run": "CartPole-v1/vmpo/s1"}])
    (folder / "report.md").write_text("# title\n", encoding="utf-8")
    (folder / "learning_curves.png").write_bytes(b"png")
    r = vr.reproduction("x-laptop", data_dir=tmp_path)
    assert r["rows"] == [{"env": "CartPole-v1", "variant": "vmpo"}] and len(r["runs"]) == 2
    assert r["markdown"] == "# title\n" and r["figure"] == folder / "learning_curves.png"


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    """Two short real V-MPO runs: CartPole-v1 (categorical) and Pendulum-v1 (Gaussian)."""
    import torch

    from rlkit.experiments.train import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    try:
        for env in ("CartPole-v1", "Pendulum-v1"):
            train("vmpo", env, steps=3000, seed=0, run_dir=root / env, progress=False)
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.mark.parametrize("env, parts", [("CartPole-v1", ["mstep_kl"]),
                                       ("Pendulum-v1", ["mstep_kl_mean", "mstep_kl_cov"])])
def test_real_run_summary_and_figure(real_runs, env, parts):
    run_dir = real_runs / env
    s = vr.vmpo_run_summary(run_dir)
    assert [p[0] for p in s["kl_parts"]] == parts
    u = vr.read_updates(run_dir)
    assert s["updates"] == len(u["update"]) and s["env_steps"] >= 3000
    # the paper's initial η = 1, seen by the first update's last learner step, after learner_steps − 1 Adam
    # steps on the duals: each moves raw η by about dual_lr, and η = softplus(raw) by less (slope below 1)
    config = VMPOConfig()
    assert abs(s["temperature_first"] - 1.0) <= (config.learner_steps - 1) * config.dual_lr + 1e-6
    # k = the top half of the valid steps of a 16 × 16 batch (reset steps are not valid)
    assert 1 / s["uniform_weight"] == u["num_selected"][-1] and 100 <= u["num_selected"][-1] <= 128
    assert s["max_weight_last"] >= s["uniform_weight"]
    for kl, eps, _ in s["kl_parts"]:
        assert s[f"{kl}_ratio"] == pytest.approx(np.mean(u[kl]) / s[eps])
    fig = vr.draw_vmpo_run(run_dir, fig=Figure(figsize=(12, 6)))
    assert len(fig.axes) == 6
    assert len(fig.axes[4].get_lines()) == 3 * len(parts)  # per part: per update, rolling mean, budget
