"""Exercise checks of notebook 07. The implementation exercise: a correct actor step passes, the stub says
"not done", and each planted typical mistake is named. The numeric exercises: the right answer passes, typical
wrong answers and the placeholder (None) fail without raising; their data are made up here (a sweep table,
benchmark rows), so the expected answers are computed by hand, independently of rlkit."""
import json
import math

import pytest
import torch

from rlkit.lessons.nb07_acktr_runs import exercises as ex07
from rlkit.experiments.runs import write_csv
from rlkit.experiments.sweeps import load_sweep


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


# ----------------------------------------------------------------------------- the implementation exercise


def eigen_direction(G, A, S, damping):
    """(S ⊗ A + λI)⁻¹ vec(G) by a dense solve on the Kronecker product (row-major vec): independent of rlkit."""
    K = torch.kron(S, A) + damping * torch.eye(A.shape[0] * S.shape[0], dtype=A.dtype)
    return torch.linalg.solve(K, G.reshape(-1)).reshape(G.shape)


def make_actor_step(eta_rule=lambda q, d, m: min(m, math.sqrt(2 * d / q)), precondition=True, q_from_gradient=False,
                    sign=-1.0, damp_factors=False):
    """A correct actor step (the defaults), or one with a planted mistake."""
    def actor_step(grads, factors, damping, delta, eta_max):
        if damp_factors:
            directions = [torch.linalg.solve(S + damping * torch.eye(len(S), dtype=S.dtype), G)
                          @ torch.linalg.inv(A + damping * torch.eye(len(A), dtype=A.dtype)) for G, (A, S) in zip(grads, factors)]
        elif precondition:
            directions = [eigen_direction(G, A, S, damping) for G, (A, S) in zip(grads, factors)]
        else:
            directions = list(grads)
        q = float(sum((G * (G if q_from_gradient else D)).sum() for G, D in zip(grads, directions)))
        eta = eta_rule(q, delta, eta_max)
        return [sign * eta * D for D in directions], eta
    return actor_step


def test_actor_step_accepts_a_correct_implementation(capsys):
    assert ex07.check_actor_step(make_actor_step()) is True
    assert capsys.readouterr().out.startswith("✓ actor_step: agrees with rlkit on 3 random inputs")


def test_actor_step_says_not_done_for_the_stub(capsys):
    def actor_step(grads, factors, damping, delta, eta_max):
        raise NotImplementedError

    assert ex07.check_actor_step(actor_step) is False
    assert "not done yet" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, message", [
    (make_actor_step(eta_rule=lambda q, d, m: min(m, math.sqrt(d / q))), "missing the factor 2"),
    (make_actor_step(eta_rule=lambda q, d, m: min(m, 2 * d / q)), "take the square root"),
    (make_actor_step(eta_rule=lambda q, d, m: math.sqrt(2 * d / q)), "the cap η_max is ignored"),
    (make_actor_step(precondition=False), "the gradient is not preconditioned"),
    (make_actor_step(q_from_gradient=True), "q is ĝᵀĝ"),
    (make_actor_step(damp_factors=True), "λ is added to A and to S separately"),
    (make_actor_step(sign=1.0), "the wrong sign"),
])
def test_actor_step_names_each_typical_mistake(mistake, message, capsys):
    assert ex07.check_actor_step(mistake) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ actor_step") and message in out


def test_actor_step_reports_other_errors_and_wrong_shapes(capsys):
    assert ex07.check_actor_step(lambda grads, factors, damping, delta, eta_max: 1 / 0) is False
    assert "ZeroDivisionError" in capsys.readouterr().out
    right = make_actor_step()
    assert ex07.check_actor_step(lambda *args: (right(*args)[0][:1], right(*args)[1])) is False  # a layer missing
    assert "returned 2 value(s), expected 3" in capsys.readouterr().out


def test_actor_step_cases_contain_capped_and_uncapped_steps():
    etas = []
    for case in ex07.actor_step_cases():
        q = float(sum((G * eigen_direction(G, A, S, case["damping"])).sum()
                      for G, (A, S) in zip(case["grads"], case["factors"])))
        etas.append(math.sqrt(2 * case["delta"] / q) < case["eta_max"])
    assert etas == [True, False, True]


# ----------------------------------------------------------------------------- the numeric exercises


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
