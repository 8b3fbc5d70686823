"""Every command-line flag fed hostile values (0, negatives, nan, inf, 1e300, huge integers, words, an empty
string): each is either accepted and the command runs through (status 0), or refused on one line that names
the flag, with status 2 and no traceback."""

import pytest

from rlkit import cli
from rlkit.agents import AGENTS

HOSTILE = ["0", "-1", "-1e300", "nan", "inf", "-inf", "1e300", str(10**30), str(2**64), "abc", "", "1.5"]
SENTINEL = "--address is for --backend ray"  # a grid command that got past its flags stops here, before any run


def hyperparameter_flags():
    """(flag, an algorithm that has it) for every non-boolean hyperparameter flag."""
    flags = {}
    for name, entry in cli.hyperparameter_fields(AGENTS).items():
        if name in cli.RESERVED or entry["type"] is bool:
            continue
        flags[cli.flag(name)] = next(iter(entry["defaults"]))
    return sorted(flags.items())


def names_the_flag(message: str, flag: str) -> bool:
    bare = flag.lstrip("-")
    return any(form in message for form in (flag, bare, bare.replace("-", "_"), bare.replace("-", " ")))


def call(argv, capsys):
    try:
        status = cli.main(argv)
    except SystemExit as exit_:  # argparse's refusal
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def check(status, err, flag, value, accepted_status=0, accepted_text=None):
    assert "Traceback" not in err, (flag, value, err)
    if status == accepted_status and (accepted_text is None or accepted_text in err):
        return "accepted"
    assert status == 2, (flag, value, status, err)
    assert len(err.strip().splitlines()) == 1 and names_the_flag(err, flag), (flag, value, err)
    return "refused"


@pytest.mark.parametrize("flag, algorithm", hyperparameter_flags())
def test_each_hyperparameter_flag_refuses_hostile_values_naming_itself(tmp_path, capsys, flag, algorithm):
    outcomes = {}
    for i, value in enumerate(HOSTILE):
        argv = ["train", algorithm, "--env", "CartPole-v1", "--steps", "1", "--run-dir", str(tmp_path / f"r{i}"),
                "--no-progress", flag, value]
        if flag not in ("--num-envs", "--num-steps"):
            argv += ["--num-envs", "2", "--num-steps", "4"] if flag != "--hidden-sizes" else []
        status, _, err = call(argv, capsys)
        outcomes[value] = check(status, err, flag, value)
    for value in ("nan", "inf", "-inf", "1e300", str(10**30), str(2**64), "abc", ""):
        if (flag, value) != ("--hidden-sizes", ""):  # no hidden layer: a linear policy, a valid choice
            assert outcomes[value] == "refused", (flag, value)


@pytest.mark.parametrize("flag", ["--steps", "--seed", "--checkpoint-every", "--keep-checkpoints", "--env", "--device",
                                  "--preset", "--run-dir"])
def test_each_train_flag_refuses_hostile_values_naming_itself(tmp_path, capsys, monkeypatch, flag):
    monkeypatch.chdir(tmp_path)  # a --run-dir value such as "abc" is a relative path: keep it out of the checkout
    for i, value in enumerate(HOSTILE):
        args = {"--env": "CartPole-v1", "--steps": "1", "--run-dir": str(tmp_path / f"r{i}")}
        args[flag] = value
        argv = ["train", "a2c", "--no-progress", "--num-envs", "2", "--num-steps", "4"]
        for name, given in args.items():
            argv += [name, given]
        status, _, err = call(argv, capsys)
        outcome = check(status, err, flag, value)
        if value in ("nan", "inf", "1e300", str(10**30), "abc") and flag != "--run-dir":
            assert outcome == "refused", (flag, value)


def test_evaluate_and_plot_flags_refuse_hostile_values_naming_themselves(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert call(["train", "a2c", "--env", "CartPole-v1", "--steps", "1", "--run-dir", str(run_dir), "--no-progress",
                 "--num-envs", "2", "--num-steps", "4"], capsys)[0] == 0
    for flag in ("--episodes", "--seed"):
        for value in HOSTILE:
            status, _, err = call(["evaluate", str(run_dir), flag, value] + (["--episodes", "1"] if flag == "--seed" else []),
                                  capsys)
            if check(status, err, flag, value) == "accepted":
                assert value in ("0",) or flag == "--seed" and value == "0"
    for value in HOSTILE:
        status, _, err = call(["plot", str(run_dir), "--out", str(tmp_path / "c.png"), "--window", value], capsys)
        check(status, err, "--window", value)


@pytest.mark.parametrize("flag", ["--seeds", "--workers", "--retries"])
def test_grid_flags_refuse_hostile_values_naming_themselves(tmp_path, capsys, flag):
    for value in HOSTILE:
        status, _, err = call(["reproduce", "acktr-table2", "--scale", "smoke", "--out", str(tmp_path / "g"),
                               "--address", "x", "--no-progress", flag, value], capsys)
        outcome = check(status, err, flag, value, accepted_status=2, accepted_text=SENTINEL)
        if outcome == "accepted":
            assert (flag, value) in {("--retries", "0")}, (flag, value)
    assert not (tmp_path / "g").exists()
