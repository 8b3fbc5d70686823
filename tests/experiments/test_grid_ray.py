"""rlkit.experiments.grid's ray backend on a local Ray cluster (2 CPUs, started once for the module): the smoke
scale of every experiment, a worker killed midway and retried by Ray, a run that fails in the agent."""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.grid import (assert_same_results, big_run, expected_names, rows, run_dirs_with_config, tiny_run)
from rlkit.experiments.registry import EXPERIMENTS
from rlkit.experiments.grid import GRID_FILE, KillWorker, read_grid_file, run_grid, run_status
from rlkit.experiments.report import report, write_sweep_table

pytestmark = pytest.mark.slow  # minutes: Ray start-up, every experiment's grid (the README's test command runs them)

import ray  # noqa: E402 - in the test extra: a missing Ray is a failure, not a skip


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs; run_grid uses an initialized Ray as it is and leaves it running."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def smoke(cluster, tmp_path_factory):
    """The smoke scale of every experiment, through the ray backend: {name: (root, outcomes)}."""
    base = tmp_path_factory.mktemp("ray-smoke")

    def run(name):
        return base / name, run_grid(EXPERIMENTS[name].runs("smoke"), base / name, backend="ray", progress=False,
                                     about={"experiment": name, "scale": "smoke"})

    # every grid at once (one thread each): the cluster's 2 CPUs take the runs of all of them, so the two
    # slow ones (ACKTR's first K-FAC inverse of the Atari network, in Tables 1 and 3) run side by side
    with ThreadPoolExecutor(len(EXPERIMENTS)) as pool:
        return dict(zip(EXPERIMENTS, pool.map(run, EXPERIMENTS)))


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_the_smoke_scale_of_every_experiment_runs_on_ray(smoke, name):
    root, outcomes = smoke[name]
    exp = EXPERIMENTS[name]
    assert ray.is_initialized()  # run_grid left the cluster it did not start alone
    assert [o.action for o in outcomes] == ["trained"] * len(outcomes), [o.error for o in outcomes]
    # the layout of the local backend: ROOT/grid.json and ROOT/<env>/<variant>/s<seed>/ run directories
    assert (root / GRID_FILE).is_file()
    about, runs = read_grid_file(root)
    assert (about["experiment"], about["scale"]) == (name, "smoke") and runs == exp.runs("smoke")
    assert run_dirs_with_config(root) == expected_names(exp, "smoke")
    for outcome in outcomes:
        run_dir = root / outcome.run.name
        assert {p.name for p in run_dir.iterdir()} == {"config.json", "episodes.csv", "updates.csv", "checkpoints"}
        assert len(list((run_dir / "checkpoints").glob("update-*.pt"))) == 1  # a grid keeps the newest only
        config = json.loads((run_dir / "config.json").read_text())
        assert (config["algorithm"], config["env"], config["seed"]) == (outcome.run.algorithm, outcome.run.env,
                                                                        outcome.run.seed)
        last = int(rows(run_dir / "updates.csv")[1][-1]["env_steps"])
        assert outcome.env_steps == last >= outcome.run.steps
        assert run_status(outcome.run, root) == ("finished", last)


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_a_ray_grid_reports_like_a_local_one(smoke, name, tmp_path):
    root, outcomes = smoke[name]
    exp = EXPERIMENTS[name]
    if exp.kind == "sweep":
        table = write_sweep_table(root, tmp_path / f"{name}.csv")
        header, data = rows(table)
        assert header[:4] == ["env", *dict(exp.axes), "seed"]
        assert {(r[header[1]], r[header[2]]) for r in data} == {
            tuple(str(dict(o.run.overrides)[axis]) for axis in dict(exp.axes)) for o in outcomes}
        assert json.loads(table.with_suffix(".json").read_text())["experiment"] == name
    else:
        result = report(root)
        assert {(row["env"], row["variant"]) for row in result.rows} == {
            (o.run.env, o.run.name.split("/")[1]) for o in outcomes}
        assert result.markdown.startswith(f"# {exp.title}") and "have no results yet" not in result.markdown


def test_ray_and_local_backends_write_the_same_results(smoke, tmp_path):
    root, outcomes = smoke["acktr-figure5ab"]
    local = run_grid([o.run for o in outcomes], tmp_path, progress=False)
    assert [o.action for o in local] == ["trained"] * len(local)
    assert run_dirs_with_config(tmp_path) == run_dirs_with_config(root)
    for outcome in outcomes:
        assert_same_results(root / outcome.run.name, tmp_path / outcome.run.name)


def test_a_killed_worker_is_retried_by_ray_and_equals_an_uninterrupted_run(cluster, tmp_path):
    run = big_run()
    marker = tmp_path / "killed"
    outcome, = run_grid([run], tmp_path / "ray", backend="ray", retries=1, progress=False,
                        fault=KillWorker(run.name, after_updates=2, marker=str(marker)))
    assert marker.read_text() == "killed after update 2\n"
    assert outcome.action == "resumed", outcome.error  # Ray's retry resumed it from its update-2 checkpoint
    local, = run_grid([run], tmp_path / "local", progress=False)
    assert local.action == "trained" and outcome.env_steps == local.env_steps
    assert_same_results(tmp_path / "ray" / run.name, tmp_path / "local" / run.name)


def test_a_run_failing_in_the_agent_is_reported_and_the_others_finish(cluster, tmp_path):
    good, bad = tiny_run("acktr", 0, steps=32), tiny_run("acktr", 1, steps=32, extra=(("delta", -1),))
    other = tiny_run("a2c", 0, steps=32)
    outcomes = run_grid([good, bad, other], tmp_path, backend="ray", retries=0, progress=False)
    assert [o.action for o in outcomes] == ["trained", "failed", "trained"]
    assert "delta must be > 0" in outcomes[1].error
    assert not (tmp_path / bad.name).exists()
    for run in (good, other):
        assert run_status(run, tmp_path)[0] == "finished"
