"""The hyperparameters the agents share are declared once (``OnPolicyConfig``), and old names still load."""
import dataclasses

import pytest

from rlkit.agents import AGENTS, resolve_config
from rlkit.agents.base import Config, OnPolicyConfig

SHARED = [f.name for f in dataclasses.fields(OnPolicyConfig)]


def own_annotations(cls) -> set[str]:
    return set(vars(cls).get("__annotations__", {}))


def test_every_agent_config_extends_the_shared_one_and_declares_only_its_own_fields():
    assert "gae_lambda" in SHARED and "lam" not in SHARED
    for name, agent in AGENTS.items():
        config = agent.Config
        assert issubclass(config, OnPolicyConfig), name
        fields = [f.name for f in dataclasses.fields(config)]
        assert fields[:len(SHARED)] == SHARED, name
        # a shared field is re-declared only to change its default
        for field in own_annotations(config) & set(SHARED):
            assert config.__dataclass_fields__[field].default != OnPolicyConfig.__dataclass_fields__[field].default, \
                (name, field)
    # what only some of the agents have stays with them
    for field in ("normalize_advantages", "value_coef", "measure_kl"):
        assert field not in SHARED and sum(field in own_annotations(a.Config) for a in AGENTS.values()) >= 2


@pytest.mark.parametrize("old, new, algorithm", [("lam", "gae_lambda", "acktr"), ("lam", "gae_lambda", "trpo"),
                                                 ("initial_eta", "initial_temperature", "vmpo")])
def test_old_names_are_read_through_the_alias_table(old, new, algorithm):
    assert Config.RENAMED[old] == new
    config = resolve_config(algorithm, {old: "0.5"})
    assert getattr(config, new) == 0.5 and not hasattr(config, old)
    assert old not in dataclasses.asdict(config)  # written under today's name
    with pytest.raises(ValueError, match=f"{new} is given twice"):
        resolve_config(algorithm, {old: 0.5, new: 0.5})


def test_an_old_name_of_a_field_the_agent_lacks_is_still_unknown():
    with pytest.raises(ValueError, match=r"unknown ACKTRConfig parameter\(s\) \['initial_temperature'\]"):
        resolve_config("acktr", {"initial_eta": 1.0})
