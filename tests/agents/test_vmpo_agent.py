"""rlkit.agents.vmpo: the V-MPO agent on real gymnasium envs (small batches, a few updates each).

Smoke runs (CartPole-v1, Pendulum-v1, InvertedPendulum-v5, one Atari update), diagnostics, determinism,
checkpoint round trips, config errors, the E-step on a real rollout with reset steps, the target
network, the duals' directions, PopArt's output preservation, and the Atari preset against the paper's
table. The slow test trains V-MPO on CartPole-v1 to a mean return of 475.
"""
import io
import math
import re
import time

import numpy as np
import pytest
import torch

from support.agents import SMALL, assert_same_tensors, run, without_times
from support.agents import setup as setup_agent
from rlkit.agents import AGENTS, VMPO, make_agent, resolve_config
from rlkit.agents.vmpo import PopArt
from rlkit.experiments.data import find_row, load_table
from rlkit.envs import EnvSummary, make_vec_env
from rlkit.rollout import RolloutCollector

ENVS = ("CartPole-v1", "Pendulum-v1", "InvertedPendulum-v5")
COMMON_KEYS = ["estep_kl", "max_weight", "num_selected", "temperature_loss", "policy_loss", "entropy", "value_loss",
               "explained_variance", "grad_norm", "target_updated", "popart_mu", "popart_sigma", "time_update"]
DISCRETE_KEYS = ["temperature", "alpha", "eps_alpha", "mstep_kl", *COMMON_KEYS]
CONTINUOUS_KEYS = ["temperature", "alpha_mu", "alpha_sigma", "mstep_kl_mean", "mstep_kl_cov", *COMMON_KEYS]


def setup(env_id, seed=0, preset="classic", **overrides):
    """(V-MPO agent, collector) for a small batch of env_id."""
    return setup_agent("vmpo", env_id, seed, preset, **overrides)


def parameters(agent):
    out = {f"model.{n}": p.detach().clone() for n, p in agent.model.named_parameters()}
    out.update({f"target.{n}": p.detach().clone() for n, p in agent.target.named_parameters()})
    out.update({f"duals.{n}": p.detach().clone() for n, p in agent.duals.named_parameters()})
    return out


def assert_same_parameters(a, b):
    assert_same_tensors(parameters(a), parameters(b))


# ----------------------------------------------------------------------------- smoke runs and diagnostics


@pytest.mark.parametrize("env_id", ENVS)
@pytest.mark.parametrize("shared", [False, True])
def test_smoke_updates_finite_and_stable_keys(env_id, shared):
    agent, collector = setup(env_id, shared_trunk=shared, target_period=8)  # 4 learner steps per update
    diagnostics = run(agent, collector, 3)
    expected = DISCRETE_KEYS if env_id == "CartPole-v1" else CONTINUOUS_KEYS
    for d in diagnostics:
        assert list(d) == expected  # the same CSV columns every update, in the same order
        for k, v in d.items():
            assert isinstance(v, float) and math.isfinite(v), (k, v)
        assert d["estep_kl"] >= 0 and d["estep_kl"] <= math.log(d["num_selected"]) + 1e-6
        assert 1 / d["num_selected"] - 1e-6 <= d["max_weight"] <= 1
    assert [d["target_updated"] for d in diagnostics] == [0.0, 1.0, 0.0]
    assert agent.updates == 3
    actions = agent.act_deterministic(collector.obs)
    assert actions.shape == ((4,) if env_id == "CartPole-v1" else (4, 1))


def test_without_popart_its_statistics_leave_the_diagnostics():
    agent, collector = setup("Pendulum-v1", popart=False)
    assert agent.popart is None
    d = run(agent, collector, 2)
    assert list(d[0]) == [k for k in CONTINUOUS_KEYS if not k.startswith("popart_")]
    assert all(math.isfinite(v) for v in d[1].values())
    with_popart, collector = setup("Pendulum-v1")
    d = run(with_popart, collector, 1)[0]
    assert d["popart_sigma"] > 0 and d["popart_mu"] < 0  # Pendulum's rewards are negative


def test_atari_preset_smoke_on_the_nature_cnn():
    agent, collector = setup("ALE/Pong-v5", preset="atari", num_envs=1, num_steps=4)
    c = agent.config
    assert c.shared_trunk and c.target_period == 100 and c.eps_eta == 0.02 and c.eps_alpha_log_uniform
    d = run(agent, collector, 1)[0]
    assert list(d) == DISCRETE_KEYS and all(math.isfinite(v) for v in d.values())
    assert 0.001 <= d["eps_alpha"] < 0.01


def test_atari_preset_is_the_papers_table():
    """T_target, ε_η and the ε_α range: V-MPO Table 3 (multi-task column: clipped rewards, γ = 0.99);
    initial duals: Table 1's Atari column."""
    table3, table1 = load_table("vmpo_table3_atari"), load_table("vmpo_table1_common")
    c = resolve_config("vmpo", preset="atari")
    assert c.target_period == find_row(table3, setting="t_target", task="multi_task")["value"]
    assert c.eps_eta == find_row(table3, setting="eps_eta", task="multi_task")["value"]
    eps_alpha = find_row(table3, setting="eps_alpha", task="multi_task")
    assert (c.eps_alpha_low, c.eps_alpha_high, c.eps_alpha_log_uniform) == (eps_alpha["low"], eps_alpha["high"], True)
    assert c.gamma == find_row(table3, setting="agent_discount", task="multi_task")["value"]
    assert c.initial_temperature == find_row(table1, parameter="initial_temperature")["atari"]
    assert c.initial_alpha == find_row(table1, parameter="initial_alpha")["atari"]
    for preset in ("classic", "mujoco"):  # Table 1's initial duals everywhere
        c = resolve_config("vmpo", preset=preset)
        assert (c.initial_temperature, c.initial_alpha) == (1.0, 5.0)
        assert (c.initial_alpha_mu, c.initial_alpha_sigma) == (
            find_row(table1, parameter="initial_alpha_mu")["continuous_control"],
            find_row(table1, parameter="initial_alpha_sigma")["continuous_control"])


def test_the_preset_follows_the_env_family():
    hopper = EnvSummary("Hopper-v5", "mujoco", "continuous", 3, "Box", (11,), "float64")
    pong = EnvSummary("ALE/Pong-v5", "atari", "discrete", 6, "Discrete(6)", (4, 84, 84), "uint8")
    assert resolve_config("vmpo", env_summary=hopper) == resolve_config("vmpo", preset="mujoco")
    assert resolve_config("vmpo", env_summary=pong).target_period == 100
    assert resolve_config("vmpo") == VMPO.Config()  # classic = the defaults


# ----------------------------------------------------------------------------- the E-step, the target, the duals


def test_estep_on_a_real_rollout_never_selects_invalid_steps(monkeypatch):
    """Reset steps (NEXT_STEP autoreset) must never enter the top-k, even with the largest advantages."""
    agent, collector = setup("CartPole-v1", num_envs=4, num_steps=64)
    rollout = collector.collect(agent.policy)
    valid = rollout.valid
    assert (~valid).sum() >= 2  # a random CartPole policy ends episodes within 64 steps: resets are there

    honest = agent.advantages

    def poisoned(rollout):  # invalid steps get the largest advantage there is, or NaN
        returns, advantages = honest(rollout)
        advantages = advantages.clone()
        advantages[~valid] = 1e9
        advantages[~valid & (torch.arange(4) % 2 == 0)] = float("nan")
        return returns, advantages

    monkeypatch.setattr(agent, "advantages", poisoned)
    d = agent.update(rollout)
    estep = agent.last_estep
    assert not (estep.mask & ~valid).any()
    assert torch.all(estep.weights[~valid] == 0)
    n_valid = int(valid.sum())
    assert estep.num_selected == d["num_selected"] == math.ceil(n_valid / 2)
    assert float(estep.weights.sum()) == pytest.approx(1.0)
    # the selected steps are the top half of the valid advantages
    adv = honest(rollout)[1]
    threshold = adv[estep.mask].min()
    assert int((adv[valid] > threshold).sum()) < estep.num_selected
    assert all(math.isfinite(v) for v in d.values())


def test_the_target_network_acts_and_is_refreshed_every_target_period():
    agent, collector = setup("CartPole-v1", target_period=3, learner_steps=1)
    initial = {n: p.clone() for n, p in agent.target.named_parameters()}
    for update in range(1, 7):
        rollout = collector.collect(agent.policy)
        with torch.no_grad():  # the rollout's log-probs are π_old's, its values the online critic's
            obs = rollout.obs.reshape(-1, 4)
            old = agent.target.distribution(agent.target.pd_params(obs)).log_prob(rollout.actions.reshape(-1))
            torch.testing.assert_close(rollout.log_probs.reshape(-1), old)
            torch.testing.assert_close(rollout.values.reshape(-1), agent.value(obs))  # PopArt: σ n(s) + μ
        agent.update(rollout)
        model = dict(agent.model.named_parameters())
        same_as_model = all(torch.equal(p, model[n]) for n, p in agent.target.named_parameters())
        assert same_as_model == (update % 3 == 0), update
        if update < 3:
            assert all(torch.equal(p, initial[n]) for n, p in agent.target.named_parameters())


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_learner_steps_are_repeated_steps_on_one_rollout_and_t_target_counts_them(env_id):
    """One update with learner_steps = 3 equals three updates with learner_steps = 1 on the same rollout.

    Without PopArt (whose statistics move once per rollout) the advantages of a rollout are fixed by
    the values stored in it, so the two agents take the same three Adam steps, and with
    T_target = 2 both refresh π_old after learner step 2 (mid-update for the first agent).
    """
    repeated, collector = setup(env_id, seed=1, popart=False, learner_steps=3, target_period=2)
    single, _ = setup(env_id, seed=1, popart=False, learner_steps=1, target_period=2)
    assert_same_parameters(repeated, single)
    rollout = collector.collect(repeated.policy)
    snapshots = []
    for _ in range(3):
        single.update(rollout)
        snapshots.append(parameters(single))
    repeated.update(rollout)
    assert_same_parameters(repeated, single)
    # π_old was refreshed after learner step 2, not 1 or 3
    target_after_3 = {n: p for n, p in parameters(repeated).items() if n.startswith("target.")}
    assert_same_tensors(target_after_3, {n: p for n, p in snapshots[1].items() if n.startswith("target.")})
    model_after_2 = {n.replace("model.", "target.", 1): p for n, p in snapshots[1].items() if n.startswith("model.")}
    assert_same_tensors(target_after_3, model_after_2)
    model_after_3 = {n.replace("model.", "target.", 1): p for n, p in snapshots[2].items() if n.startswith("model.")}
    assert not all(torch.equal(p, model_after_3[n]) for n, p in target_after_3.items())  # step 3 moved on
    assert repeated.updates == 1 and single.updates == 3


def test_the_duals_move_toward_their_constraints():
    """η grows when the E-step KL exceeds ε_η (shrinks otherwise); α shrinks while the M-step KL is below ε_α
    (right after a refresh it is 0)."""
    for eps_eta in (1e-3, 10.0):
        agent, collector = setup("CartPole-v1", eps_eta=eps_eta, eps_alpha=0.05, learner_steps=1)
        d = run(agent, collector, 1)[0]
        after = agent.duals.diagnostics()
        assert d["mstep_kl"] == 0.0 and after["alpha"] < d["alpha"]
        assert (after["eta"] > d["temperature"]) == (d["estep_kl"] > eps_eta)  # rlkit.vmpo's η, logged as temperature
    agent, collector = setup("InvertedPendulum-v5", learner_steps=1)
    d = run(agent, collector, 1)[0]
    after = agent.duals.diagnostics()
    assert d["mstep_kl_mean"] == d["mstep_kl_cov"] == 0.0
    assert after["alpha_mu"] < d["alpha_mu"] and after["alpha_sigma"] < d["alpha_sigma"]


def test_eps_alpha_is_drawn_log_uniformly_per_update_when_asked():
    agent, collector = setup("CartPole-v1", eps_alpha_log_uniform=True, eps_alpha_low=0.001, eps_alpha_high=0.1)
    drawn = [d["eps_alpha"] for d in run(agent, collector, 6)]
    assert len(set(drawn)) == 6 and all(0.001 <= e < 0.1 for e in drawn)
    fixed, collector = setup("CartPole-v1", eps_alpha=0.02)
    assert {d["eps_alpha"] for d in run(fixed, collector, 2)} == {0.02}


def test_popart_preserves_the_values_and_tracks_the_targets():
    agent, _ = setup("InvertedPendulum-v5", popart_beta=0.1)
    obs = torch.randn(32, 4)
    targets = 50.0 + 7.0 * torch.randn(200)
    before = agent.value(obs)
    agent.popart.update(targets)
    torch.testing.assert_close(agent.value(obs), before, rtol=1e-5, atol=1e-4)  # outputs preserved
    # after one update the bias-corrected moments are the batch's own
    assert agent.popart.mu == pytest.approx(float(targets.double().mean()))
    assert agent.popart.sigma == pytest.approx(float(targets.double().std(unbiased=False)), rel=1e-6)
    for _ in range(5):
        before = agent.value(obs)
        agent.popart.update(-3.0 + 0.1 * torch.randn(200))
        torch.testing.assert_close(agent.value(obs), before, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="nn.Linear with one output"):
        PopArt(torch.nn.Linear(3, 2), 0.1)


# ----------------------------------------------------------------------------- determinism and checkpoints

VARIANTS = [
    ("CartPole-v1", {"popart": False}),
    ("CartPole-v1", {"shared_trunk": True, "eps_alpha_log_uniform": True}),
    ("Pendulum-v1", {}),
    ("InvertedPendulum-v5", {"shared_trunk": True, "popart": False}),
]


@pytest.mark.parametrize("env_id,overrides", VARIANTS)
def test_same_seed_same_results(env_id, overrides):
    a, ca = setup(env_id, seed=3, target_period=2, **overrides)
    b, cb = setup(env_id, seed=3, target_period=2, **overrides)
    assert without_times(run(a, ca, 3)) == without_times(run(b, cb, 3))
    assert_same_parameters(a, b)
    c, cc = setup(env_id, seed=4, target_period=2, **overrides)
    run(c, cc, 3)
    pa, pc = parameters(a), parameters(c)
    assert any(not torch.equal(pa[n], pc[n]) for n in pa)


@pytest.mark.parametrize("env_id,overrides", VARIANTS)
def test_restored_agent_continues_identically(env_id, overrides):
    """Uninterrupted agent A vs agent B (another seed) restored from A's twin after 2 updates; the target
    is refreshed every 3 updates, so the continuation crosses a refresh with a stale target restored."""
    a, ca = setup(env_id, seed=5, target_period=3, **overrides)
    twin, ctwin = setup(env_id, seed=5, target_period=3, **overrides)
    run(a, ca, 2)
    run(twin, ctwin, 2)
    b, _ = setup(env_id, seed=99, target_period=3, **overrides)
    buffer = io.BytesIO()
    torch.save(twin.state_dict(), buffer)  # through a file, loadable without unpickling code
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer, weights_only=True))
    del twin
    assert b.updates == 2
    assert without_times(run(a, ca, 4)) == without_times(run(b, ctwin, 4))
    assert_same_parameters(a, b)
    assert torch.equal(a.generator.get_state(), b.generator.get_state())
    assert torch.equal(a.eps_generator.get_state(), b.eps_generator.get_state())


def test_incompatible_states_are_refused():
    vmpo, _ = setup("CartPole-v1")
    acktr_envs = make_vec_env("CartPole-v1", 4)
    acktr = make_agent("acktr", EnvSummary.of(acktr_envs), SMALL, seed=0)
    with pytest.raises(ValueError, match="'acktr' agent"):
        vmpo.load_state_dict(acktr.state_dict())
    without_popart, _ = setup("CartPole-v1", popart=False)
    with pytest.raises(ValueError, match="popart"):
        vmpo.load_state_dict(without_popart.state_dict())
    state = vmpo.state_dict()
    del state["duals"]
    with pytest.raises(ValueError, match="corrupt"):
        vmpo.load_state_dict(state)


# ----------------------------------------------------------------------------- configs and errors

BAD = [
    ("eps_eta", 0.0), ("eps_eta", -0.1), ("eps_alpha", 0.0), ("eps_alpha", -1.0), ("eps_alpha_mu", 0.0),
    ("eps_alpha_sigma", -1e-4), ("eps_alpha_low", 0.0), ("top_k_fraction", 0.0), ("top_k_fraction", 1.5),
    ("top_k_fraction", -0.5), ("target_period", 0), ("target_period", -3), ("learner_steps", 0), ("lr", 0.0), ("dual_lr", -1.0),
    ("initial_temperature", 0.0), ("initial_alpha", -5.0), ("initial_alpha_mu", 0.0), ("initial_alpha_sigma", 0.0),
    ("value_coef", -1.0), ("max_grad_norm", -1.0), ("popart_beta", 0.0), ("popart_beta", 1.5),
    ("num_envs", 0), ("gamma", 1.5), ("gae_lambda", -0.1), ("hidden_sizes", [0]), ("activation", "sigmoid"),
    ("entropy_coef", -0.01), ("eps_eta", float("nan")),
]


@pytest.mark.parametrize("key,value", BAD)
def test_invalid_config_names_the_parameter_and_its_range(key, value):
    with pytest.raises(ValueError, match=rf"^{key} must be") as error:
        resolve_config("vmpo", {key: value})
    if isinstance(value, float) and math.isfinite(value) and key != "hidden_sizes":
        assert re.search(r"valid range|in [\[(]", str(error.value)), str(error.value)  # the range is stated
    config = VMPO.Config()
    setattr(config, key, value)
    with pytest.raises(ValueError, match=rf"^{key} must be"):
        VMPO(EnvSummary.of(make_vec_env("CartPole-v1", 1)), config, seed=0)


def test_the_eps_alpha_range_must_be_a_range():
    with pytest.raises(ValueError, match=r"^eps_alpha_high must be > eps_alpha_low = 0.01"):
        resolve_config("vmpo", {"eps_alpha_low": 0.01, "eps_alpha_high": 0.01})
    with pytest.raises(ValueError, match="valid parameters: .*eps_eta.*eps_alpha"):
        resolve_config("vmpo", {"eps_etta": 0.1})


def test_unsupported_things_are_refused_clearly():
    pendulum = EnvSummary.of(make_vec_env("Pendulum-v1", 1))
    with pytest.raises(ValueError, match="^eps_alpha_log_uniform must be False for continuous actions"):
        make_agent("vmpo", pendulum, {"eps_alpha_log_uniform": True}, seed=0)
    multi = EnvSummary(env_id="Fake-v0", family="other", action_kind="MultiDiscrete", action_size=0,
                       action_space="MultiDiscrete([2 2])", obs_shape=(4,), obs_dtype="float32")
    with pytest.raises(ValueError, match="vmpo does not support the MultiDiscrete action space"):
        make_agent("vmpo", multi, {}, seed=0)
    agent, collector = setup("CartPole-v1", num_envs=1, num_steps=1)
    rollout = collector.collect(agent.policy)
    rollout.valid[:] = False
    with pytest.raises(ValueError, match="no valid step"):
        agent.update(rollout)


def test_registered_for_the_command_line():
    assert AGENTS["vmpo"] is VMPO
    config = resolve_config("vmpo", {"eps_eta": "0.05", "eps-alpha": "0.02", "target_period": "4",
                                     "eps_alpha_log_uniform": "true"})
    assert (config.eps_eta, config.eps_alpha, config.target_period, config.eps_alpha_log_uniform) == (0.05, 0.02, 4, True)


# ----------------------------------------------------------------------------- learning


@pytest.mark.slow
def test_vmpo_solves_cartpole_within_300k_steps():
    """V-MPO (classic preset) reaches a mean return >= 475 over the last 10 episodes within 300k steps."""
    envs = make_vec_env("CartPole-v1", VMPO.Config().num_envs)
    agent = make_agent("vmpo", EnvSummary.of(envs), {}, seed=0)
    collector = RolloutCollector(envs, agent.config.num_steps, seed=0)
    start = time.perf_counter()
    returns = []
    while collector.env_steps < 300_000:
        agent.update(collector.collect(agent.policy))
        returns = [e.episode_return for e in collector.episodes[-10:]]
        if len(returns) == 10 and np.mean(returns) >= 475:
            break
    print(f"V-MPO CartPole-v1: {collector.env_steps} steps, {len(collector.episodes)} episodes, "
          f"{time.perf_counter() - start:.1f} s")
    assert len(returns) == 10 and np.mean(returns) >= 475, (collector.env_steps, np.mean(returns))
