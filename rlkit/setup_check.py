"""Is this machine ready for the kit? The functions behind ``notebooks/00_setup_check.ipynb``.

``check_dependencies()`` imports every dependency and reports its version or what to install;
``describe_env(env_id)`` makes a gymnasium environment and summarizes its spaces, or raises an
error that says which package provides a missing environment family.
"""
from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass

import gymnasium as gym

# (import name, distribution name on PyPI, why the kit needs it)
DEPENDENCIES = (
    ("numpy", "numpy", "arrays"),
    ("torch", "torch", "networks, autograd, torch.func for exact Fishers"),
    ("gymnasium", "gymnasium", "environments"),
    ("mujoco", "mujoco", "MuJoCo physics (gymnasium[mujoco])"),
    ("imageio", "imageio", "MuJoCo v5 environments and videos (gymnasium[mujoco])"),
    ("ale_py", "ale-py", "Atari environments, ROMs included"),
    ("matplotlib", "matplotlib", "plots"),
    ("ipywidgets", "ipywidgets", "sliders in the notebooks"),
    ("jupyterlab", "jupyterlab", "the notebook interface"),
    ("tqdm", "tqdm", "progress bars"),
)

INSTALL_HINT = "run `python3 kit.py lab` from the repository (it installs the pinned versions), or `pip install {distribution}`"

# Which package provides which family of environment ids.
ENV_FAMILY_PROVIDERS = (
    ("ALE/", "ale-py (pip install ale-py)"),
    ("v5", "MuJoCo: gymnasium[mujoco] (pip install 'gymnasium[mujoco]')"),
)


@dataclass(frozen=True)
class DependencyStatus:
    module: str
    distribution: str
    purpose: str
    version: str | None  # None when the import failed
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.version is not None

    def line(self) -> str:
        if self.ok:
            return f"ok       {self.distribution:<12} {self.version:<14} {self.purpose}"
        hint = INSTALL_HINT.format(distribution=self.distribution)
        return f"MISSING  {self.distribution:<12} {'-':<14} {self.purpose}\n         {self.problem}\n         fix: {hint}"


def check_dependencies() -> list[DependencyStatus]:
    """Import every runtime dependency; report its installed version or why it failed."""
    statuses = []
    for module, distribution, purpose in DEPENDENCIES:
        try:
            importlib.import_module(module)
            version = importlib.metadata.version(distribution)
            statuses.append(DependencyStatus(module, distribution, purpose, version))
        except Exception as error:  # an import can fail in many ways; report them all the same
            statuses.append(DependencyStatus(module, distribution, purpose, None, f"{type(error).__name__}: {error}"))
    return statuses


def provider_of(env_id: str) -> str:
    """The package that provides ``env_id``'s family, for error messages."""
    for marker, provider in ENV_FAMILY_PROVIDERS:
        if env_id.startswith(marker) or (marker == "v5" and env_id.endswith("-v5")):
            return provider
    return "gymnasium (pip install gymnasium)"


def make_env(env_id: str, **kwargs) -> gym.Env:
    """``gymnasium.make`` with Atari registered and an error that says what to install."""
    if env_id.startswith("ALE/"):
        import ale_py  # registers the ALE/ ids with gymnasium

        gym.register_envs(ale_py)
    try:
        return gym.make(env_id, **kwargs)
    except (gym.error.Error, ImportError, ModuleNotFoundError) as error:
        raise RuntimeError(f"cannot make env_id={env_id!r}: {error}. It is provided by {provider_of(env_id)}.") from error


def describe_env(env_id: str, seed: int = 0) -> dict[str, str]:
    """Make ``env_id``, reset it with ``seed`` and summarize its spaces and first observation."""
    env = make_env(env_id)
    try:
        observation, _ = env.reset(seed=seed)
        return {
            "env_id": env_id,
            "observation_space": str(env.observation_space),
            "action_space": str(env.action_space),
            "first_observation_shape": str(tuple(observation.shape)),
        }
    finally:
        env.close()
