"""The agents: one readable file per algorithm, all sharing envs, nets and rollouts.

=========  ==========================================================================
``a2c``    first-order advantage actor-critic (RMSprop or Adam), same networks and batch
``acktr``  K-FAC natural gradient for actor and Gauss-Newton critic, trust-region step
``trpo``   natural gradient by conjugate gradient on Fisher-vector products, line search
``vmpo``   V-MPO: top-k E-step and KL-constrained weighted maximum likelihood, target network
=========  ==========================================================================

The interface every agent class implements (the trainer and the notebooks rely on it)::

    AGENTS[name] -> class with
        name, Config (a @dataclass), presets {"classic": {...}, "mujoco": {...}, "atari": {...}},
        supported_action_kinds
        __init__(env_summary, config, *, seed, device="cpu")   # validates config and action space
        policy(obs) -> (actions, log_probs, values)            # sampling with the agent's generator
        act_deterministic(obs) -> actions                      # argmax / mean
        update(rollout) -> {diagnostic: float}                 # one learner update; stable keys
        state_dict() / load_state_dict(state)                  # resume identically

Building one from names (what the command line does)::

    agent = make_agent("acktr", EnvSummary.of(envs), {"delta": 0.001}, seed=0)

``preset=None`` picks the preset of the env's family (``atari``, ``mujoco``, else ``classic``);
the overrides are applied on top of the preset.
"""
from __future__ import annotations

from rlkit.agents.a2c import A2C, A2CConfig
from rlkit.agents.acktr import ACKTR, ACKTRConfig
from rlkit.agents.base import Agent, Config, OnPolicyConfig
from rlkit.agents.trpo import TRPO, TRPOConfig
from rlkit.agents.vmpo import VMPO, VMPOConfig
from rlkit.envs import EnvSummary

__all__ = [
    "AGENTS", "make_agent", "resolve_config", "default_preset", "agent_class",
    "Agent", "Config", "OnPolicyConfig", "A2C", "A2CConfig", "ACKTR", "ACKTRConfig", "TRPO", "TRPOConfig",
    "VMPO", "VMPOConfig",
]

AGENTS: dict[str, type[Agent]] = {"a2c": A2C, "acktr": ACKTR, "trpo": TRPO, "vmpo": VMPO}

FAMILY_PRESETS = {"atari": "atari", "mujoco": "mujoco"}  # any other family: "classic"


def agent_class(name: str) -> type[Agent]:
    """``AGENTS[name]``, or a ``ValueError`` listing the valid names."""
    if name not in AGENTS:
        raise ValueError(f"unknown algorithm {name!r}; valid algorithms: {', '.join(sorted(AGENTS))}")
    return AGENTS[name]


def default_preset(env_summary: EnvSummary | None) -> str:
    """The preset for an env's family: ``"atari"``, ``"mujoco"``, else ``"classic"``."""
    family = getattr(env_summary, "family", None)
    return FAMILY_PRESETS.get(family, "classic")


def resolve_config(name: str, overrides: dict | None = None, *, preset: str | None = None,
                   env_summary: EnvSummary | None = None) -> Config:
    """The validated config of algorithm ``name``: its defaults, then ``preset``, then ``overrides``.

    ``preset=None`` uses :func:`default_preset` of ``env_summary`` (``"classic"`` if none).
    Unknown algorithm, preset or config keys raise ``ValueError`` listing the valid ones.
    """
    cls = agent_class(name)
    preset = default_preset(env_summary) if preset is None else preset
    if preset not in cls.presets:
        raise ValueError(f"unknown preset {preset!r} for {name}; valid presets: {', '.join(sorted(cls.presets))}")
    config = cls.Config.from_dict(cls.presets[preset])
    return cls.Config.from_dict(overrides, base=config).validate()


def make_agent(name: str, env_summary: EnvSummary, overrides: dict | None = None, *, seed: int,
               device: str = "cpu", preset: str | None = None) -> Agent:
    """Build agent ``name`` for ``env_summary`` with ``resolve_config(name, overrides, preset=...)``."""
    config = resolve_config(name, overrides, preset=preset, env_summary=env_summary)
    return agent_class(name)(env_summary, config, seed=seed, device=device)
