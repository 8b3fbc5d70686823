"""ACKTRConfig.critic_optimizer: "gauss_newton" (default, K-FAC critic) or "adam" (first-order critic, Figure 5a/b)."""
import pytest
import torch

from rlkit.agents import make_agent
from rlkit.envs import EnvSummary, make_vec_env
from rlkit.rollout import RolloutCollector


def setup(seed=0, **overrides):
    overrides = {"num_envs": 2, "num_steps": 8, **overrides}
    envs = make_vec_env("CartPole-v1", overrides["num_envs"])
    agent = make_agent("acktr", EnvSummary.of(envs), overrides, seed=seed, preset="classic")
    return agent, RolloutCollector(envs, agent.config.num_steps, seed=seed)


def test_default_is_gauss_newton():
    agent, _ = setup()
    assert agent.config.critic_optimizer == "gauss_newton"
    assert set(agent.kfacs) == {"actor", "critic"}


def test_adam_critic_is_one_adam_step_and_actor_unchanged():
    gn, gn_collector = setup()
    adam, adam_collector = setup(critic_optimizer="adam", critic_lr=0.01)
    assert set(adam.kfacs) == {"actor"}
    critic_before = [p.detach().clone() for p in adam.model.critic.parameters()]
    # the reference: Adam on the critic loss c_V·mean (V − R)², computed independently on the same batch
    ref_critic = [p.detach().clone().requires_grad_(True) for p in adam.model.critic.parameters()]
    ref_opt = torch.optim.Adam(ref_critic, lr=0.01)
    rollout = adam_collector.collect(adam.policy)
    gn_rollout = gn_collector.collect(gn.policy)
    batch = adam.batch(rollout)
    values = torch.func.functional_call(adam.model.critic, dict(zip(
        [n for n, _ in adam.model.critic.named_parameters()], ref_critic)), (batch.obs,))
    (adam.config.value_coef * (values - batch.returns).pow(2).mean()).backward()
    ref_opt.step()
    diag = adam.update(rollout)
    gn_diag = gn.update(gn_rollout)
    for p, q, before in zip(adam.model.critic.parameters(), ref_critic, critic_before):
        assert torch.allclose(p, q, atol=1e-6) and not torch.equal(p, before)
    assert diag["critic_step_size"] == 0.01 and diag["critic_quadratic"] != diag["critic_quadratic"]  # NaN
    # the actor's update does not depend on the critic's optimizer (first update: same V_old, same noise)
    for p, q in zip(adam.model.actor.parameters(), gn.model.actor.parameters()):
        assert torch.equal(p, q)
    assert diag["step_size"] == gn_diag["step_size"]


def test_adam_critic_state_round_trip():
    agent, collector = setup(critic_optimizer="adam")
    for _ in range(2):
        agent.update(collector.collect(agent.policy))
    state = agent.state_dict()
    other, _ = setup(critic_optimizer="adam", seed=1)
    other.load_state_dict(state)
    assert other.critic_adam.state_dict()["state"][0]["step"] == agent.critic_adam.state_dict()["state"][0]["step"]


@pytest.mark.parametrize("overrides", [dict(critic_optimizer="sgd"), dict(critic_optimizer="adam", shared_trunk=True),
                                       dict(critic_optimizer="adam", critic_lr=0.0)])
def test_invalid(overrides):
    with pytest.raises(ValueError):
        setup(**overrides)


def _batch_value_loss(agent, batch):
    with torch.no_grad():
        return float((agent.model.critic(batch.obs) - batch.returns).pow(2).mean())


@pytest.mark.parametrize("critic_optimizer", ["gauss_newton", "adam"])
def test_critic_iterations_fit_the_critic_further_and_leave_the_actor_alone(critic_optimizer):
    """k critic steps per batch: the actor's step is the same as with one, the critic fits the batch better
    (Adam: k steps are exactly k Adam steps on the batch's loss, computed independently). Repeated
    Gauss-Newton steps need a smaller trust region than one (critic_delta 0.05: RMS ΔV ≈ 0.3 per step;
    with the classic 0.5 the K-FAC steps overshoot and the loss oscillates)."""
    extra = {"critic_delta": 0.05} if critic_optimizer == "gauss_newton" else {}
    agents = {k: setup(critic_optimizer=critic_optimizer, critic_iterations=k, **extra) for k in (1, 10)}
    rollouts = {k: collector.collect(agent.policy) for k, (agent, collector) in agents.items()}
    batch = agents[1][0].batch(rollouts[1])
    reference = [p.detach().clone().requires_grad_(True) for p in agents[10][0].model.critic.parameters()]
    names = [n for n, _ in agents[10][0].model.critic.named_parameters()]
    for k, (agent, _) in agents.items():
        agent.update(rollouts[k])
    for p, q in zip(agents[1][0].model.actor.parameters(), agents[10][0].model.actor.parameters()):
        assert torch.equal(p, q)
    losses = {k: _batch_value_loss(agent, batch) for k, (agent, _) in agents.items()}
    assert losses[10] < (0.5 if critic_optimizer == "gauss_newton" else 1.0) * losses[1], losses
    if critic_optimizer == "adam":
        optimizer = torch.optim.Adam(reference, lr=agents[10][0].config.critic_lr)
        for _ in range(10):
            optimizer.zero_grad()
            values = torch.func.functional_call(agents[10][0].model.critic, dict(zip(names, reference)), (batch.obs,))
            (0.5 * (values - batch.returns).pow(2).mean()).backward()
            optimizer.step()
        for p, q in zip(agents[10][0].model.critic.parameters(), reference):
            torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("overrides, fragment", [(dict(critic_iterations=0), "critic_iterations"),
                                                 (dict(critic_iterations=3, shared_trunk=True), "shared_trunk")])
def test_critic_iterations_out_of_range_is_refused(overrides, fragment):
    with pytest.raises(ValueError, match=fragment):
        setup(**overrides)
