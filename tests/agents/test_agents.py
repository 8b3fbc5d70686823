"""rlkit.agents: A2C, ACKTR and TRPO on real gymnasium envs (small batches, a few updates each).

Smoke runs, determinism, checkpoint round trips, config validation and errors, and the
numbers that carry ACKTR's and TRPO's trust regions. The slow test trains ACKTR on CartPole.
"""
import dataclasses
import io
import json
import math
import re
import time

import numpy as np
import pytest
import torch

from support.agents import assert_same_tensors, fields_that_differ, run, setup, without_times
from rlkit.agents import AGENTS, ACKTR, make_agent, resolve_config
from rlkit.envs import EnvSummary, make_vec_env
from rlkit.rollout import RolloutCollector
from rlkit.trust_region import effective_step_size

ENVS = ("CartPole-v1", "InvertedPendulum-v5")
VARIANTS = [("a2c", False), ("a2c", True), ("acktr", False), ("acktr", True), ("trpo", False)]


def parameters(agent):
    return {n: p.detach().clone() for n, p in agent.model.named_parameters()}


def assert_same_parameters(a, b):
    assert_same_tensors(parameters(a), parameters(b))


def summary(action_kind="MultiDiscrete"):
    return EnvSummary(env_id="Fake-v0", family="other", action_kind=action_kind, action_size=0,
                      action_space="MultiDiscrete([2 2])", obs_shape=(4,), obs_dtype="float32")


# ----------------------------------------------------------------------------- smoke runs


@pytest.mark.parametrize("env_id", ENVS)
@pytest.mark.parametrize("name,shared", VARIANTS)
def test_smoke_updates_finite_and_stable_keys(name, shared, env_id):
    agent, collector = setup(name, env_id, shared_trunk=shared)
    diagnostics = run(agent, collector, 3)
    keys = list(diagnostics[0])
    for d in diagnostics:
        assert list(d) == keys  # the same CSV columns every update
        for k, v in d.items():
            assert isinstance(v, float) and math.isfinite(v), (k, v)
    assert agent.updates == 3
    obs = collector.obs
    actions = agent.act_deterministic(obs)
    assert actions.shape == ((4,) if env_id == "CartPole-v1" else (4, 1))


def test_diagnostic_keys():
    base = ["entropy", "value_loss", "explained_variance", "time_update"]
    acktr_sep, _ = setup("acktr", "CartPole-v1")
    acktr_shared, _ = setup("acktr", "CartPole-v1", shared_trunk=True)
    keys = {}
    agents = [("sep", acktr_sep), ("shared", acktr_shared)] + [(n, setup(n, "CartPole-v1")[0]) for n in ("a2c", "trpo")]
    for label, agent in agents:
        collector = RolloutCollector(make_vec_env("CartPole-v1", 4), 8, seed=0)
        keys[label] = set(run(agent, collector, 1)[0])
    tr = {"step_size", "eta_max", "step_size_capped", "quadratic", "predicted_kl", "measured_kl", "measured_value_kl",
          "damping", "policy_loss", "time_stats", "time_inverse", "time_precondition", *base}
    assert keys["shared"] == tr
    assert keys["sep"] == tr | {"critic_step_size", "critic_quadratic", "critic_predicted_kl"}
    assert keys["a2c"] == {"measured_kl", "grad_norm", "lr", "policy_loss", *base}
    assert keys["trpo"] == {"step_size", "quadratic", "predicted_kl", "measured_kl", "cg_iterations", "cg_residual",
                            "line_search_steps", "line_search_accepted", "expected_improvement",
                            "surrogate_improvement", "damping", *base}


def test_atari_nature_cnn_shared_trunk_smoke():
    agent, collector = setup("acktr", "ALE/Pong-v5", preset="atari", num_envs=1, num_steps=4)
    assert agent.config.shared_trunk and agent.config.delta == 0.0005 and list(agent.kfacs) == ["model"]
    d = run(agent, collector, 1)[0]
    assert all(math.isfinite(v) for v in d.values())
    assert set(agent.kfac.layers) == {"trunk.convs.0", "trunk.convs.2", "trunk.convs.4", "trunk.fc",
                                      "head.logits", "value_head"}


def test_acktr_kfac_objects_and_log_std_block():
    sep, _ = setup("acktr", "InvertedPendulum-v5")
    assert set(sep.kfacs) == {"actor", "critic"}
    assert [name for name, _, _ in sep.actor_kfac.exact_blocks] == ["head.log_std"]
    assert sep.actor_kfac.exact_blocks[0][2] == 2.0  # E[(z² − 1)²]
    assert not sep.actor_kfac.uncovered_parameters and not sep.critic_kfac.uncovered_parameters
    shared, _ = setup("acktr", "InvertedPendulum-v5", shared_trunk=True)
    assert set(shared.kfacs) == {"model"} and not shared.kfac.uncovered_parameters


@pytest.mark.parametrize("shared", [False, True])
def test_acktr_acts_without_kfac_hooks_and_updates_identically(shared):
    """Inside acting() no covered layer carries a forward hook (KFAC.paused); outside, every one does. Collecting
    inside it changes no number: two agents of one seed, one collecting inside acting() and one outside, end two
    updates with bit-equal parameters."""
    agent, collector = setup("acktr", "CartPole-v1", shared_trunk=shared)
    linears = [m for m in agent.model.modules() if isinstance(m, torch.nn.Linear)]
    with agent.acting():
        assert all(not m._forward_hooks for m in linears)
    assert all(len(m._forward_hooks) == 1 for m in linears)
    twin, twin_collector = setup("acktr", "CartPole-v1", shared_trunk=shared)
    for _ in range(2):
        with agent.acting():
            rollout = collector.collect(agent.policy)
        agent.update(rollout)
        twin.update(twin_collector.collect(twin.policy))
    assert_same_tensors(agent.model.state_dict(), twin.model.state_dict())


def test_acktr_stats_subsample_reaches_actor_and_critic_kfac():
    """stats_subsample = 4: after the first update each K-FAC's first-layer A is the mean of [s, 1][s, 1]ᵀ over
    the batch's states 0, 4, 8, ... (computed here from the batch)."""
    agent, collector = setup("acktr", "CartPole-v1", stats_subsample=4)
    rollout = collector.collect(agent.policy)
    obs = agent.batch(rollout).obs
    agent.update(rollout)
    rows = torch.cat([obs[0::4], torch.ones(len(range(0, len(obs), 4)), 1)], dim=1).double()
    want = rows.T @ rows / rows.shape[0]
    for kfac in (agent.actor_kfac, agent.critic_kfac):
        assert kfac.stats_subsample == 4
        first = next(iter(kfac.layers.values()))
        torch.testing.assert_close(first.A.double(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("critic_iterations", [1, 4])
def test_acktr_stats_subsample_forwards_only_the_rows_of_each_pass(critic_iterations):
    """With stats_subsample = 4 each Fisher pass runs on its own forward of a quarter of the batch
    (KFAC.stats_rows): the first layers see, with gradients on, one forward of ⌈N/4⌉ rows per pass and
    the loss's forward of all N rows; the critic's extra steps each take their own pass."""
    agent, collector = setup("acktr", "CartPole-v1", stats_subsample=4, critic_iterations=critic_iterations,
                             num_envs=3, num_steps=5)  # N = 15: offset 3 takes 3 rows, offsets 0-2 take 4
    rollout = collector.collect(agent.policy)
    n = agent.batch(rollout).obs.shape[0]
    assert n == 15
    seen = {"actor": [], "critic": []}
    hooks = [next(m for m in getattr(agent.model, part).modules() if isinstance(m, torch.nn.Linear))
             .register_forward_hook(lambda mod, inp, out, part=part: seen[part].append(inp[0].shape[0])
                                    if torch.is_grad_enabled() else None)
             for part in seen]
    agent.update(rollout)
    for hook in hooks:
        hook.remove()
    quarter = len(range(0, n, 4))
    assert seen["actor"] == [quarter, n]  # the Fisher pass, then the loss
    # the update's pass and loss, then per extra critic step its own pass (offsets 1, 2, 3) and its loss
    assert seen["critic"] == [quarter, n] + sum(([len(range(j, n, 4)), n] for j in range(1, critic_iterations)), [])
    assert agent.critic_kfac.stats_updates == critic_iterations


def test_mujoco_presets_share_batch_networks_and_initial_policy():
    """What the sample-efficiency benchmark compares on MuJoCo differs only in the update: A2C's and TRPO's mujoco
    presets have ACKTR's batch, networks and initial log-std (-1.5)."""
    hopper = EnvSummary("Hopper-v5", "mujoco", "continuous", 3, "Box", (11,), "float64")
    keys = ("num_envs", "num_steps", "hidden_sizes", "activation", "shared_trunk", "log_std_init")
    acktr = resolve_config("acktr", env_summary=hopper)
    assert acktr.log_std_init == -1.5
    for name in ("a2c", "trpo"):
        other = resolve_config(name, env_summary=hopper)
        assert {k: getattr(other, k) for k in keys} == {k: getattr(acktr, k) for k in keys}, name


def test_tuned_presets_change_only_the_searched_fields():
    """A2C's tuned presets are the cells benchmarks/preset_search.py chose: their family's preset with the batch
    (and on CartPole the learning rate and entropy bonus) changed, networks and initial policy kept."""
    for family, changed in (("classic", {"num_envs", "num_steps", "lr", "entropy_coef"}),
                            ("mujoco", {"num_envs", "num_steps"})):
        base, tuned = resolve_config("a2c", preset=family), resolve_config("a2c", preset=f"{family}-tuned")
        assert fields_that_differ(base, tuned) <= changed, family
    tuned = resolve_config("a2c", preset="mujoco-tuned")
    assert (tuned.num_envs, tuned.num_steps, tuned.lr, tuned.log_std_init) == (16, 5, 3e-3, -1.5)


# ----------------------------------------------------------------------------- determinism and checkpoints


@pytest.mark.parametrize("env_id", ENVS)
@pytest.mark.parametrize("name,shared", [("a2c", False), ("acktr", False), ("acktr", True), ("trpo", False)])
def test_same_seed_same_results(name, shared, env_id):
    a, ca = setup(name, env_id, seed=3, shared_trunk=shared)
    b, cb = setup(name, env_id, seed=3, shared_trunk=shared)
    assert without_times(run(a, ca, 3)) == without_times(run(b, cb, 3))
    assert_same_parameters(a, b)
    c, cc = setup(name, env_id, seed=4, shared_trunk=shared)
    run(c, cc, 3)
    pa, pc = parameters(a), parameters(c)
    assert any(not torch.equal(pa[n], pc[n]) for n in pa)  # another seed: other weights and data


@pytest.mark.parametrize("env_id", ENVS)
@pytest.mark.parametrize("name,shared", [("a2c", True), ("acktr", False), ("acktr", True), ("trpo", False)])
def test_restored_agent_continues_identically(name, shared, env_id):
    """Uninterrupted agent A vs agent B (another seed) restored from A's twin after 2 updates."""
    a, ca = setup(name, env_id, seed=5, shared_trunk=shared)
    twin, ctwin = setup(name, env_id, seed=5, shared_trunk=shared)
    run(a, ca, 2)
    run(twin, ctwin, 2)
    b, _ = setup(name, env_id, seed=99, shared_trunk=shared)
    json.dumps(twin.state_dict()["config"])  # the config in a checkpoint is plain JSON
    buffer = io.BytesIO()
    torch.save(twin.state_dict(), buffer)  # through a file, loadable without unpickling code
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer, weights_only=True))
    del twin
    assert b.updates == 2
    assert without_times(run(a, ca, 3)) == without_times(run(b, ctwin, 3))
    assert_same_parameters(a, b)
    assert torch.equal(a.generator.get_state(), b.generator.get_state())


def test_state_dict_is_a_copy():
    agent, collector = setup("acktr", "CartPole-v1")
    run(agent, collector, 1)
    state = agent.state_dict()
    before = {k: v.clone() for k, v in state["model"].items()}
    run(agent, collector, 1)
    assert all(torch.equal(before[k], state["model"][k]) for k in before)


def test_incompatible_states_are_refused():
    acktr, _ = setup("acktr", "CartPole-v1")
    a2c, _ = setup("a2c", "CartPole-v1")
    with pytest.raises(ValueError, match="'a2c' agent"):
        acktr.load_state_dict(a2c.state_dict())
    wider, _ = setup("acktr", "CartPole-v1", hidden_sizes=[32])
    with pytest.raises(ValueError, match="hidden_sizes"):
        acktr.load_state_dict(wider.state_dict())
    pendulum, _ = setup("acktr", "InvertedPendulum-v5")
    with pytest.raises(ValueError, match="observations/actions"):
        acktr.load_state_dict(pendulum.state_dict())
    state = acktr.state_dict()
    del state["kfac"]
    with pytest.raises(ValueError, match="corrupt"):
        acktr.load_state_dict(state)
    with pytest.raises(ValueError, match="not a acktr agent state"):
        acktr.load_state_dict({"model": {}})


# ----------------------------------------------------------------------------- configs, presets, errors


BAD_VALUES = [
    ("num_envs", 0), ("num_steps", 0), ("gamma", 0.0), ("gamma", 1.5), ("gae_lambda", -0.1), ("gae_lambda", 1.1),
    ("hidden_sizes", [0]), ("activation", "sigmoid"), ("entropy_coef", -1.0),
]
SPECIFIC = {
    "a2c": [("lr", 0.0), ("lr", -1e-3), ("optimizer", "sgd"), ("max_grad_norm", -1.0), ("rmsprop_alpha", 1.0)],
    "acktr": [("delta", 0.0), ("delta", -1.0), ("eta_max", 0.0), ("damping", -0.1), ("stats_decay", 1.0),
              ("critic_delta", 0.0), ("critic_eta_max", -1.0), ("critic_sigma", 0.0), ("inverse_every", 0),
              ("stats_subsample", 0), ("stats_subsample", 1.5),
              ("trust_region_convention", "other"), ("damping_mode", "diagonal"), ("target_kl", -0.1)],
    "trpo": [("delta", 0.0), ("lr", 0.0), ("damping", -1.0), ("cg_iters", 0), ("backtrack_coef", 1.0),
             ("shared_trunk", True), ("value_epochs", 0)],
    "vmpo": [("eps_eta", 0.0), ("eps_alpha", -0.01), ("top_k_fraction", 0.0), ("top_k_fraction", 1.1),
             ("target_period", 0), ("lr", 0.0), ("dual_lr", 0.0)],
}


@pytest.mark.parametrize("name,key,value", [(n, k, v) for n in AGENTS for k, v in BAD_VALUES + SPECIFIC[n]])
def test_invalid_config_names_the_parameter(name, key, value):
    with pytest.raises(ValueError, match=rf"^{key} must be"):
        resolve_config(name, {key: value})
    envs_summary = EnvSummary.of(make_vec_env("CartPole-v1", 1))
    config = AGENTS[name].Config()
    setattr(config, key, value)
    with pytest.raises(ValueError, match=rf"^{key} must be"):
        AGENTS[name](envs_summary, config, seed=0)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="valid algorithms: a2c, acktr, trpo"):
        resolve_config("ppo")
    with pytest.raises(ValueError, match="valid parameters: .*delta.*eta_max"):
        resolve_config("acktr", {"detla": 0.1})
    every_preset = ", ".join(sorted(AGENTS["acktr"].presets))  # atari, classic, classic-checked, mujoco, ...
    with pytest.raises(ValueError, match=f"valid presets: {re.escape(every_preset)}$"):
        resolve_config("acktr", preset="dmlab")
    with pytest.raises(ValueError, match="num_envs must be of type int"):
        resolve_config("a2c", {"num_envs": "many"})


def test_overrides_from_the_command_line_are_converted():
    strings = {"delta": "0.001", "num_envs": "8", "shared_trunk": "true", "hidden_sizes": "32,32"}
    config = resolve_config("acktr", strings)
    assert (config.delta, config.num_envs, config.shared_trunk, config.hidden_sizes) == (0.001, 8, True, [32, 32])
    assert ACKTR.Config(hidden_sizes=(16, 16)).validate().hidden_sizes == [16, 16]
    assert resolve_config("acktr", {"eta-max": "0.5", "delta": None}).eta_max == 0.5  # None: flag not given


@pytest.mark.parametrize("name", AGENTS)
@pytest.mark.parametrize("preset", ["classic", "atari", "mujoco"])
def test_presets_resolve_and_serialize(name, preset):
    config = resolve_config(name, preset=preset)
    text = json.dumps(dataclasses.asdict(config))
    assert type(config).from_dict(json.loads(text)) == config


def test_preset_follows_the_env_family_and_overrides_win():
    pong = EnvSummary("ALE/Pong-v5", "atari", "discrete", 6, "Discrete(6)", (4, 84, 84), "uint8")
    hopper = EnvSummary("Hopper-v5", "mujoco", "continuous", 3, "Box", (11,), "float64")
    assert resolve_config("acktr", env_summary=pong).eta_max == 0.25
    assert resolve_config("acktr", {"num_steps": 100}, env_summary=hopper).num_steps == 100
    assert resolve_config("acktr", env_summary=hopper).log_std_init == -1.5
    assert resolve_config("acktr").stats_decay == ACKTR.Config().stats_decay  # classic = the defaults


def test_atari_delta_is_baselines_kl_clip_in_the_paper_convention():
    """baselines' kfac_clip 0.001 with sqrt(δ/q) is δ = 0.0005 with the paper's sqrt(2δ/q): the same step."""
    delta = resolve_config("acktr", preset="atari").delta
    for q in (1e-4, 0.01, 3.0):
        baselines = effective_step_size(q, 0.001, 0.25, "baselines")
        assert effective_step_size(q, delta, 0.25, "paper") == pytest.approx(baselines)


@pytest.mark.parametrize("name", AGENTS)
def test_unsupported_action_space(name):
    with pytest.raises(ValueError, match=f"{name} does not support the MultiDiscrete action space"):
        make_agent(name, summary(), {}, seed=0)


# ----------------------------------------------------------------------------- trust regions


def test_acktr_measured_kl_close_to_delta_when_not_capped():
    """The trust region bounds the K-FAC quadratic model of the KL; how close is the real KL?

    Measured (CartPole-v1, batch 16 × 16, δ = 0.001, stats of the current batch only):
    measured/δ = 0.91 on the first update (near-uniform policy: K-FAC nearly exact), then
    0.9 to 3 over the next updates (block-diagonal and Kronecker approximations).
    """
    delta = 0.001
    agent, collector = setup("acktr", "CartPole-v1", seed=1, num_envs=16, num_steps=16, delta=delta,
                             eta_max=100.0, stats_decay=0.0)
    diagnostics = run(agent, collector, 6)
    for d in diagnostics:
        assert d["step_size_capped"] == 0.0 and d["predicted_kl"] == pytest.approx(delta)
    ratios = [d["measured_kl"] / delta for d in diagnostics]
    assert 0.5 <= ratios[0] <= 2.0, ratios
    assert all(0.3 <= r <= 4.0 for r in ratios), ratios


def test_acktr_capped_step_predicts_less_than_delta():
    agent, collector = setup("acktr", "CartPole-v1", eta_max=1e-4)
    d = run(agent, collector, 1)[0]
    assert d["step_size"] == 1e-4 and d["step_size_capped"] == 1.0 and d["predicted_kl"] < agent.config.delta


def test_acktr_baselines_convention_halves_the_predicted_kl():
    agent, collector = setup("acktr", "CartPole-v1", trust_region_convention="baselines", eta_max=100.0)
    d = run(agent, collector, 1)[0]
    assert d["predicted_kl"] == pytest.approx(agent.config.delta / 2)


def test_acktr_target_kl_adapts_eta_max_and_is_checkpointed():
    agent, collector = setup("acktr", "CartPole-v1", eta_max=0.25, target_kl=1e-9)  # always "KL too high"
    d = run(agent, collector, 2)
    assert [x["eta_max"] for x in d] == [0.25, 0.25 / 1.5] and agent.eta_max == pytest.approx(0.25 / 1.5**2)
    other, _ = setup("acktr", "CartPole-v1", target_kl=1e-9)
    other.load_state_dict(agent.state_dict())
    assert other.eta_max == agent.eta_max
    low, collector = setup("acktr", "CartPole-v1", eta_max=0.9, target_kl=10.0)  # always "KL too low"
    run(low, collector, 2)
    assert low.eta_max == 1.0  # baselines' upper bound
    with pytest.raises(ValueError, match="^measure_kl must be True"):
        resolve_config("acktr", {"target_kl": 0.002, "measure_kl": False})


@pytest.mark.parametrize("env_id", ENVS)
def test_trpo_line_search_respects_the_kl_bound(env_id):
    agent, collector = setup("trpo", env_id, delta=0.01)
    for d in run(agent, collector, 3):
        assert d["line_search_accepted"] == 1.0
        assert 0 < d["measured_kl"] <= 1.5 * 0.01
        assert d["predicted_kl"] == pytest.approx(0.01 * 0.25 ** d["line_search_steps"])
        assert d["surrogate_improvement"] > 0


# ----------------------------------------------------------------------------- learning


@pytest.mark.slow
def test_acktr_solves_cartpole_within_200k_steps():
    """ACKTR (classic preset) reaches a mean return >= 475 over the last 10 episodes within 200k steps."""
    envs = make_vec_env("CartPole-v1", ACKTR.Config().num_envs)
    agent = make_agent("acktr", EnvSummary.of(envs), {}, seed=0)
    collector = RolloutCollector(envs, agent.config.num_steps, seed=0)
    start = time.perf_counter()
    while collector.env_steps < 200_000:
        agent.update(collector.collect(agent.policy))
        returns = [e.episode_return for e in collector.episodes[-10:]]
        if len(returns) == 10 and np.mean(returns) >= 475:
            break
    print(f"ACKTR CartPole-v1: {collector.env_steps} steps, {len(collector.episodes)} episodes, "
          f"{time.perf_counter() - start:.1f} s")
    assert len(returns) == 10 and np.mean(returns) >= 475, (collector.env_steps, np.mean(returns))
