"""Helpers shared by the agent tests (tests/agents/test_agents.py, test_vmpo_agent.py, test_acktr_checked_step.py)."""
import torch

from rlkit.agents import make_agent
from rlkit.envs import EnvSummary, make_vec_env
from rlkit.rollout import RolloutCollector

SMALL = {"num_envs": 4, "num_steps": 8}


def setup(name, env_id, seed=0, preset="classic", **overrides):
    """(agent, collector) for a small batch of env_id."""
    overrides = {**SMALL, **overrides}
    envs = make_vec_env(env_id, overrides["num_envs"])
    agent = make_agent(name, EnvSummary.of(envs), overrides, seed=seed, preset=preset)
    return agent, RolloutCollector(envs, agent.config.num_steps, seed=seed)


def fields_that_differ(a, b) -> set[str]:
    """The names of the config fields whose values differ between configs a and b (of one agent)."""
    return {k for k in vars(a) if getattr(a, k) != getattr(b, k)}


def run(agent, collector, updates):
    return [agent.update(collector.collect(agent.policy)) for _ in range(updates)]


def without_times(diagnostics):
    return [{k: v for k, v in d.items() if not k.startswith("time_")} for d in diagnostics]


def assert_same_tensors(a: dict, b: dict):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
