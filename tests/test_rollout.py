"""Returns and GAE against hand-computed values; the collector on a synthetic env whose episodes end at known steps."""
import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers.utils import RunningMeanStd

from rlkit.envs import make_vec_env
from rlkit.rollout import RolloutCollector, continuation_mask, gae, k_step_returns

T, F = True, False
GAMMA = 0.5


def tiny_example():
    """Two envs, four steps (columns are envs), γ = 0.5.

    env 0: terminates at t = 1; t = 2 is its reset step (invalid); t = 3 is cut by the rollout's end
           and bootstraps from the last value 3.
    env 1: truncated at t = 2 with V(final obs) = 6 (the value at its reset step t = 3, invalid).
    """
    rewards = torch.tensor([[1.0, 1.0], [2.0, 1.0], [0.0, 1.0], [4.0, 0.0]])
    values = torch.tensor([[0.5, 2.0], [1.0, 4.0], [7.0, 8.0], [2.0, 6.0]])
    last_value = torch.tensor([3.0, 9.0])
    next_values = torch.cat([values[1:], last_value[None]])
    terminated = torch.tensor([[F, F], [T, F], [F, F], [F, F]])
    truncated = torch.tensor([[F, F], [F, F], [F, T], [F, F]])
    valid = torch.tensor([[T, T], [T, T], [F, T], [T, F]])
    return dict(rewards=rewards, next_values=next_values, terminated=terminated, truncated=truncated, valid=valid), values


def test_k_step_returns_match_hand_computed_values():
    inputs, _ = tiny_example()
    # env 0: R3 = 4 + .5·3 = 5.5 (rollout end); R2 invalid; R1 = 2 (terminated); R0 = 1 + .5·R1 = 2
    # env 1: R3 invalid; R2 = 1 + .5·6 = 4 (truncation bootstrap); R1 = 1 + .5·4 = 3; R0 = 1 + .5·3 = 2.5
    expected = torch.tensor([[2.0, 2.5], [2.0, 3.0], [0.0, 4.0], [5.5, 0.0]])
    torch.testing.assert_close(k_step_returns(**inputs, gamma=GAMMA), expected)


def test_gae_matches_hand_computed_values():
    inputs, values = tiny_example()
    # λ = .5, γλ = .25.  env 0: δ3 = 4 + 1.5 − 2 = 3.5; δ1 = 2 − 1 = 1; δ0 = 1 + .5 − .5 = 1 → A0 = 1 + .25·1 = 1.25
    #                    env 1: δ2 = 1 + 3 − 8 = −4; δ1 = 1 + 4 − 4 = 1 → A1 = 1 − 1 = 0; δ0 = 1 + 2 − 2 = 1 → A0 = 1
    expected = torch.tensor([[1.25, 1.0], [1.0, 0.0], [0.0, -4.0], [3.5, 0.0]])
    torch.testing.assert_close(gae(values=values, **inputs, gamma=GAMMA, gae_lambda=0.5), expected)


def test_gae_with_lambda_one_is_k_step_returns_minus_values():
    inputs, values = tiny_example()
    expected = torch.tensor([[1.5, 0.5], [1.0, -1.0], [0.0, -4.0], [3.5, 0.0]])  # R − V on valid steps
    advantages = gae(values=values, **inputs, gamma=GAMMA, gae_lambda=1.0)
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(advantages, (k_step_returns(**inputs, gamma=GAMMA) - values) * inputs["valid"])


def test_nothing_after_an_episode_end_changes_what_came_before():
    inputs, values = tiny_example()
    changed, changed_values = {k: v.clone() for k, v in inputs.items()}, values.clone()
    changed["rewards"][2:, 0] = 100.0  # env 0 after its termination at t = 1
    changed_values[2:, 0] = -50.0
    changed["next_values"][1:, 0] = -50.0  # including V(final obs) of a terminated episode
    changed["rewards"][3, 1] = 100.0  # env 1's reset step
    changed["next_values"][3, 1] = -50.0
    for fn in (lambda i, v: k_step_returns(**i, gamma=GAMMA), lambda i, v: gae(values=v, **i, gamma=GAMMA, gae_lambda=0.9)):
        torch.testing.assert_close(fn(changed, changed_values)[:2, 0], fn(inputs, values)[:2, 0])
        torch.testing.assert_close(fn(changed, changed_values)[:3, 1], fn(inputs, values)[:3, 1])


def test_a_step_before_an_invalid_step_bootstraps_instead_of_reading_it():
    rewards, next_values = torch.tensor([[1.0], [5.0]]), torch.tensor([[4.0], [0.0]])
    no_end = torch.tensor([[F], [F]])
    returns = k_step_returns(rewards, next_values, no_end, no_end, torch.tensor([[T], [F]]), gamma=GAMMA)
    torch.testing.assert_close(returns, torch.tensor([[1.0 + 0.5 * 4.0], [0.0]]))
    torch.testing.assert_close(continuation_mask(no_end, no_end), torch.tensor([[1.0], [0.0]]))


# ----------------------------------------------------------------------------- a synthetic env


class ScheduledEpisodes(gym.Env):
    """Episodes that end at known steps. The seed picks the schedule (sub-env i gets seed s + i):
    even seed: terminated after 3 steps, reward 1 per step; odd seed: truncated after 4, reward 2.
    Observation: [episode index, steps taken in this episode]."""

    observation_space = gym.spaces.Box(0.0, 1000.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.terminates, self.episode = seed % 2 == 0, 0
        else:  # an autoreset
            self.episode += 1
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        ends = self.t == (3 if self.terminates else 4)
        reward = 1.0 if self.terminates else 2.0
        return self._obs(), reward, ends and self.terminates, ends and not self.terminates, {}

    def _obs(self):
        return np.array([self.episode, self.t], dtype=np.float32)


SCHEDULED_ID = "RlkitScheduledEpisodes-v0"
if SCHEDULED_ID not in gym.registry:
    gym.register(SCHEDULED_ID, entry_point=ScheduledEpisodes)


def value_of(obs):
    """A fake critic that can be read back: V([episode, t]) = 10·episode + t."""
    return 10.0 * obs[:, 0] + obs[:, 1]


def fake_policy(obs):
    zeros = torch.zeros(obs.shape[0])
    return zeros.long(), zeros, value_of(obs)


def collect(num_steps, rollouts=1, **env_kwargs):
    envs = make_vec_env(SCHEDULED_ID, 2, **env_kwargs)
    collector = RolloutCollector(envs, num_steps, seed=0)
    return [collector.collect(fake_policy) for _ in range(rollouts)], collector


#                          t:  0  1  2  3  4  5  6  7  8  9 10 11
VALID = torch.tensor([[1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0],  # env 0: 3-step episodes, then a reset step
                      [1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1]]).bool().T  # env 1: 4-step episodes
TERMINATED_AT, TRUNCATED_AT = [2, 6, 10], [3, 8]


def test_collector_marks_reset_steps_invalid_and_episode_ends_where_they_happen():
    (rollout,), _ = collect(12)
    assert torch.equal(rollout.valid, VALID)
    assert torch.nonzero(rollout.terminated[:, 0]).flatten().tolist() == TERMINATED_AT
    assert torch.nonzero(rollout.truncated[:, 1]).flatten().tolist() == TRUNCATED_AT
    assert not rollout.terminated[:, 1].any() and not rollout.truncated[:, 0].any()
    torch.testing.assert_close(rollout.rewards, VALID.float() * torch.tensor([1.0, 2.0]))  # reset steps: reward 0


def test_no_stored_transition_crosses_an_episode_boundary():
    (rollout,), _ = collect(12)
    obs, done = rollout.obs, rollout.terminated | rollout.truncated
    for t in range(11):
        for i in range(2):
            if rollout.valid[t, i]:  # the next stored obs is this episode's next state (the final obs when done)
                torch.testing.assert_close(obs[t + 1, i], obs[t, i] + torch.tensor([0.0, 1.0]))
            if rollout.valid[t, i] and not done[t, i]:
                assert rollout.valid[t + 1, i]
            if not rollout.valid[t, i]:  # a reset step: the next obs starts a new episode
                torch.testing.assert_close(obs[t + 1, i], torch.tensor([obs[t, i, 0] + 1.0, 0.0]))


def test_truncation_bootstraps_from_the_value_of_the_right_final_observation():
    (rollout,), _ = collect(12)
    for t, episode in zip(TRUNCATED_AT, [0, 1]):
        torch.testing.assert_close(rollout.obs[t + 1, 1], torch.tensor([float(episode), 4.0]))  # final obs
        assert rollout.next_values[t, 1] == 10.0 * episode + 4.0
    assert rollout.next_values[11, 1] == 10.0 * 2 + 2.0  # the rollout's end: V of the obs collection resumes from


def test_returns_of_a_collected_rollout_match_an_independent_episode_walk():
    (rollout,), _ = collect(12)
    gamma = 0.9
    expected = torch.zeros(12, 2)
    for i in range(2):
        for t in range(12):
            if not rollout.valid[t, i]:
                continue
            total, discount, s = 0.0, 1.0, t
            while True:  # walk forward through this episode only
                total += discount * rollout.rewards[s, i].item()
                discount *= gamma
                if rollout.terminated[s, i]:
                    break
                if rollout.truncated[s, i] or s == 11:  # bootstrap from V of the obs step s reached
                    total += discount * rollout.next_values[s, i].item()
                    break
                s += 1
            expected[t, i] = total
    torch.testing.assert_close(rollout.k_step_returns(gamma), expected)
    torch.testing.assert_close(rollout.gae(gamma, 1.0), (expected - rollout.values) * rollout.valid)


def test_collector_records_episode_returns_lengths_and_the_env_step_of_each_end():
    (rollout,), collector = collect(12)
    recorded = [(e.env_index, e.episode_return, e.length, e.env_steps) for e in rollout.episodes]
    # env steps count valid transitions of both envs up to and including the ending step:
    # t = 0..2: 6; t = 3: +1 (env 0 resets) = 7; t = 4..6: +1 +2 +2 = 12; t = 7, 8: +1 +2 = 15; t = 9, 10: 18
    assert recorded == [(0, 3.0, 3, 6), (1, 8.0, 4, 7), (0, 3.0, 3, 12), (1, 8.0, 4, 15), (0, 3.0, 3, 18)]
    assert collector.env_steps == int(VALID.sum()) == 19
    assert collector.episodes == rollout.episodes


def test_consecutive_rollouts_continue_each_other_exactly():
    (whole,), _ = collect(12)
    halves, _ = collect(6, rollouts=2)
    for name in ("obs", "actions", "rewards", "values", "terminated", "truncated", "valid", "next_values"):
        torch.testing.assert_close(torch.cat([getattr(h, name) for h in halves]), getattr(whole, name))
    assert halves[0].episodes + halves[1].episodes == whole.episodes


def test_every_stored_observation_final_ones_included_is_normalized_with_the_running_statistics():
    (raw,), _ = collect(12)
    (normalized,), _ = collect(12, normalize_obs=True)
    rms = RunningMeanStd(shape=(2,), dtype=np.float32)  # gymnasium's statistics, fed the raw batches in order
    for t in range(12):
        rms.update(raw.obs[t].numpy())
        expected = (raw.obs[t].numpy() - rms.mean) / np.sqrt(rms.var + 1e-8)
        np.testing.assert_allclose(normalized.obs[t].numpy(), expected, rtol=1e-6, atol=1e-6)
    assert not torch.equal(normalized.obs[4, 1], raw.obs[4, 1])  # env 1's final obs did go through normalization


def test_collector_refuses_an_env_in_another_autoreset_mode_and_a_policy_with_wrong_shapes():
    same_step = gym.make_vec(SCHEDULED_ID, 2, vectorization_mode="sync", vector_kwargs={"autoreset_mode": "SameStep"})
    with pytest.raises(ValueError, match="autoreset mode"):
        RolloutCollector(same_step, 4)
    collector = RolloutCollector(make_vec_env(SCHEDULED_ID, 2), 4, seed=0)
    with pytest.raises(ValueError, match=r"values of shape \(2, 1\), expected \(2,\)"):
        collector.collect(lambda obs: (torch.zeros(2).long(), torch.zeros(2), torch.zeros(2, 1)))
