"""Vectorized gymnasium environments for the agents: one factory for every family.

``make_vec_env(env_id, num_envs)`` returns a gymnasium ``SyncVectorEnv`` wrapped for its family
(``classic_control``, ``mujoco``, ``atari``, or any other registered id, wrapped for none);
``reset_with_seed`` seeds it; ``make_env`` makes one unwrapped env, and an unknown id raises an
error naming the package that provides it.

Conventions:

* every sub-env records the raw return and length of each real episode
  (``RecordEpisodeStatistics``, below any reward clipping or life-loss signal; for Atari the
  whole game); ``rlkit.rollout.RolloutCollector`` logs those;
* continuous actions are clipped by the env (``ClipAction``): the policy's unclipped sample is
  what its log-probability is of;
* MuJoCo observations are normalized by running statistics (vector ``NormalizeObservation``);
* Atari: ``AtariPreprocessing`` (84×84 grayscale, frame skip 4), for training only life loss as
  terminal and sign-clipped rewards, then 4 stacked frames: (N, 4, 84, 84) uint8. ``ALE/*-v5``
  has sticky actions (p 0.25); the legacy ``PongNoFrameskip-v4`` (the ACKTR paper's) has none;
* autoreset NEXT_STEP, set explicitly: the step after an episode end resets that sub-env and
  returns its first observation with reward 0; ``rlkit.rollout`` marks that step invalid;
* seeding: sub-env i is reset with ``seed + i``; the same seed gives the same observations.

Each family's wrappers, and why NEXT_STEP: docs/plumbing.md, *rlkit.envs*.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Iterable

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import ClipAction, NormalizeObservation

# The autoreset mode of every vector env this module makes (why: docs/plumbing.md, rlkit.envs).
AUTORESET_MODE = AutoresetMode.NEXT_STEP

CLASSIC_CONTROL_IDS = ("CartPole-v1", "Acrobot-v1", "Pendulum-v1")
MUJOCO_IDS = (
    "InvertedPendulum-v5",
    "InvertedDoublePendulum-v5",
    "Reacher-v5",
    "HalfCheetah-v5",
    "Hopper-v5",
    "Walker2d-v5",
    "Swimmer-v5",
    "Ant-v5",
)
ATARI_FRAME_STACK = 4
ATARI_FRAME_SKIP = 4
ATARI_SCREEN_SIZE = 84
ATARI_NOOP_MAX = 30

# Which package provides which family of environment ids (for error messages).
ENV_FAMILY_PROVIDERS = (
    ("ALE/", "ale-py (pip install ale-py)"),
    ("v5", "MuJoCo: gymnasium[mujoco] (pip install 'gymnasium[mujoco]')"),
)
OPENCV_HINT = "pip install opencv-python-headless (or gymnasium[other])"


class UnknownEnvError(RuntimeError):
    """An env id that is not registered, or whose provider is not installed."""


def provider_of(env_id: str) -> str:
    """The package that provides ``env_id``'s family, for error messages."""
    for marker, provider in ENV_FAMILY_PROVIDERS:
        if env_id.startswith(marker) or (marker == "v5" and env_id.endswith("-v5")):
            return provider
    return "gymnasium (pip install gymnasium)"


def _unknown(env_id: str, error: Exception) -> UnknownEnvError:
    return UnknownEnvError(f"cannot make env_id={env_id!r}: {error}. It is provided by {provider_of(env_id)}.")


def registered_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """gymnasium's registry entry for ``env_id`` (registering Atari first), or an error naming its provider.

    Besides the ``ALE/*-v5`` ids, ale-py registers the legacy ids of the ACKTR paper's era, e.g.
    ``PongNoFrameskip-v4``: the same game without v5's sticky actions (``repeat_action_probability``
    0 instead of 0.25), as openai/baselines trained it.
    """
    try:
        if env_id.startswith("ALE/") or env_id not in gym.registry:
            try:
                import ale_py  # registers the ALE/ and legacy Atari ids with gymnasium
            except ImportError:
                if env_id.startswith("ALE/"):
                    raise
            else:
                gym.register_envs(ale_py)
        return gym.spec(env_id)
    except (gym.error.Error, ImportError) as error:
        raise _unknown(env_id, error) from error


class HeadlessGLError(RuntimeError):
    """No off-screen OpenGL backend renders MuJoCo on this machine; the message says what to install."""


# Off-screen OpenGL backends MuJoCo can render with, tried in this order where no display is set.
MUJOCO_GL_BACKENDS = ("egl", "osmesa")
MUJOCO_GL_HINT = (
    "MuJoCo cannot render off-screen here: neither EGL nor OSMesa works. Install one "
    "(Debian/Ubuntu: apt-get install libegl1 (EGL, with a GPU driver or Mesa), or libosmesa6 and "
    "pip install PyOpenGL (OSMesa)), or set MUJOCO_GL to a backend that works (egl, osmesa, glfw with a display)"
)
_MUJOCO_GL_PROBE = (
    "import mujoco; mujoco.Renderer(mujoco.MjModel.from_xml_string('<mujoco/>'), 8, 8).render()"
)
_RENDER_MODES = ("rgb_array", "depth_array", "rgbd_tuple")


def headless_gl() -> str | None:
    """Pick MuJoCo's OpenGL backend for rendering without a display; returns ``MUJOCO_GL``.

    Where ``MUJOCO_GL`` is set, or a display is (``DISPLAY``/``WAYLAND_DISPLAY``), or the platform is
    macOS or Windows, nothing changes. Otherwise each backend of ``MUJOCO_GL_BACKENDS`` is tried in a
    child process (a failed OpenGL import cannot be undone in this one) and the first that renders
    is set in ``os.environ`` (``MUJOCO_GL`` and ``PYOPENGL_PLATFORM``), before MuJoCo is imported.
    None works: ``HeadlessGLError`` naming what to install. Must run before ``import mujoco``.
    """
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform in ("darwin", "win32"):
        return None
    for backend in MUJOCO_GL_BACKENDS:
        env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
        try:
            probe = subprocess.run([sys.executable, "-c", _MUJOCO_GL_PROBE], env=env, capture_output=True,
                                   timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
    raise HeadlessGLError(MUJOCO_GL_HINT)


def _prepare_rendering(spec: gym.envs.registration.EnvSpec, kwargs: dict) -> None:
    if kwargs.get("render_mode") in _RENDER_MODES and family_of(spec) == "mujoco":
        headless_gl()


def make_env(env_id: str, **kwargs) -> gym.Env:
    """A single ``gymnasium.make`` env (no rlkit wrappers), with an error that says what to install."""
    spec = registered_spec(env_id)
    _prepare_rendering(spec, kwargs)
    try:
        return gym.make(env_id, **kwargs)
    except (gym.error.Error, ImportError) as error:
        raise _unknown(env_id, error) from error


def family_of(spec: gym.envs.registration.EnvSpec) -> str:
    """``"atari"``, ``"mujoco"``, ``"classic_control"`` or ``"other"``, from the registry entry."""
    entry_point = spec.entry_point if isinstance(spec.entry_point, str) else ""
    if spec.id.startswith("ALE/") or entry_point.startswith("ale_py"):
        return "atari"
    if entry_point.startswith("gymnasium.envs.mujoco"):
        return "mujoco"
    if entry_point.startswith("gymnasium.envs.classic_control"):
        return "classic_control"
    return "other"


# ----------------------------------------------------------------------------- Atari


class LifeLossTerminal(gym.Wrapper):
    """Training only: losing a life ends the *training* episode, while the game goes on.

    gymnasium's ``AtariPreprocessing(terminal_on_life_loss=True)`` is not used because the vector
    env's autoreset answers its life-loss ``terminated`` with ``reset()``, which restarts the whole
    game: the agent would never play past its first life. Here, the ``reset()`` that follows a life
    loss returns the last observation and leaves the emulator alone, so the game an agent plays is
    the same as without this wrapper; any other reset (first, after game over, seeded) is real.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.life_lost = False  # True right after a step that lost a life without ending the game
        self.last_obs = None

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = self.env.unwrapped.ale.lives()
        self.life_lost = 0 < lives < self.lives and not (terminated or truncated)
        self.lives, self.last_obs = lives, obs
        return obs, reward, terminated or self.life_lost, truncated, info

    def reset(self, *, seed=None, options=None):
        if self.life_lost and seed is None and options is None:
            self.life_lost = False
            return self.last_obs, {}
        obs, info = self.env.reset(seed=seed, options=options)
        self.lives, self.life_lost, self.last_obs = self.env.unwrapped.ale.lives(), False, obs
        return obs, info


def _require_opencv() -> None:
    try:
        import cv2  # noqa: F401  (AtariPreprocessing resizes frames with OpenCV)
    except ImportError as error:
        raise UnknownEnvError(f"Atari preprocessing (gymnasium AtariPreprocessing) needs OpenCV: {OPENCV_HINT}") from error


def atari_wrappers(env: gym.Env, training: bool) -> gym.Env:
    """The per-game stack, innermost first; statistics sit below clipping and life loss (raw game returns)."""
    env = gym.wrappers.AtariPreprocessing(
        env,
        noop_max=ATARI_NOOP_MAX,
        frame_skip=ATARI_FRAME_SKIP,
        screen_size=ATARI_SCREEN_SIZE,
        terminal_on_life_loss=False,  # see LifeLossTerminal
        grayscale_obs=True,
    )
    env = gym.wrappers.RecordEpisodeStatistics(env)
    if training:
        env = LifeLossTerminal(env)
        env = gym.wrappers.TransformReward(env, np.sign)
    return gym.wrappers.FrameStackObservation(env, ATARI_FRAME_STACK)


# ----------------------------------------------------------------------------- factory


def make_vec_env(
    env_id: str,
    num_envs: int = 1,
    *,
    training: bool = True,
    normalize_obs: bool | None = None,
    **env_kwargs,
) -> gym.vector.VectorEnv:
    """A ``SyncVectorEnv`` of ``num_envs`` copies of ``env_id`` in NEXT_STEP autoreset mode.

    ``training=False`` makes an evaluation env: Atari keeps whole games and raw rewards, and
    observation normalization is frozen (restore its statistics with ``load_obs_norm_state``).
    ``normalize_obs`` defaults to True for MuJoCo, False otherwise. ``env_kwargs`` go to
    ``gymnasium.make`` (for Atari, e.g. ``repeat_action_probability``; v5's default is 0.25).
    """
    spec = registered_spec(env_id)
    family = family_of(spec)
    _prepare_rendering(spec, env_kwargs)
    if family == "atari":
        _require_opencv()
        env_kwargs = {"frameskip": 1, **env_kwargs}  # AtariPreprocessing does the frame skipping
        wrappers = [lambda env: atari_wrappers(env, training)]
    else:
        wrappers = [gym.wrappers.RecordEpisodeStatistics]
    try:
        envs = gym.make_vec(
            env_id,
            num_envs,
            vectorization_mode="sync",  # also for ids with a vector_entry_point (CartPole, ALE)
            vector_kwargs={"autoreset_mode": AUTORESET_MODE},
            wrappers=wrappers,
            **env_kwargs,
        )
    except (gym.error.Error, ImportError) as error:
        raise _unknown(env_id, error) from error
    if isinstance(envs.single_action_space, gym.spaces.Box):
        envs = ClipAction(envs)
    if normalize_obs is None:
        normalize_obs = family == "mujoco"
    if normalize_obs:
        envs = NormalizeObservation(envs)
        envs.update_running_mean = training
    return envs


def reset_with_seed(envs: gym.vector.VectorEnv, seed: int | None) -> tuple[np.ndarray, dict]:
    """Reset sub-env i with seed ``seed + i`` and seed the action spaces the same way."""
    if seed is not None:
        envs.action_space.seed(seed)  # the batched space, for envs.action_space.sample()
        for i, space in enumerate(envs.unwrapped.get_attr("action_space")):
            space.seed(seed + i)
    return envs.reset(seed=seed)


# ----------------------------------------------------------------------------- observation normalization


def obs_normalizer(envs: gym.vector.VectorEnv) -> NormalizeObservation | None:
    """The ``NormalizeObservation`` wrapper in ``envs``' wrapper chain, or None."""
    while isinstance(envs, gym.vector.VectorWrapper):
        if isinstance(envs, NormalizeObservation):
            return envs
        envs = envs.env
    return None


def obs_norm_state(envs: gym.vector.VectorEnv) -> dict | None:
    """A copy of the running statistics ``{"mean", "var", "count"}`` for a checkpoint (None if not normalized)."""
    normalizer = obs_normalizer(envs)
    if normalizer is None:
        return None
    rms = normalizer.obs_rms
    return {"mean": np.array(rms.mean, copy=True), "var": np.array(rms.var, copy=True), "count": float(rms.count)}


def load_obs_norm_state(envs: gym.vector.VectorEnv, state: dict | None) -> None:
    """Restore statistics saved by ``obs_norm_state``; refuse a state that does not fit ``envs``."""
    normalizer = obs_normalizer(envs)
    if (normalizer is None) != (state is None):
        raise ValueError(f"observation-normalization state {'given' if state is not None else 'missing'} "
                         f"but the env {'does not normalize' if normalizer is None else 'normalizes'} observations")
    if state is None:
        return
    rms = normalizer.obs_rms
    for key in ("mean", "var"):
        if np.shape(state[key]) != rms.mean.shape:
            raise ValueError(f"observation-normalization {key} has shape {np.shape(state[key])}, the env's is {rms.mean.shape}")
    rms.mean, rms.var = np.array(state["mean"], copy=True), np.array(state["var"], copy=True)
    rms.count = float(state["count"])


def freeze_obs_norm(envs: gym.vector.VectorEnv, frozen: bool = True) -> None:
    """Stop (or resume) updating the normalization statistics, e.g. while evaluating."""
    normalizer = obs_normalizer(envs)
    if normalizer is not None:
        normalizer.update_running_mean = not frozen


# ----------------------------------------------------------------------------- what an agent needs to know


@dataclass(frozen=True)
class EnvSummary:
    """What an agent needs to build its networks, read from a vector env made here.

    ``action_kind`` is ``"discrete"`` (``action_size`` actions), ``"continuous"`` (a box of
    ``action_size`` dimensions between ``action_low`` and ``action_high``), or the space's class
    name for anything else. (Not gymnasium's ``EnvSpec``, which is a registry entry.)
    """

    env_id: str
    family: str
    action_kind: str
    action_size: int
    action_space: str
    obs_shape: tuple[int, ...]
    obs_dtype: str
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None

    @classmethod
    def of(cls, envs: gym.vector.VectorEnv) -> "EnvSummary":
        spec = envs.unwrapped.spec
        action_space = envs.unwrapped.single_action_space  # the true bounds, before ClipAction
        observation_space = envs.single_observation_space  # after normalization and frame stacking
        common = dict(env_id=spec.id, family=family_of(spec), action_space=str(action_space),
                      obs_shape=tuple(observation_space.shape), obs_dtype=str(observation_space.dtype))
        if isinstance(action_space, gym.spaces.Discrete):
            return cls(action_kind="discrete", action_size=int(action_space.n), **common)
        if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
            return cls(action_kind="continuous", action_size=int(action_space.shape[0]),
                       action_low=tuple(map(float, action_space.low)), action_high=tuple(map(float, action_space.high)), **common)
        return cls(action_kind=type(action_space).__name__, action_size=0, **common)

    def require_action_kind(self, algorithm: str, supported: Iterable[str]) -> None:
        """Raise ``ValueError`` unless this env's action space is one ``algorithm`` supports."""
        supported = tuple(supported)
        if self.action_kind not in supported:
            raise ValueError(f"{algorithm} does not support the {self.action_kind} action space {self.action_space} "
                             f"of {self.env_id}; it supports {' and '.join(supported)} action spaces")
