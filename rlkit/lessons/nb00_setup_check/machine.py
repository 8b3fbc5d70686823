"""Is this machine ready for the kit? The functions behind ``notebooks/00_setup_check.ipynb``.

``check_dependencies()`` imports every dependency and reports its version or what to install;
``describe_env(env_id)`` makes a gymnasium environment and summarizes its spaces, or raises an
error that says which package provides a missing environment family.
"""
from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass

# The env-id provider logic lives with the env factories; re-exported here for notebook 00.
from rlkit.envs import ENV_FAMILY_PROVIDERS, make_env, provider_of  # noqa: F401

# (import name, distribution name on PyPI, why the kit needs it)
DEPENDENCIES = (
    ("numpy", "numpy", "arrays"),
    ("torch", "torch", "networks, autograd, torch.func for exact Fishers"),
    ("gymnasium", "gymnasium", "environments"),
    ("mujoco", "mujoco", "MuJoCo physics (gymnasium[mujoco])"),
    ("imageio", "imageio", "MuJoCo v5 environments and videos (gymnasium[mujoco])"),
    ("ale_py", "ale-py", "Atari environments, ROMs included"),
    ("cv2", "opencv-python-headless", "Atari frame resizing (gymnasium's AtariPreprocessing)"),
    ("matplotlib", "matplotlib", "plots"),
    ("ipywidgets", "ipywidgets", "sliders in the notebooks"),
    ("jupyterlab", "jupyterlab", "the notebook interface"),
    ("tqdm", "tqdm", "progress bars"),
)

INSTALL_HINT = "run `python3 kit.py lab` from the repository (it installs the pinned versions), or `pip install {distribution}`"


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
