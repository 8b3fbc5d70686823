"""The setup check the first notebook runs: dependency report and environment summaries."""
import importlib.metadata

import pytest

from rlkit.lessons.nb00_setup_check import machine as setup_check


def test_every_dependency_imports_and_reports_its_installed_version():
    statuses = setup_check.check_dependencies()
    assert [s.distribution for s in statuses] == [d[1] for d in setup_check.DEPENDENCIES]
    for status in statuses:
        assert status.ok, status.line()
        assert status.version == importlib.metadata.version(status.distribution)


def test_a_missing_dependency_is_reported_with_what_to_install(monkeypatch):
    monkeypatch.setattr(setup_check, "DEPENDENCIES", (("not_a_module_rlkit", "not-a-dist", "nothing"),))
    (status,) = setup_check.check_dependencies()
    assert not status.ok
    assert "ModuleNotFoundError" in status.problem
    assert "pip install not-a-dist" in status.line()


@pytest.mark.parametrize(
    "env_id, action_space, observation_shape",
    [
        ("CartPole-v1", "Discrete(2)", "(4,)"),
        ("InvertedPendulum-v5", "Box(-3.0, 3.0, (1,), float32)", "(4,)"),
        ("ALE/Pong-v5", "Discrete(6)", "(210, 160, 3)"),
    ],
)
def test_describe_env_matches_the_documented_spaces(env_id, action_space, observation_shape):
    summary = setup_check.describe_env(env_id)
    assert summary["action_space"] == action_space
    assert summary["first_observation_shape"] == observation_shape


@pytest.mark.parametrize(
    "env_id, provider",
    [("ALE/NotAGame-v5", "ale-py"), ("NotAnEnv-v5", "gymnasium[mujoco]"), ("NotAnEnv-v1", "gymnasium")],
)
def test_an_unknown_env_id_names_the_package_that_provides_its_family(env_id, provider):
    with pytest.raises(RuntimeError, match=rf"env_id='{env_id}'.*{provider.replace('[', '.').replace(']', '.')}"):
        setup_check.make_env(env_id)
