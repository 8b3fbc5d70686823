"""Smoke tests of the benchmark scripts: each --quick mode runs and writes its CSVs with the right columns.

The figures the benchmarks measure (sample efficiency, timesteps per second, KL ratios) are printed by
the scripts side by side, never asserted here (docs/design.md, Testing). What is asserted beyond the smoke
runs is a script's own arithmetic where theory makes it exact: kl_overshoot.py's chain of curvatures
on linear Gaussian policies, against the dense Fisher of rlkit.fisher.
"""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"


def run_script(name: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def read(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames), rows


def test_sample_efficiency_quick_writes_its_csv(tmp_path):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import sample_efficiency as se
    finally:
        sys.path.remove(str(BENCHMARKS))
    out = tmp_path / "sample_efficiency.csv"
    stdout = run_script("sample_efficiency.py", "--quick", "--workers", "1", "--runs-root", str(tmp_path / "runs"),
                        "--out", str(out))
    header, rows = read(out)
    assert header == list(se.CSV_COLUMNS)
    assert sorted((r["env"], r["algorithm"], r["seed"]) for r in rows) == sorted(
        ("CartPole-v1", a, "0") for a in se.ALGORITHMS)
    assert {r["status"] for r in rows} <= {"reached", "censored"}
    assert (tmp_path / "sample_efficiency.txt").read_text().startswith("$ python benchmarks/sample_efficiency.py")
    assert "A2C/ACKTR" in stdout and "targets" in stdout
    for r in rows:  # KL/δ: the run's median measured KL over its δ, for the agents with a δ (not A2C)
        config = json.loads((REPO / r["run_dir"] / "config.json").read_text())
        if r["algorithm"] == "a2c":
            assert r["kl_over_delta"] == "nan"
            continue
        kl = [float(u["measured_kl"]) for u in read(REPO / r["run_dir"] / "updates.csv")[1]]
        assert float(r["kl_over_delta"]) == pytest.approx(np.median(kl) / config["agent"]["delta"], abs=1e-3)
    assert "measured KL per update / delta" in stdout

    # run again: every run is found finished and skipped, the CSV is the same
    stdout = run_script("sample_efficiency.py", "--quick", "--workers", "1", "--runs-root", str(tmp_path / "runs"),
                        "--out", str(out))
    assert stdout.count(": skipped,") == len(se.ALGORITHMS)
    assert read(out) == (header, rows)


def test_throughput_quick_writes_its_csvs(tmp_path):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import throughput as tp
    finally:
        sys.path.remove(str(BENCHMARKS))
    out = tmp_path / "throughput.csv"
    stdout = run_script("throughput.py", "--quick", "--out", str(out))
    header, rows = read(out)
    assert header == list(tp.SUMMARY_COLUMNS)
    expected = {(a, c.domain, str(c.batch)) for c in tp.QUICK_CASES for a in tp.ALGORITHMS}
    assert {(r["algorithm"], r["domain"], r["batch_size"]) for r in rows} == expected
    assert all(float(r["timesteps_per_second"]) > 0 for r in rows)
    runs_header, runs = read(tmp_path / "throughput_runs.csv")
    assert runs_header == list(tp.RUN_COLUMNS) and len(runs) == len(expected)
    assert (tmp_path / "throughput.txt").read_text().startswith("$ python benchmarks/throughput.py")
    assert "A2C/ACKTR" in stdout


def test_the_stopper_stops_at_a_window_that_crosses_inside_one_update(tmp_path):
    """A window of 10 episodes reaching the threshold in the middle of an update stops the run, even when the
    last 10 episodes of that update are below it (the report's rule: rlkit.experiments.report.threshold_crossing)."""
    from types import SimpleNamespace

    from rlkit.experiments.report import threshold_crossing
    from rlkit.experiments.runs import EPISODES_FILE, write_csv

    sys.path.insert(0, str(BENCHMARKS))
    try:
        import sample_efficiency as se
    finally:
        sys.path.remove(str(BENCHMARKS))
    write_csv(tmp_path / EPISODES_FILE, ["env_steps", "episode_return"],
              [{"env_steps": i, "episode_return": 0.0} for i in range(12)])
    stopper = se._Stopper(tmp_path, threshold=100.0)
    stopper(SimpleNamespace(episodes=[]))  # first call: the CSV's 12 episodes, mean 0
    update = [100.0] * 10 + [0.0] * 5  # the window of the first ten crosses; the update's last ten do not
    assert threshold_crossing([0.0] * 12 + update, 100.0, 10) is not None
    assert sum(update[-10:]) / 10 < 100.0
    with pytest.raises(se._ThresholdReached):
        stopper(SimpleNamespace(episodes=[SimpleNamespace(episode_return=r) for r in update]))
    quiet = se._Stopper(tmp_path, threshold=100.0)
    quiet(SimpleNamespace(episodes=[]))
    quiet(SimpleNamespace(episodes=[SimpleNamespace(episode_return=r) for r in [100.0] * 9 + [0.0] * 5]))  # no window


def test_kfac_overhead_quick_times_every_side():
    stdout = run_script("kfac_overhead.py", "--quick", "--stats-subsample", "4")
    header = next(line for line in stdout.splitlines() if line.startswith("workload"))
    assert header.split()[1:] == ["first-order", "K-FAC", "ratio", "K-FAC", "1/4", "ratio", "target"]
    for name in ("MLP 64-64 tanh (MuJoCo)", "Nature CNN (Atari) b=4"):
        assert sum(line.startswith(name) for line in stdout.splitlines()) == 2  # the totals and the pieces


def test_acktr_variant_quick_prints_paired_runs(tmp_path):
    stdout = run_script("acktr_variant.py", "--quick", "--set", "stats_subsample=4", "--runs-root", str(tmp_path),
                        "--out", str(tmp_path / "variant.csv"))
    lines = stdout.splitlines()
    assert lines[0].startswith("ACKTR with stats_subsample=4 vs its presets")
    committed = next(r for r in read(REPO / "data" / "benchmarks" / "sample_efficiency.csv")[1]
                     if (r["env"], r["algorithm"], r["seed"]) == ("CartPole-v1", "acktr", "0"))
    row = next(line for line in lines if line.startswith("CartPole-v1"))
    # 4k steps: not reached; beside it the committed run of the preset, same seed
    assert row.split()[1:6] == ["0", ">budget", f"{int(committed['env_steps_to_threshold']):,}", ">budget",
                                f"{int(committed['episodes_to_threshold']):,}"]
    assert (tmp_path / "stats_subsample=4" / "CartPole-v1" / "acktr-s0" / "config.json").exists()
    config = json.loads((tmp_path / "stats_subsample=4" / "CartPole-v1" / "acktr-s0" / "config.json").read_text())
    assert config["agent"]["stats_subsample"] == 4  # the override reached the agent, converted to int
    # the CSV: the same pair, and the run's KL per update over δ from its own updates.csv
    from rlkit.experiments.runs import read_updates

    (written,) = read(tmp_path / "variant.csv")[1]
    assert (written["env"], written["seed"], written["env_steps_variant"], written["env_steps_preset"]) == (
        "CartPole-v1", "0", "", str(int(committed["env_steps_to_threshold"])))
    kl = read_updates(tmp_path / "stats_subsample=4" / "CartPole-v1" / "acktr-s0")["measured_kl"]
    assert float(written["kl_over_delta_variant"]) == pytest.approx(float(np.median(kl)) / config["agent"]["delta"],
                                                                   abs=1e-4)


@pytest.mark.parametrize("bad, says", [("stats_decay", "KEY=VALUE"), ("stats_decay=1.5", "stats_decay must be in [0, 1)"),
                                       ("no_such_field=1", "unknown ACKTRConfig parameter")])
def test_acktr_variant_refuses_a_bad_override_before_training(bad, says, tmp_path):
    result = subprocess.run([sys.executable, str(BENCHMARKS / "acktr_variant.py"), "--set", bad,
                             "--runs-root", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and says in result.stderr
    assert not any(tmp_path.iterdir())


def test_kl_overshoot_quick_prints_the_chain():
    stdout = run_script("kl_overshoot.py", "--quick", "--stats-decay", "0.99", "0.0")
    for decay in ("0.99", "0.0"):
        assert f"stats_decay = {decay}" in stdout
    links = [line.split(":")[0] for line in stdout.splitlines()
             if line.split(":")[0] in ("kfac_running", "kfac_fresh", "block_diagonal", "exact", "measured")]
    assert links == ["kfac_running", "kfac_fresh", "block_diagonal", "exact", "measured"]


class _LinearGaussianPolicy(torch.nn.Module):
    """π(a|s) = N(W s + b, diag σ²), state-independent log σ: K-FAC is exact for it."""

    def __init__(self, layers: int = 1):
        super().__init__()
        outs = [3] * (layers - 1) + [2]
        self.body = torch.nn.Sequential(*[torch.nn.Linear(i, o) for i, o in zip([3] + outs[:-1], outs)])
        self.log_std = torch.nn.Parameter(torch.tensor([-0.5, 0.2]))

    def forward(self, x):
        return self.body(x)


def _one_kfac_step(policy, obs, eta):
    """A K-FAC natural-gradient step on a policy-gradient-like loss, the factors from an exact Fisher
    pass on ``obs``; returns (the policy before, the step by name, the K-FAC, q)."""
    import copy

    from rlkit.kfac import KFAC

    kfac = KFAC(policy, stats_decay=0.0, damping=1e-3, damping_mode="eigen", inverse_every=1,
                exact_diagonal_blocks={policy.log_std: 2.0})
    mean = policy(obs)
    sqrt_fisher = torch.diag_embed(torch.exp(-policy.log_std).detach().expand_as(mean))
    kfac.update_stats_exact([(mean, sqrt_fisher)])
    actions = torch.randn(obs.shape[0], 2, generator=torch.Generator().manual_seed(1), dtype=obs.dtype)
    dist = torch.distributions.Normal(mean, policy.log_std.exp())
    (-(dist.log_prob(actions).sum(-1) * torch.linspace(-1, 1, obs.shape[0], dtype=obs.dtype)).mean()).backward()
    q = kfac.precondition()
    with kfac.paused():
        before = copy.deepcopy(policy)
    step = {n: p.grad.detach().clone() for n, p in policy.named_parameters()}
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(p.grad, alpha=-eta)
    return before, step, kfac, q


def test_kl_chain_links_are_exact_where_kfac_is_exact():
    """One linear layer with a Gaussian output: A ⊗ S is its exact Fisher block, and the mean's and the
    log-std's blocks do not couple; so K-FAC (running or fresh), block-diagonal and exact agree, and
    the exact one equals Δᵀ F Δ with F the dense Fisher of rlkit.fisher.fisher_matrix (jacrev, not
    the script's Fisher-vector products). The measured KL of a tiny step tends to the quadratic one."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import kl_overshoot as ko
    finally:
        sys.path.remove(str(BENCHMARKS))
    from rlkit.fisher import DiagonalGaussian, fisher_matrix, flatten, parameter_names

    torch.manual_seed(0)
    obs = torch.randn(64, 3, dtype=torch.float64)  # float64: a KL of 1e-7 is below float32's resolution
    eta = 1e-3
    policy = _LinearGaussianPolicy(layers=1).double()
    before, step, kfac, q = _one_kfac_step(policy, obs, eta)
    chain = ko.second_order_kls(before, policy, step, obs, kfac, q, eta)

    names = parameter_names(before)
    delta = flatten({n: step[n] for n in names})
    F = fisher_matrix(before, obs, DiagonalGaussian(log_std="log_std"))
    dense = 0.5 * eta**2 * float(delta @ F @ delta)
    assert chain["exact"] == pytest.approx(dense, rel=1e-5)
    for link in ("kfac_running", "kfac_fresh", "block_diagonal"):
        assert chain[link] == pytest.approx(dense, rel=1e-5), link
    assert chain["predicted"] == pytest.approx(0.5 * eta**2 * q)
    assert chain["predicted"] > chain["kfac_running"]  # the damping λ = 1e-3 only adds
    assert chain["measured"] == pytest.approx(dense, rel=1e-2)

    # a deep linear network: its K-FAC blocks are still its exact layer blocks (Gaussian output), but
    # the cross-layer blocks are no longer zero, so the whole Fisher's quadratic differs
    torch.manual_seed(0)
    deep = _LinearGaussianPolicy(layers=2).double()
    before, step, kfac, q = _one_kfac_step(deep, obs, eta)
    chain = ko.second_order_kls(before, deep, step, obs, kfac, q, eta)
    assert chain["kfac_running"] == pytest.approx(chain["kfac_fresh"], rel=1e-5)  # the same factors
    assert chain["block_diagonal"] == pytest.approx(chain["kfac_fresh"], rel=1e-4)
    assert abs(chain["exact"] / chain["block_diagonal"] - 1) > 0.05


@pytest.mark.parametrize("name, envs", [
    ("sample_efficiency", []),
    ("sample_efficiency_vmpo", ["--envs", "CartPole-v1:acktr,a2c,vmpo", "InvertedPendulum-v5:acktr,a2c,vmpo",
                                "Pendulum-v1:vmpo,acktr,a2c"]),
])
def test_sample_efficiency_summary_is_reprinted_from_the_committed_csv(tmp_path, name, envs):
    """--from-csv trains nothing and reads no run directory: from a copy of the committed CSV (and its .txt, for the
    runs' command) it prints the committed summary again, ratios with their intervals and verdicts."""
    import shutil

    for suffix in (".csv", ".txt"):
        shutil.copy(REPO / "data" / "benchmarks" / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    committed = (REPO / "data" / "benchmarks" / f"{name}.txt").read_text().splitlines()
    run_script("sample_efficiency.py", "--from-csv", str(tmp_path / f"{name}.csv"), *envs)
    remade = (tmp_path / f"{name}.txt").read_text().splitlines()
    # the same report: only the command and the paths it names differ
    assert remade[2:-1] == committed[2:-1]
    assert any("[95% CI]" in line for line in remade) and any(line.endswith("supported") for line in remade)


def test_preset_search_quick_writes_a_row_per_run(tmp_path):
    out = tmp_path / "search.csv"
    stdout = run_script("preset_search.py", "--quick", "--out", str(out))
    header, rows = read(out)
    assert [(r["cell"], r["seed"]) for r in rows] == [("lr=7e-4", "0"), ("lr=2e-3", "0")]
    assert {r["status"] for r in rows} <= {"reached", "censored"}
    assert "chosen (smallest median" in stdout and out.with_suffix(".txt").read_text().startswith("$ python")


def test_preset_search_ranks_censored_runs_above_their_budget_and_ties_by_the_mean():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import preset_search as ps
    finally:
        sys.path.remove(str(BENCHMARKS))

    def run(cell, steps, budget=100):
        return {"cell": cell, "status": "reached" if steps is not None else "censored", "budget": budget,
                "env_steps_to_threshold": steps if steps is not None else ""}

    rows = [run("a", 50), run("a", None), run("a", None),  # median censored: > 100
            run("b", 90), run("b", 95), run("b", 99),  # median 95
            run("c", 10), run("c", 95), run("c", 96)]  # median 95, smaller mean than b
    ranked = ps.rank(rows)
    assert [c[0] for c in ranked] == ["c", "b", "a"]
    assert ranked[0][1].value == 95 and ranked[0][2] == pytest.approx((10 + 95 + 96) / 3)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        ps.parse_pairs(["lr"], many=True)
    assert ps.cells({"a": ["1", "2"], "b": ["x"]}) == [{"a": "1", "b": "x"}, {"a": "2", "b": "x"}]


def test_later_seeds_run_apart_and_merge_with_the_first(tmp_path):
    """--first-seed trains only the seeds asked for; --from-csv adds them to the earlier seeds' rows, and refuses
    a CSV given twice rather than count its runs twice."""
    first, later = tmp_path / "first.csv", tmp_path / "later.csv"
    for path, seeds in ((first, ()), (later, ("--first-seed", "1"))):
        run_script("sample_efficiency.py", "--quick", "--workers", "1", "--algorithms", "acktr", *seeds,
                   "--runs-root", str(tmp_path / path.stem), "--out", str(path))
    assert [r["seed"] for r in read(first)[1]] == ["0"] and [r["seed"] for r in read(later)[1]] == ["1"]
    assert [p.name for p in (tmp_path / "later" / "CartPole-v1").iterdir()] == ["acktr-s1"]

    run_script("sample_efficiency.py", "--from-csv", str(first), str(later), "--out", str(tmp_path / "both.csv"))
    assert sorted(r["seed"] for r in read(tmp_path / "both.csv")[1]) == ["0", "1"]
    twice = subprocess.run([sys.executable, str(BENCHMARKS / "sample_efficiency.py"), "--from-csv", str(first),
                            str(first)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert twice.returncode != 0 and "acktr" in twice.stderr and "seed 0" in twice.stderr
    bad = subprocess.run([sys.executable, str(BENCHMARKS / "sample_efficiency.py"), "--first-seed", "-1"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "--first-seed" in bad.stderr


def _first_crossing(episodes: list[dict], threshold: float, budget: int, window: int = 10):
    """(env steps, episodes) where the mean of the last ``window`` returns first reaches ``threshold``."""
    ends = [int(e["env_steps"]) for e in episodes if int(e["env_steps"]) <= budget]
    returns = [float(e["episode_return"]) for e in episodes][:len(ends)]
    for i in range(window - 1, len(ends)):
        if np.mean(returns[i + 1 - window:i + 1]) >= threshold:
            return ends[i], i + 1
    return None


def test_a_threshold_named_by_an_algorithm_is_the_median_return_its_runs_reach(tmp_path):
    """--threshold ENV=ALGO: runs train to the budget; the report takes the median over ALGO's seeds of the mean
    of its last 10 episodes there, from several --runs-root, and judges every run by that return."""
    common = ("--quick", "--workers", "1", "--threshold", "CartPole-v1=a2c")
    run_script("sample_efficiency.py", *common, "--algorithms", "acktr", "--runs-root", str(tmp_path / "kit"),
               "--out", str(tmp_path / "kit.csv"))
    for first in ("0", "1"):
        run_script("sample_efficiency.py", *common, "--algorithms", "a2c", "--first-seed", first,
                   "--runs-root", str(tmp_path / "ref"), "--out", str(tmp_path / "ref.csv"))
    alone = run_script("sample_efficiency.py", *common, "--report-only", "--runs-root", str(tmp_path / "kit"),
                       "--out", str(tmp_path / "alone.csv"))
    assert "CartPole-v1 left out" in alone and "no finished a2c run" in alone

    stdout = run_script("sample_efficiency.py", *common, "--report-only", "--runs-root", str(tmp_path / "kit"),
                        str(tmp_path / "ref"), "--out", str(tmp_path / "both.csv"))
    rows = read(tmp_path / "both.csv")[1]
    episodes = {(r["algorithm"], r["seed"]): read(REPO / r["run_dir"] / "episodes.csv")[1] for r in rows}
    finals = [np.mean([float(e["episode_return"]) for e in episodes["a2c", s] if int(e["env_steps"]) <= 2048][-10:])
              for s in ("0", "1")]
    assert min(int(r["env_steps_run"]) for r in rows) >= 2048  # nobody stopped early: no threshold while training
    threshold = float(np.median(finals))
    assert [float(r["threshold"]) for r in rows] == pytest.approx([threshold] * len(rows), rel=1e-12)
    assert f"threshold {threshold:g} = median over seeds of a2c's" in stdout
    for r in rows:
        crossing = _first_crossing(episodes[r["algorithm"], r["seed"]], threshold, int(r["budget"]))
        assert r["status"] == ("reached" if crossing else "censored")
        assert (r["env_steps_to_threshold"], r["episodes_to_threshold"]) == (
            tuple(map(str, crossing)) if crossing else ("", ""))

    unknown = subprocess.run([sys.executable, str(BENCHMARKS / "sample_efficiency.py"), "--threshold",
                              "CartPole-v1=ppo", "--report-only"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert unknown.returncode != 0 and "CartPole-v1=ppo" in unknown.stderr and "sb3-ppo" in unknown.stderr
    several = subprocess.run([sys.executable, str(BENCHMARKS / "sample_efficiency.py"), "--quick", "--runs-root",
                              str(tmp_path / "kit"), str(tmp_path / "ref")], cwd=REPO, capture_output=True, text=True,
                             timeout=600)
    assert several.returncode != 0 and "--report-only" in several.stderr
