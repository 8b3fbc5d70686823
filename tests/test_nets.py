"""rlkit.nets: the actor-critic networks (shapes, layouts, initialization, sampling)."""
import math

import pytest
import torch
import torch.nn as nn

from rlkit.nets import (
    ActorCritic,
    CategoricalHead,
    GaussianHead,
    NatureCNN,
    mlp,
    orthogonal_init,
)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- building blocks kept as they were


def test_mlp_and_nature_cnn_unchanged():
    net = mlp([3, 5, 2])
    assert [type(m) for m in net] == [nn.Linear, nn.Tanh, nn.Linear]
    cnn = NatureCNN()
    assert cnn(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (2, 512)


# ----------------------------------------------------------------------------- shapes and layouts


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("kind,size", [("discrete", 3), ("continuous", 2)])
def test_mlp_actor_critic_shapes(shared, kind, size):
    model = ActorCritic((5,), kind, size, hidden_sizes=[16, 8], shared_trunk=shared, generator=gen())
    obs = torch.randn(7, 5)
    pd_params, value = model(obs)
    assert pd_params.shape == (7, size) and value.shape == (7,)
    torch.testing.assert_close(model.pd_params(obs), pd_params)
    torch.testing.assert_close(model.value(obs), value)
    dist = model.distribution(pd_params)
    actions = model.policy_head.sample(pd_params, gen(1))
    assert actions.shape == ((7,) if kind == "discrete" else (7, size))
    assert dist.log_prob(actions).shape == (7,) and dist.entropy().shape == (7,)
    assert model.policy_head.mode(pd_params).shape == actions.shape


def test_nature_cnn_actor_critic_shapes():
    model = ActorCritic((4, 84, 84), "discrete", 6, shared_trunk=True, generator=gen())
    assert isinstance(model.trunk, NatureCNN)
    pd_params, value = model(torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8))
    assert pd_params.shape == (3, 6) and value.shape == (3,)


def test_parameter_counts_shared_vs_separate():
    trunk = (4 * 64 + 64) + (64 * 64 + 64)  # two hidden layers on a 4-dim observation
    policy, value = 64 * 2 + 2, 64 + 1
    separate = ActorCritic((4,), "discrete", 2, hidden_sizes=[64, 64], shared_trunk=False)
    shared = ActorCritic((4,), "discrete", 2, hidden_sizes=[64, 64], shared_trunk=True)
    assert n_params(separate) == 2 * trunk + policy + value == 9155
    assert n_params(shared) == trunk + policy + value == 4675
    assert n_params(separate.actor) == trunk + policy and n_params(separate.critic) == trunk + value
    # Gaussian: + the log-std vector
    gauss = ActorCritic((4,), "continuous", 3, hidden_sizes=[64, 64])
    assert n_params(gauss) == 2 * trunk + (64 * 3 + 3) + 3 + value
    cnn = NatureCNN()
    shared_cnn = ActorCritic((4, 84, 84), "discrete", 6, shared_trunk=True)
    separate_cnn = ActorCritic((4, 84, 84), "discrete", 6, shared_trunk=False)
    heads = (512 * 6 + 6) + (512 + 1)
    assert n_params(shared_cnn) == n_params(cnn) + heads
    assert n_params(separate_cnn) == 2 * n_params(cnn) + heads


def test_separate_networks_do_not_share_parameters():
    model = ActorCritic((4,), "continuous", 2, shared_trunk=False)
    actor, critic = {id(p) for p in model.actor.parameters()}, {id(p) for p in model.critic.parameters()}
    assert not actor & critic and actor | critic == {id(p) for p in model.parameters()}
    assert model.policy_head.log_std is model.actor.head.log_std


# ----------------------------------------------------------------------------- Gaussian head


@pytest.mark.parametrize("init", [0.0, -0.5])
def test_log_std_init_and_state_independence(init):
    model = ActorCritic((3,), "continuous", 2, log_std_init=init, generator=gen())
    log_std = model.policy_head.log_std
    assert isinstance(log_std, nn.Parameter) and log_std.shape == (2,)
    torch.testing.assert_close(log_std.detach(), torch.full((2,), init))
    dist = model.distribution(model.pd_params(torch.randn(5, 3)))
    torch.testing.assert_close(dist.base_dist.stddev, torch.full((5, 2), math.exp(init)))


def test_gaussian_distribution_sums_over_action_dimensions_and_detaches():
    head = GaussianHead(4, 3, log_std_init=-1.0)
    mean = torch.randn(6, 3, requires_grad=True)
    a = torch.randn(6, 3)
    normal = torch.distributions.Normal(mean, math.exp(-1.0))
    torch.testing.assert_close(head.distribution(mean).log_prob(a), normal.log_prob(a).sum(-1))
    frozen = head.distribution(mean, detach=True)
    with torch.no_grad():
        head.log_std.add_(1.0)
    assert frozen.base_dist.stddev[0, 0].item() == pytest.approx(math.exp(-1.0))  # unaffected by the change
    assert not frozen.base_dist.loc.requires_grad


def test_sampling_uses_the_given_generator():
    head = CategoricalHead(4, 5)
    logits = torch.randn(100, 5)
    torch.manual_seed(0)
    a = head.sample(logits, gen(3))
    torch.manual_seed(1)  # the global RNG plays no role
    b = head.sample(logits, gen(3))
    assert torch.equal(a, b) and a.dtype == torch.int64
    g = GaussianHead(4, 2)
    mean = torch.zeros(1000, 2)
    x = g.sample(mean, gen(5))
    assert torch.equal(x, g.sample(mean, gen(5)))
    assert x.std().item() == pytest.approx(1.0, abs=0.1)  # σ = exp(0)


# ----------------------------------------------------------------------------- initialization


def test_orthogonal_init_gains_and_zero_biases():
    model = ActorCritic((8,), "discrete", 4, hidden_sizes=[16, 16], generator=gen())
    first = model.actor.trunk[0].weight  # 16 × 8: orthonormal columns, times √2
    torch.testing.assert_close(first.T @ first, 2.0 * torch.eye(8), atol=1e-5, rtol=0)
    head = model.actor.head.logits.weight  # 4 × 16: orthonormal rows, times 0.01
    torch.testing.assert_close(head @ head.T, 1e-4 * torch.eye(4), atol=1e-9, rtol=0)
    value = model.critic.head.weight  # 1 × 16, gain 1
    assert value.norm().item() == pytest.approx(1.0, rel=1e-5)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(p) == 0, name


def test_init_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    a = ActorCritic((4,), "continuous", 2, generator=gen(7))
    after = torch.rand(3)
    b = ActorCritic((4,), "continuous", 2, generator=gen(7))
    assert torch.equal(expected, after)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), n
    c = orthogonal_init(nn.Linear(3, 3), 1.0, gen(8))
    assert c.bias.abs().sum() == 0


# ----------------------------------------------------------------------------- errors


def test_errors_are_clear():
    with pytest.raises(ValueError, match="observations of shape"):
        ActorCritic((2, 3), "discrete", 2)
    with pytest.raises(ValueError, match="activation"):
        ActorCritic((3,), "discrete", 2, activation="sigmoid")
    with pytest.raises(ValueError, match="action kind"):
        ActorCritic((3,), "MultiDiscrete", 2)
    with pytest.raises(ValueError, match="action_size"):
        ActorCritic((3,), "discrete", 0)
