r"""What every agent shares: config handling, the training batch, sampling, checkpoints.

The algorithm files (``a2c.py``, ``acktr.py``, ``trpo.py``, ``vmpo.py``) hold what differs: their
own hyperparameters and their ``update``. This module holds what does not:

* :class:`Config`: built from a dict of overrides with :meth:`Config.from_dict` (strings from a
  command line are converted to the field's type; an unknown key is a ``ValueError`` listing the
  valid ones; old names are read through :attr:`Config.RENAMED`), serialized with
  ``dataclasses.asdict``, checked by ``validate()``, which names the parameter and its valid range.
* :class:`OnPolicyConfig`: the hyperparameters all four agents share (rollout, networks, entropy
  bonus), declared and validated once, as Stable-Baselines3 declares its on-policy ones.
* :func:`make_batch`: the valid rows of a :class:`rlkit.rollout.Rollout` with GAE(λ)
  advantages and their value targets (λ = 1: the ACKTR paper's k-step returns).
* :class:`Agent`: the common part of the agent interface: the network, the agent's own
  ``torch.Generator``, ``policy`` (for ``RolloutCollector``), ``act_deterministic``, and the
  ``state_dict`` / ``load_state_dict`` pair that makes a resumed run identical to an
  uninterrupted one.

Randomness: the agent owns two streams, both seeded with ``seed``: a CPU generator used once
to initialize the network (orthogonal init) and ``agent.generator`` (on the agent's device),
which draws every action and every Fisher-pass sample. The generator's state is part of the
checkpoint, so a restored agent draws exactly what the original would have drawn.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from rlkit.envs import EnvSummary
from rlkit.nets import ACTIVATIONS, ActorCritic
from rlkit.rollout import Rollout

__all__ = ["Config", "OnPolicyConfig", "Batch", "make_batch", "explained_variance", "Agent", "check",
           "RENAMED_DIAGNOSTICS"]

AGENT_STATE_FORMAT = 1  # an agent state_dict's "format" (the checkpoint file's own: rlkit.experiments.runs)

# Diagnostics (updates.csv columns) renamed in December 2026, by algorithm: {old name: name}. Run
# directories written before keep the old names in updates.csv; rlkit.experiments.runs reads them
# through this table, and resuming such a run renames its header in place.
RENAMED_DIAGNOSTICS: dict[str, dict[str, str]] = {
    "acktr": {"eta": "step_size", "eta_capped": "step_size_capped", "critic_eta": "critic_step_size"},
    "trpo": {"eta": "step_size"},
    "vmpo": {"eta": "temperature"},
}


# ----------------------------------------------------------------------------- configs


def check(condition: bool, name: str, value: Any, valid: str) -> None:
    """Raise ``ValueError("{name} must be {valid}; got {value!r}")`` unless ``condition``."""
    if not condition:
        raise ValueError(f"{name} must be {valid}; got {value!r}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _coerce(name: str, kind: Any, value: Any) -> Any:
    """Convert ``value`` (maybe a command-line string) to the field type ``kind``."""
    try:
        if kind is bool:
            words = {"true": True, "1": True, "yes": True, "on": True,
                     "false": False, "0": False, "no": False, "off": False}
            if isinstance(value, str) and value.strip().lower() in words:
                return words[value.strip().lower()]
            if isinstance(value, bool) or (_is_int(value) and value in (0, 1)):
                return bool(value)
        elif kind is int:
            if isinstance(value, str):
                value = float(value) if any(c in value for c in ".eE") else int(value)
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if _is_int(value):
                return value
        elif kind is float:
            if isinstance(value, str):
                return float(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        elif kind is str:
            if isinstance(value, str):
                return value
        elif typing.get_origin(kind) is list:
            if isinstance(value, str):
                value = [v for v in value.replace("[", "").replace("]", "").replace(" ", "").split(",") if v]
            elif _is_int(value):
                value = [value]
            if isinstance(value, (list, tuple)):
                return [_coerce(name, int, v) for v in value]
    except (TypeError, ValueError):
        pass
    type_name = getattr(kind, "__name__", str(kind))
    raise ValueError(f"{name} must be of type {type_name}; got {value!r}")


@dataclass
class Config:
    """Base of the agents' configs (subclasses are ``@dataclass``\\ es with defaults)."""

    # The alias table: config keys renamed in December 2026, {old name: name}. A config.json written
    # before still loads (from_dict and rlkit.experiments.runs.read_config read the old key as the new).
    RENAMED: ClassVar[dict[str, str]] = {"lam": "gae_lambda", "initial_eta": "initial_temperature"}
    # The widest values any field takes (a field's own check may be narrower): beyond them a run
    # overflows float32 or runs out of memory long before it teaches anything.
    FLOAT_LIMIT: ClassVar[float] = 1e6
    INT_LIMIT: ClassVar[int] = 10**9

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # a tuple given for a list field (hidden_sizes=(64, 64)) becomes a list
            if typing.get_origin(hints[f.name]) is list and isinstance(getattr(self, f.name), tuple):
                setattr(self, f.name, list(getattr(self, f.name)))

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def current_names(cls, values: dict) -> dict:
        """``values`` (a config dict, maybe from an old config.json) with old keys renamed by
        :attr:`RENAMED`, in the same order; a ``ValueError`` if a key is given under both names."""
        out = {}
        for key, value in values.items():
            name = cls.RENAMED.get(key, key)
            if name in out:
                raise ValueError(f"{name} is given twice ({key!r} is its old name); give it once, as {name}")
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, overrides: dict | None = None, base: "Config | None" = None) -> "Config":
        """A config with ``overrides`` applied to ``base`` (default: the dataclass defaults).

        Values are converted to each field's type (``"0.01"`` → 0.01, ``"64,64"`` → [64, 64],
        ``"true"`` → True); a value of None means "not given" (an unset command-line flag) and
        is skipped; ``eta-max`` is read as ``eta_max``; an old name (:attr:`RENAMED`) as today's.
        An unknown key raises ``ValueError`` listing the valid ones. The result is not validated:
        call ``validate()`` (agents do).
        """
        overrides = cls.current_names({str(k).replace("-", "_"): v for k, v in (overrides or {}).items()})
        valid = cls.field_names()
        unknown = sorted(set(overrides) - set(valid))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} parameter(s) {unknown}; valid parameters: {', '.join(valid)}")
        hints = typing.get_type_hints(cls)
        values = dataclasses.asdict(base) if base is not None else {}
        values.update({k: _coerce(k, hints[k], v) for k, v in overrides.items() if v is not None})
        return cls(**values)

    def validate(self) -> "Config":
        """Check every field (types and ranges); raise ``ValueError`` naming the first bad one."""
        hints = typing.get_type_hints(type(self))
        for name in self.field_names():
            value, kind = getattr(self, name), hints[name]
            if kind is float:
                check(_is_real(value), name, value, "a finite number")
                check(abs(value) <= self.FLOAT_LIMIT, name, value,
                      f"a number in [-{self.FLOAT_LIMIT:g}, {self.FLOAT_LIMIT:g}]")
            elif kind is int:
                check(_is_int(value), name, value, "an integer")
                check(abs(value) <= self.INT_LIMIT, name, value, f"an integer in [-{self.INT_LIMIT:g}, {self.INT_LIMIT:g}]")
            elif kind is bool:
                check(isinstance(value, bool), name, value, "True or False")
            elif kind is str:
                check(isinstance(value, str), name, value, "a string")
        return self


MAX_NUM_ENVS = 4096  # sub-envs of one process
MAX_BATCH = 10**7  # transitions in one rollout (num_envs × num_steps)
MAX_WIDTH = 2**16  # units in one hidden layer


@dataclass
class OnPolicyConfig(Config):
    """The hyperparameters A2C, ACKTR, TRPO and V-MPO share, with their common defaults.

    An agent's config subclasses this, declares only its own fields, and re-declares a shared
    field only where its default differs; its ``validate`` calls ``super().validate()`` first.
    """

    # rollout: a batch is num_envs × num_steps transitions
    num_envs: int = 16
    num_steps: int = 16
    gamma: float = 0.99
    gae_lambda: float = 1.0  # GAE's λ; 1 = the k-step (n-step) bootstrapped returns of A3C, ACKTR and V-MPO
    # networks (rlkit.nets.ActorCritic)
    shared_trunk: bool = False
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"
    log_std_init: float = 0.0  # initial log-std of a Gaussian policy
    # losses
    entropy_coef: float = 0.0  # c_H: the entropy bonus −c_H·mean H[π]

    def validate(self) -> "OnPolicyConfig":
        super().validate()
        check(1 <= self.num_envs <= MAX_NUM_ENVS, "num_envs", self.num_envs, f"an integer in [1, {MAX_NUM_ENVS}]")
        check(1 <= self.num_steps <= MAX_BATCH, "num_steps", self.num_steps, f"an integer in [1, {MAX_BATCH}]")
        check(self.num_envs * self.num_steps <= MAX_BATCH, "num_steps", self.num_steps,
              f"such that num_envs × num_steps <= {MAX_BATCH} (num_envs = {self.num_envs}; a rollout must fit in memory)")
        check(0 < self.gamma <= 1, "gamma", self.gamma, "in (0, 1]")
        check(0 <= self.gae_lambda <= 1, "gae_lambda", self.gae_lambda, "in [0, 1]")
        hs = self.hidden_sizes
        check(isinstance(hs, list) and len(hs) <= 64 and all(_is_int(h) and 1 <= h <= MAX_WIDTH for h in hs),
              "hidden_sizes", hs, f"a list of at most 64 integers in [1, {MAX_WIDTH}] (e.g. [64, 64])")
        check(-20 <= self.log_std_init <= 20, "log_std_init", self.log_std_init,
              "in [-20, 20] (the initial std is exp(log_std_init))")
        check(self.activation in ACTIVATIONS, "activation", self.activation, f"one of {sorted(ACTIVATIONS)}")
        check(self.entropy_coef >= 0, "entropy_coef", self.entropy_coef, ">= 0 (valid range [0, inf))")
        return self


# ----------------------------------------------------------------------------- the batch


@dataclass
class Batch:
    """The valid transitions of a rollout, flattened to M rows (M = number of valid steps)."""

    obs: Tensor  # (M, *obs_shape)
    actions: Tensor  # (M,) or (M, D)
    log_probs: Tensor  # (M,) log π_old(a|s), from collection
    values: Tensor  # (M,) V_old(s), from collection
    advantages: Tensor  # (M,) GAE(λ), standardized if asked
    returns: Tensor  # (M,) value targets: raw advantages + V_old (the λ-return)

    @property
    def size(self) -> int:
        return self.returns.shape[0]


def make_batch(rollout: Rollout, gamma: float, gae_lambda: float, normalize_advantages: bool) -> Batch:
    """GAE(λ) advantages and λ-returns on the valid steps (reset steps of NEXT_STEP are dropped).

    λ = 1 gives the k-step bootstrapped advantage of A3C/ACKTR (see ``rlkit.rollout``).
    ``normalize_advantages``: (A − mean) / (std + 1e-8) over the batch (after the targets are
    formed, so the value targets stay in reward units).
    """
    advantages = rollout.gae(gamma, gae_lambda)
    returns = advantages + rollout.values
    valid = rollout.valid
    if not bool(valid.any()):
        raise ValueError("the rollout has no valid step to learn from (every step is a reset step)")
    adv = advantages[valid]
    if normalize_advantages and adv.numel() > 1:
        adv = (adv - adv.mean()) / (adv.std(unbiased=False) + 1e-8)
    return Batch(rollout.obs[valid], rollout.actions[valid], rollout.log_probs[valid], rollout.values[valid],
                 adv, returns[valid])


def explained_variance(prediction: Tensor, target: Tensor) -> float:
    """1 − Var[target − prediction] / Var[target].

    1: perfect; 0: no better than a constant; negative: worse; NaN if Var[target] = 0.
    """
    var = float(target.var(unbiased=False))
    if var == 0:
        return float("nan")
    return 1.0 - float((target - prediction).var(unbiased=False)) / var


# ----------------------------------------------------------------------------- the agent


class Agent:
    """The shared part of an agent (see ``rlkit.agents`` for the whole interface).

    Subclasses set ``name``, ``Config``, ``presets``, ``supported_action_kinds``, build their
    optimizers in ``__init__`` after ``super().__init__`` and implement ``update``. They extend
    ``state_dict`` / ``load_state_dict`` with their own state (optimizers, K-FAC).
    """

    name: ClassVar[str] = "agent"
    Config: ClassVar[type[Config]] = Config
    presets: ClassVar[dict[str, dict]] = {}
    supported_action_kinds: ClassVar[tuple[str, ...]] = ("discrete", "continuous")

    def __init__(self, env_summary: EnvSummary, config: Config, *, seed: int, device: str | torch.device = "cpu"):
        if not isinstance(config, self.Config):
            raise TypeError(f"{self.name} needs a {self.Config.__name__}; got {type(config).__name__}")
        config.validate()
        env_summary.require_action_kind(self.name, self.supported_action_kinds)
        if not _is_int(seed):
            raise ValueError(f"seed must be an integer; got {seed!r}")
        self.config, self.env_summary, self.seed = config, env_summary, seed
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.model = ActorCritic(
            env_summary.obs_shape, env_summary.action_kind, env_summary.action_size,
            hidden_sizes=config.hidden_sizes, shared_trunk=config.shared_trunk, activation=config.activation,
            log_std_init=config.log_std_init, generator=torch.Generator().manual_seed(seed),
        ).to(self.device)
        self.updates = 0  # learner updates done so far

    # ---- acting -------------------------------------------------------------------------

    def acting(self) -> typing.ContextManager[None]:
        """Context for collecting a rollout with :meth:`policy` (``rlkit.experiments.train`` enters it around
        ``collector.collect``): agents that keep training-only machinery on the model (ACKTR's K-FAC
        hooks) switch it off there. Here: nothing."""
        return contextlib.nullcontext()

    @torch.no_grad()
    def policy(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(actions, log π(actions|obs), V(obs)), actions sampled with the agent's generator."""
        pd_params, values = self.model(obs)
        actions = self.model.policy_head.sample(pd_params, self.generator)
        return actions, self.model.distribution(pd_params).log_prob(actions), values

    @torch.no_grad()
    def act_deterministic(self, obs: Tensor) -> Tensor:
        """The most likely action (argmax of the logits, or the Gaussian mean), for evaluation."""
        return self.model.policy_head.mode(self.model.pd_params(obs))

    def update(self, rollout: Rollout) -> dict[str, float]:
        raise NotImplementedError

    # ---- helpers for update ---------------------------------------------------------------

    def batch(self, rollout: Rollout) -> Batch:
        c = self.config
        return make_batch(rollout, c.gamma, c.gae_lambda, c.normalize_advantages)

    @staticmethod
    def clock() -> float:
        return time.perf_counter()

    # ---- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything needed to continue identically (a deep copy, safe to keep or save)."""
        s = self.env_summary
        return copy.deepcopy({
            "format": AGENT_STATE_FORMAT,
            "algorithm": self.name,
            "config": dataclasses.asdict(self.config),
            "env": {"obs_shape": list(s.obs_shape), "action_kind": s.action_kind, "action_size": s.action_size},
            "updates": self.updates,
            "generator": self.generator.get_state(),
            "model": self.model.state_dict(),
            **self.extra_state(),
        })

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict``; refuse (``ValueError``) one from another algorithm or network."""
        if not isinstance(state, dict) or "algorithm" not in state:
            raise ValueError(f"not a {self.name} agent state (a dict with an 'algorithm' key was expected)")
        if state["algorithm"] != self.name:
            raise ValueError(f"the state is of a {state['algorithm']!r} agent, this agent is {self.name!r}")
        if state.get("format") != AGENT_STATE_FORMAT:
            raise ValueError(f"unsupported agent state format {state.get('format')!r} (expected {AGENT_STATE_FORMAT})")
        s = self.env_summary
        here = {"obs_shape": list(s.obs_shape), "action_kind": s.action_kind, "action_size": s.action_size}
        if state.get("env") != here:
            raise ValueError(f"the state was made for observations/actions {state.get('env')}, this agent has {here}")
        config = state.get("config", {})
        for key in ("shared_trunk", "hidden_sizes", "activation"):
            if config.get(key) != getattr(self.config, key):
                raise ValueError(f"the state's network has {key}={config.get(key)!r}, this agent's has "
                                 f"{getattr(self.config, key)!r}")
        try:
            self.model.load_state_dict(state["model"])
            self.load_extra_state(state)
            self.generator.set_state(state["generator"].clone())
            self.updates = int(state["updates"])
        except (KeyError, RuntimeError, TypeError, ValueError, IndexError) as error:
            raise ValueError(f"incompatible or corrupt {self.name} agent state: {error}") from error

    def extra_state(self) -> dict:
        """Subclasses: their own state (optimizers, K-FAC), merged into ``state_dict``."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Subclasses: restore what ``extra_state`` saved."""
