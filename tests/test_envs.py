"""The env factories: documented shapes, seeding, observation-normalization state, errors, and Atari returns."""
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlkit.envs import (
    EnvSummary,
    UnknownEnvError,
    freeze_obs_norm,
    load_obs_norm_state,
    make_vec_env,
    obs_norm_state,
    reset_with_seed,
)
from rlkit.rollout import RolloutCollector


def random_steps(envs, seed, steps):
    """Observations of ``steps`` random steps after ``reset_with_seed`` (actions from the seeded space)."""
    obs, _ = reset_with_seed(envs, seed)
    history = [obs]
    for _ in range(steps):
        history.append(envs.step(envs.action_space.sample())[0])
    envs.close()
    return np.stack(history)


@pytest.mark.parametrize(
    "env_id, obs_shape, action_kind, action_size, bounds",
    [
        ("CartPole-v1", (4,), "discrete", 2, None),
        ("Acrobot-v1", (6,), "discrete", 3, None),
        ("Pendulum-v1", (3,), "continuous", 1, ((-2.0,), (2.0,))),
        ("InvertedPendulum-v5", (4,), "continuous", 1, ((-3.0,), (3.0,))),
    ],
)
def test_vector_factories_give_the_documented_shapes(env_id, obs_shape, action_kind, action_size, bounds):
    envs = make_vec_env(env_id, 3)
    summary = EnvSummary.of(envs)
    assert (summary.env_id, summary.obs_shape, summary.obs_dtype) == (env_id, obs_shape, "float32")
    assert (summary.action_kind, summary.action_size) == (action_kind, action_size)
    assert (summary.action_low, summary.action_high) == (bounds or (None, None))
    assert summary.family == ("mujoco" if env_id.endswith("-v5") else "classic_control")
    observations = random_steps(envs, seed=0, steps=2)
    assert observations.shape == (3, 3, *obs_shape) and observations.dtype == np.float32


def test_pong_gives_stacked_84x84_uint8_frames():
    envs = make_vec_env("ALE/Pong-v5", 2)
    summary = EnvSummary.of(envs)
    assert (summary.family, summary.action_kind, summary.action_size) == ("atari", "discrete", 6)
    assert summary.obs_shape == (4, 84, 84) and summary.obs_dtype == "uint8"
    observations = random_steps(envs, seed=0, steps=3)
    assert observations.shape == (4, 2, 4, 84, 84) and observations.dtype == np.uint8


@pytest.mark.parametrize("env_id", ["CartPole-v1", "InvertedPendulum-v5", "ALE/Pong-v5"])
def test_the_same_seed_gives_identical_observations(env_id):
    first = random_steps(make_vec_env(env_id, 2), seed=7, steps=50)
    again = random_steps(make_vec_env(env_id, 2), seed=7, steps=50)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, random_steps(make_vec_env(env_id, 2), seed=8, steps=50))


def test_sub_env_i_is_seeded_with_seed_plus_i():
    pair, _ = reset_with_seed(make_vec_env("CartPole-v1", 2), 5)
    single, _ = reset_with_seed(make_vec_env("CartPole-v1", 1), 6)
    np.testing.assert_array_equal(pair[1], single[0])
    pair_envs, single_envs = make_vec_env("CartPole-v1", 2), make_vec_env("CartPole-v1", 1)
    reset_with_seed(pair_envs, 5)
    reset_with_seed(single_envs, 6)
    assert pair_envs.unwrapped.envs[1].action_space.sample() == single_envs.unwrapped.envs[0].action_space.sample()


# ----------------------------------------------------------------------------- observation normalization


def run_steps(envs, actions):
    return np.stack([envs.step(action)[0] for action in actions])


def test_obs_normalization_state_round_trips_into_a_new_env():
    trained = make_vec_env("InvertedPendulum-v5", 2)
    reset_with_seed(trained, 0)
    run_steps(trained, np.random.default_rng(0).uniform(-3, 3, (30, 2, 1)))
    state = obs_norm_state(trained)
    assert set(state) == {"mean", "var", "count"} and state["count"] == pytest.approx(1e-4 + 2 * 31)

    restored = make_vec_env("InvertedPendulum-v5", 2)
    load_obs_norm_state(restored, state)
    actions = np.random.default_rng(1).uniform(-3, 3, (20, 2, 1))
    # still updating: both continue from the same statistics, identically
    np.testing.assert_array_equal(reset_with_seed(trained, 3)[0], reset_with_seed(restored, 3)[0])
    np.testing.assert_array_equal(run_steps(trained, actions), run_steps(restored, actions))

    # evaluation: an env made with training=False uses the restored statistics and does not update them
    frozen_state = obs_norm_state(trained)
    evaluation = make_vec_env("InvertedPendulum-v5", 2, training=False)
    load_obs_norm_state(evaluation, frozen_state)
    freeze_obs_norm(trained)
    np.testing.assert_array_equal(reset_with_seed(trained, 4)[0], reset_with_seed(evaluation, 4)[0])
    np.testing.assert_array_equal(run_steps(trained, actions), run_steps(evaluation, actions))
    np.testing.assert_array_equal(obs_norm_state(evaluation)["mean"], frozen_state["mean"])
    assert obs_norm_state(evaluation)["count"] == frozen_state["count"]


def test_an_incompatible_normalization_state_is_refused():
    state = obs_norm_state(make_vec_env("InvertedPendulum-v5", 1))
    with pytest.raises(ValueError, match=r"mean has shape \(4,\), the env's is \(9,\)"):
        load_obs_norm_state(make_vec_env("InvertedDoublePendulum-v5", 1), state)
    with pytest.raises(ValueError, match="does not normalize"):
        load_obs_norm_state(make_vec_env("CartPole-v1", 1), state)
    assert obs_norm_state(make_vec_env("CartPole-v1", 1)) is None


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "env_id, provider",
    [("ALE/NotAGame-v5", "ale-py"), ("NotAnEnv-v5", "gymnasium[mujoco]"), ("NotAnEnv-v1", "gymnasium")],
)
def test_an_unknown_env_id_names_the_package_that_provides_its_family(env_id, provider):
    with pytest.raises(UnknownEnvError, match=rf"env_id='{env_id}'.*{provider.replace('[', '.').replace(']', '.')}"):
        make_vec_env(env_id, 1)


def test_the_paper_era_atari_ids_need_no_prior_registration_and_have_no_sticky_actions():
    """PongNoFrameskip-v4 (openai/baselines' env) is found in a fresh interpreter, is Atari, and repeats no action;
    ALE/Pong-v5 repeats the previous one with probability 0.25 (sticky actions)."""
    code = ("from rlkit.envs import make_vec_env\n"
            "for env_id in ('PongNoFrameskip-v4', 'ALE/Pong-v5'):\n"
            "    envs = make_vec_env(env_id, 1)\n"
            "    print(env_id, envs.single_observation_space.shape, "
            "envs.envs[0].unwrapped.ale.getFloat('repeat_action_probability'))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith(("Pong", "ALE"))]
    assert lines == ["PongNoFrameskip-v4 (4, 84, 84) 0.0", "ALE/Pong-v5 (4, 84, 84) 0.25"]


def test_atari_without_opencv_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` fail
    with pytest.raises(UnknownEnvError, match="opencv-python-headless"):
        make_vec_env("ALE/Pong-v5", 1)


def test_an_unsupported_action_space_is_refused_with_the_algorithm_named():
    summary = EnvSummary.of(make_vec_env("Pendulum-v1", 1))
    summary.require_action_kind("TRPO", ["discrete", "continuous"])
    with pytest.raises(ValueError, match=r"DQN does not support the continuous action space Box\(-2.0, 2.0, \(1,\), float32\) "
                                         r"of Pendulum-v1; it supports discrete action spaces"):
        summary.require_action_kind("DQN", ["discrete"])


# ----------------------------------------------------------------------------- Atari: clipped training rewards, raw game returns


class ScriptedGame(gym.Env):
    """A stand-in for ale_py's AtariEnv with a known script, put through the real Atari stack.

    The game clock advances one frame per non-NOOP frame (so the random no-ops at reset change
    nothing). Agent step k (4 frames) scores +3 if k is odd and −1 if even; a life is lost at the end
    of steps 5 and 10 and the game ends after step 15: the raw game return is 8·3 − 7 = 17.
    The screen shows the clock.
    """

    metadata = {"render_modes": []}

    def __init__(self, frameskip=1, **_):
        self._frameskip = frameskip
        self.observation_space = gym.spaces.Box(0, 255, (210, 160, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(2)
        self.ale = self  # AtariPreprocessing and LifeLossTerminal talk to env.unwrapped.ale

    def get_action_meanings(self):
        return ["NOOP", "FIRE"]

    def lives(self):
        return 3 - self.clock // 20

    def getScreenGrayscale(self, out):
        out.fill(self.clock)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.clock = 0
        return np.zeros(self.observation_space.shape, np.uint8), {}

    def step(self, action):
        if action == 0:
            return np.zeros(self.observation_space.shape, np.uint8), 0.0, False, False, {}
        self.clock += 1
        reward = {1: 3.0, 5: -1.0}.get(self.clock % 8, 0.0)
        return np.zeros(self.observation_space.shape, np.uint8), reward, self.clock == 60, False, {}


SCRIPTED_ID = "ALE/RlkitScriptedGame-v5"


def collect_scripted_game(training, num_steps):
    if SCRIPTED_ID not in gym.registry:
        make_vec_env("ALE/Pong-v5", 1).close()  # registers the ALE namespace first, as the factory would
        gym.register(SCRIPTED_ID, entry_point=ScriptedGame)
    collector = RolloutCollector(make_vec_env(SCRIPTED_ID, 1, training=training), num_steps, seed=0)
    fire = lambda obs: (torch.ones(1, dtype=torch.long), torch.zeros(1), torch.zeros(1))  # noqa: E731
    return collector.collect(fire)


def test_training_sees_clipped_rewards_and_lives_but_logs_the_raw_game():
    rollout = collect_scripted_game(training=True, num_steps=18)
    valid = rollout.valid[:, 0]
    assert torch.nonzero(~valid).flatten().tolist() == [5, 11, 17]  # after each life: a reset step
    assert torch.nonzero(rollout.terminated[:, 0]).flatten().tolist() == [4, 10, 16]  # life, life, game over
    odd_step_first = [1.0, -1.0, 1.0, -1.0, 1.0]
    expected_rewards = odd_step_first + [0.0] + [-r for r in odd_step_first] + [0.0] + odd_step_first + [0.0]
    assert rollout.rewards[:, 0].tolist() == expected_rewards
    assert [(e.episode_return, e.length) for e in rollout.episodes] == [(17.0, 15)]  # one whole game, raw
    # after a lost life the game goes on: the new training episode starts from the last frame (clock 20)
    assert (rollout.obs[6, 0] == 20).all()


def test_evaluation_plays_whole_games_with_raw_rewards():
    rollout = collect_scripted_game(training=False, num_steps=16)
    assert torch.nonzero(rollout.terminated[:, 0]).flatten().tolist() == [14]
    assert rollout.rewards[:15, 0].tolist() == [3.0, -1.0] * 7 + [3.0]
    assert [(e.episode_return, e.length) for e in rollout.episodes] == [(17.0, 15)]


def test_a_real_game_trained_with_life_loss_and_clipping_is_the_game_evaluation_plays():
    """SpaceInvaders (3 lives, rewards 5–30): play one game in an evaluation env, and the same game
    actions in a training env (with an extra ignored action at each reset step). Same seed, same game."""
    evaluation, training = (make_vec_env("ALE/SpaceInvaders-v5", 1, training=flag) for flag in (False, True))
    eval_obs, _ = reset_with_seed(evaluation, 0)
    train_obs, _ = reset_with_seed(training, 0)
    rng, raw_rewards, life_losses, logged = np.random.default_rng(0), [], 0, {}
    while True:
        action = rng.integers(6, size=1)
        eval_obs, raw, eval_over, eval_cut, eval_info = evaluation.step(action)
        train_obs, clipped, train_over, train_cut, train_info = training.step(action)
        # the same screen (the frame stacks differ for 3 steps after a life loss: training's restarts)
        np.testing.assert_array_equal(train_obs[:, -1], eval_obs[:, -1])
        assert clipped[0] == np.sign(raw[0])
        raw_rewards.append(raw[0])
        if eval_over[0] or eval_cut[0]:
            logged = {"eval": eval_info["episode"], "train": train_info["episode"]}
            break
        if train_over[0]:  # a life lost: the next step of the training env is its (ignored) reset step
            life_losses += 1
            reset_obs, reward, *_ = training.step(rng.integers(6, size=1))
            np.testing.assert_array_equal(reset_obs, train_obs[:, -1:].repeat(4, axis=1))
            assert reward[0] == 0.0
    assert life_losses == 2
    assert logged["train"]["r"][0] == logged["eval"]["r"][0] == sum(raw_rewards) > sum(np.sign(raw_rewards))
    assert logged["train"]["l"][0] == logged["eval"]["l"][0] == len(raw_rewards)
