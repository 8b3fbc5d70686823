"""Exercise checks of notebook 07: the right answer passes, typical wrong answers and the notebook's
placeholder (None) fail without raising. The data are made up here (a run directory, a sweep table,
benchmark rows), so the expected answers are computed by hand, independently of rlkit."""
import json
import math

import pytest

from rlkit.lessons.nb07_acktr_runs import exercises as ex07
from rlkit.experiments.runs import write_csv
from rlkit.experiments.sweeps import load_sweep


@pytest.fixture
def run(tmp_path):
    """Two logged ACKTR updates, δ = 0.002: update 1 uncapped (q = 0.5), update 2 capped (q = 0.001)."""
    (tmp_path / "config.json").write_text(json.dumps({"rlkit_run": 1, "agent": {"delta": 0.002}}), encoding="utf-8")
    write_csv(tmp_path / "updates.csv", ["update", "quadratic", "eta_max", "step_size", "step_size_capped"], [
        {"update": 1, "quadratic": 0.5, "eta_max": 0.25, "step_size": math.sqrt(0.008), "step_size_capped": 0.0},
        {"update": 2, "quadratic": 0.001, "eta_max": 0.25, "step_size": 0.25, "step_size_capped": 1.0},
    ])
    return tmp_path


@pytest.fixture
def sweep(tmp_path):
    """Three seeds at the exercise's point cross 475 at 200, 300, 700 env steps (median 300, mean 400)."""
    point = ex07.SWEEP_POINT
    curves = [[100, 480, 500, 500, 500, 500, 500], [100, 200, 480, 500, 500, 500, 500],
              [100, 200, 300, 400, 450, 470, 480]]
    rows = []
    for seed, curve in enumerate(curves):
        for k, value in enumerate(curve):
            rows.append({"env": "CartPole-v1", "delta": point["delta"], "eta_max": point["eta_max"], "seed": seed,
                         "env_steps": 100 * (k + 1), "episode_return": value, "episodes": 1, "measured_kl": 0.001})
            rows.append({**rows[-1], "delta": 0.01, "episode_return": 500})  # another point: crosses at 100
    path = tmp_path / "sweep.csv"
    write_csv(path, list(rows[0]), rows)
    path.with_suffix(".json").write_text(json.dumps({"axes": {"delta": [point["delta"], 0.01],
                                                              "eta_max": [point["eta_max"]]}}), encoding="utf-8")
    return load_sweep(path)


ROWS = [{"env": ex07.RATIO_ENV, "algorithm": a, "episodes_to_threshold": e, "env_steps_to_threshold": s}
        for a, e, s in [("acktr", 100, 1000), ("acktr", 200, 2500), ("acktr", 300, 2000),
                        ("a2c", 500, 9000), ("a2c", 400, 8000), ("a2c", 600, 10000)]]
# medians: episodes A2C 500, ACKTR 200 → 2.5; env steps 9000 / 2000 = 4.5


def test_step_size_uncapped_and_capped(run, capsys):
    assert ex07.check_step_size(math.sqrt(2 * 0.002 / 0.5), run, update=1) is True
    assert capsys.readouterr().out.startswith("✓")
    assert ex07.check_step_size(0.25, run, update=2) is True
    assert capsys.readouterr().out.startswith("✓")
    for answer, hint in [(math.sqrt(0.002 / 0.5), "baselines"), (0.25, "does not bind"), (0.008, "square root")]:
        assert ex07.check_step_size(answer, run, update=1) is False
        assert hint in capsys.readouterr().out
    assert ex07.check_step_size(2.0, run, update=2) is False  # sqrt(2δ/q) without the cap
    assert "cap takes over" in capsys.readouterr().out


@pytest.mark.parametrize("answer", [None, "abc", [1.0, 2.0]])
def test_step_size_placeholder_fails_without_raising(run, answer, capsys):
    assert ex07.check_step_size(answer, run, update=1) is False
    assert capsys.readouterr().out.startswith("✗")


def test_step_size_unknown_update_is_an_error(run):
    with pytest.raises(ValueError, match="no update 3"):
        ex07.check_step_size(0.1, run, update=3)


def test_sweep_steps(sweep, capsys):
    assert ex07.check_sweep_steps(300, sweep=sweep) is True
    assert capsys.readouterr().out.startswith("✓")
    for answer, hint in [(400, "mean over seeds"), (200, "fastest seed"), (100, "")]:
        assert ex07.check_sweep_steps(answer, sweep=sweep) is False
        out = capsys.readouterr().out
        assert out.startswith("✗") and hint in out
    for answer in (None, "abc"):
        assert ex07.check_sweep_steps(answer, sweep=sweep) is False
        assert capsys.readouterr().out.startswith("✗")


def test_sweep_steps_names_the_mean_curve_mistake(tmp_path, capsys):
    point = ex07.SWEEP_POINT
    curves = [[480, 480, 480], [0, 0, 480], [0, 300, 480], [0, 480, 480]]  # seeds cross at 100, 300, 300, 200
    rows = [{"env": "CartPole-v1", "delta": point["delta"], "eta_max": point["eta_max"], "seed": s,
             "env_steps": 100 * (k + 1), "episode_return": v, "episodes": 1, "measured_kl": 0.001}
            for s, c in enumerate(curves) for k, v in enumerate(c)]
    path = tmp_path / "s.csv"
    write_csv(path, list(rows[0]), rows)
    path.with_suffix(".json").write_text(json.dumps({"axes": {"delta": [point["delta"]], "eta_max": [point["eta_max"]]}}))
    sweep = load_sweep(path)
    # median 250, mean 225, fastest 100; the mean curve (120, 315, 480) first reaches 475 at 300
    assert ex07.check_sweep_steps(250, sweep=sweep) is True
    capsys.readouterr()
    assert ex07.check_sweep_steps(300, sweep=sweep) is False
    assert "MEAN curve" in capsys.readouterr().out


def test_sample_efficiency_ratio(capsys):
    assert ex07.check_sample_efficiency_ratio(2.5, rows=ROWS) is True
    assert capsys.readouterr().out.startswith("✓")
    for answer, hint in [(4.5, "env steps"), (0.4, "upside down"), (3.0, "")]:
        assert ex07.check_sample_efficiency_ratio(answer, rows=ROWS) is False
        out = capsys.readouterr().out
        assert out.startswith("✗") and hint in out
    for answer in (None, "abc", [1.0, 2.0]):
        assert ex07.check_sample_efficiency_ratio(answer, rows=ROWS) is False
        assert capsys.readouterr().out.startswith("✗")


def test_sample_efficiency_ratio_on_the_committed_benchmark(capsys):
    """The answer computed from data/benchmarks/sample_efficiency.csv read with the csv module (a censored seed,
    empty episodes_to_threshold, counts as +inf): the ratio of the medians over all seeds is accepted; the ratio of
    the means, and the medians over the reached seeds only, are refused with their hints."""
    import csv
    import statistics

    from rlkit.experiments.data import data_dir

    with open(data_dir() / "benchmarks" / "sample_efficiency.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["env"] == ex07.RATIO_ENV]
    episodes = {a: [float(r["episodes_to_threshold"] or "inf") for r in rows if r["algorithm"] == a]
                for a in ("a2c", "acktr")}
    assert ex07.check_sample_efficiency_ratio(statistics.median(episodes["a2c"]) / statistics.median(episodes["acktr"]))
    reached = {a: [e for e in v if e != float("inf")] for a, v in episodes.items()}
    means = statistics.mean(reached["a2c"]) / statistics.mean(reached["acktr"])
    assert ex07.check_sample_efficiency_ratio(means) is False
    assert "means" in capsys.readouterr().out.splitlines()[-1]
    if reached != episodes:  # a censored seed: dropping it is the tempting mistake
        dropped = statistics.median(reached["a2c"]) / statistics.median(reached["acktr"])
        assert ex07.check_sample_efficiency_ratio(dropped) is False
        assert "left out the seed" in capsys.readouterr().out.splitlines()[-1]


def test_sample_efficiency_ratio_with_a_censored_seed(capsys):
    """Hand-made rows: A2C seeds at 100, 300 episodes and one censored (NaN) -> median 300; ACKTR 50, 60, 100 ->
    median 60, mean 70. Accepted: 300/60 = 5. Refused: 200/60 (the censored seed dropped, +inf hint) and
    200/70 (means of the reached seeds, 'means' hint)."""
    nan = float("nan")
    rows = [{"env": ex07.RATIO_ENV, "algorithm": a, "episodes_to_threshold": e, "env_steps_to_threshold": 10 * e}
            for a, values in (("a2c", (100.0, 300.0, nan)), ("acktr", (50.0, 60.0, 100.0))) for e in values]
    assert ex07.check_sample_efficiency_ratio(5.0, rows=rows) is True
    capsys.readouterr()
    assert ex07.check_sample_efficiency_ratio(200.0 / 60.0, rows=rows) is False
    last = capsys.readouterr().out.splitlines()[-1]
    assert "left out the seed" in last and "means" not in last
    assert ex07.check_sample_efficiency_ratio(200.0 / 70.0, rows=rows) is False
    assert "ratio of the means" in capsys.readouterr().out.splitlines()[-1]
    assert ex07.check_sample_efficiency_ratio(float("nan"), rows=rows) is False  # np.median with the NaN left in
    assert "count that seed as +inf" in capsys.readouterr().out.splitlines()[-1]


def test_sweep_steps_on_the_committed_sweep(capsys):
    # data/sweeps/acktr-delta-eta-max.csv at δ = 0.001, η_max = 0.25: seeds cross at 37 500, 45 000, 55 000
    assert ex07.check_sweep_steps(45_000) is True
    assert ex07.check_sweep_steps(37_500) is False
    assert "fastest seed" in capsys.readouterr().out
