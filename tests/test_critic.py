"""The Gauss-Newton critic and the Fisher-pass losses (rlkit.critic), with K-FAC.

References are dense Jacobians from torch.func and closed forms; MC checks use many
samples and a stated tolerance, and are paired with exact sample-by-sample identities
(the noise is regenerated from the same seed) so that they are tight where possible.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from rlkit.critic import (
    GAUSSIAN_LOG_STD_FISHER,
    GaussNewtonCritic,
    categorical_fisher_loss,
    categorical_fisher_sqrt,
    gaussian_fisher_sqrt,
    joint_fisher_loss,
    value_fisher_loss,
    value_fisher_sqrt,
)
from support.curvature import per_sample_jacobian
from rlkit.kfac import KFAC

DT = torch.float64
TIGHT = dict(rtol=1e-9, atol=1e-11)


def layer_slice(model: nn.Module, prefix: str) -> slice:
    i, parts = 0, []
    for name, p in model.named_parameters():
        if name.rsplit(".", 1)[0] == prefix:
            parts.append(slice(i, i + p.numel()))
        i += p.numel()
    return slice(parts[0].start, parts[-1].stop)


def kron_param_order(S, A, fan_in):
    """Row-major kron(S, A) reordered to [W.reshape(-1), b] (layers with bias)."""
    d_out, d_in = S.shape[0], A.shape[0]
    order = [i * d_in + j for i in range(d_out) for j in range(fan_in)] + [i * d_in + fan_in for i in range(d_out)]
    K = torch.kron(S, A)
    return K[order][:, order]


def value_net():
    return nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 1)).to(DT)


# --------------------------------------------------------------------------- value head


@pytest.mark.parametrize("sigma", [1.0, 0.7])
def test_value_fisher_loss_gradient_is_eps_over_sigma(sigma):
    v = torch.randn(50, 1, dtype=DT, requires_grad=True)
    loss = value_fisher_loss(v, sigma, generator=torch.Generator().manual_seed(3))
    (g,) = torch.autograd.grad(loss, v)
    eps = torch.randn((50, 1), generator=torch.Generator().manual_seed(3), dtype=DT)
    torch.testing.assert_close(g, -eps / sigma, **TIGHT)  # −∂log N(v̂; V, σ²)/∂V = −ε/σ


def test_baselines_loss_gradient_is_two_eps():
    v = torch.randn(50, dtype=DT, requires_grad=True)
    loss = value_fisher_loss(v, style="baselines", generator=torch.Generator().manual_seed(4))
    (g,) = torch.autograd.grad(loss, v)
    eps = torch.randn((50,), generator=torch.Generator().manual_seed(4), dtype=DT)
    torch.testing.assert_close(g, 2 * eps, **TIGHT)  # second moment 4: σ = 0.5


@pytest.mark.parametrize("sigma", [1.0, 0.7])
def test_critic_block_exact_expectation_equals_JtJ_over_sigma_squared(sigma):
    """At batch size 1 (any network) the exact-expectation K-FAC block is JᵀJ/σ²."""
    torch.manual_seed(0)
    model = value_net()
    kfac = KFAC(model, stats_decay=0.0)
    x = torch.randn(1, 3, dtype=DT)
    v = model(x)
    kfac.update_stats_exact([(v, value_fisher_sqrt(v, sigma))])
    J = per_sample_jacobian(model, x)[0]  # (1, P)
    G = J.T @ J / sigma**2
    for name, layer in kfac.layers.items():
        sl = layer_slice(model, name)
        torch.testing.assert_close(kron_param_order(layer.S, layer.A, layer.fan_in), G[sl, sl], **TIGHT)


@pytest.mark.parametrize(
    "style,sigma,scale", [("gaussian", 1.0, 1.0), ("gaussian", 0.7, 1 / 0.49), ("baselines", None, 4.0)]
)
def test_critic_block_monte_carlo(style, sigma, scale):
    """One state repeated M times, sampled values: S = mean(ε²)·c·J_sᵀJ_s exactly for the
    drawn ε (tight), and → c·J_sᵀJ_s with c = 1/σ² (4 for baselines) within MC error."""
    torch.manual_seed(1)
    m = 20_000
    model = value_net()
    kfac = KFAC(model, stats_decay=0.0)
    x = torch.randn(1, 3, dtype=DT)
    v = model(x.expand(m, 3))
    kw = dict(style="baselines") if style == "baselines" else dict(sigma=sigma)
    kfac.update_stats(value_fisher_loss(v, generator=torch.Generator().manual_seed(5), **kw))
    eps = torch.randn((m, 1), generator=torch.Generator().manual_seed(5), dtype=DT)
    J = per_sample_jacobian(model, x)[0]
    G = J.T @ J
    mean_eps2 = (eps**2).mean().item()
    for name, layer in kfac.layers.items():
        sl = layer_slice(model, name)
        block = kron_param_order(layer.S, layer.A, layer.fan_in)
        torch.testing.assert_close(block, mean_eps2 * scale * G[sl, sl], **TIGHT)
        rel = (block - scale * G[sl, sl]).norm() / (scale * G[sl, sl]).norm()
        assert rel < 0.05  # MC: sqrt(2/M) ≈ 1%


def test_baselines_style_equals_sigma_half():
    torch.manual_seed(2)
    model = value_net()
    x = torch.randn(30, 3, dtype=DT)
    k_b, k_h = KFAC(model, stats_decay=0.0), KFAC(model, stats_decay=0.0)
    v = model(x)
    k_b.update_stats(value_fisher_loss(v, style="baselines", generator=torch.Generator().manual_seed(6)))
    k_h.update_stats(value_fisher_loss(v, 0.5, generator=torch.Generator().manual_seed(6)))
    for name in k_b.layers:
        torch.testing.assert_close(k_b.layers[name].S, k_h.layers[name].S, **TIGHT)
    assert GaussNewtonCritic(style="baselines").block_scale == 4.0
    assert GaussNewtonCritic(sigma=0.7).block_scale == pytest.approx(1 / 0.49)
    assert GaussNewtonCritic().block_scale == 1.0


def test_gauss_newton_critic_object_matches_functions():
    v = torch.randn(7, 1, dtype=DT, requires_grad=True)
    c = GaussNewtonCritic(sigma=0.7)
    a = c.fisher_loss(v, generator=torch.Generator().manual_seed(1))
    b = value_fisher_loss(v, 0.7, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(c.fisher_sqrt(v), value_fisher_sqrt(v, 0.7), rtol=0, atol=0)
    torch.testing.assert_close(GaussNewtonCritic(style="baselines").fisher_sqrt(v), value_fisher_sqrt(v, 0.5))


# --------------------------------------------------------------------------- policy outputs


def test_categorical_fisher_sqrt_and_sampled_score():
    torch.manual_seed(3)
    logits = torch.randn(4, 5, dtype=DT)
    p = torch.softmax(logits, -1)
    B = categorical_fisher_sqrt(logits)
    F_logits = torch.diag_embed(p) - p[..., :, None] * p[..., None, :]
    torch.testing.assert_close(B @ B.transpose(-1, -2), F_logits, **TIGHT)
    # sampled score: −∂(−log π(a))/∂logits = onehot(a) − p, exactly for the drawn a
    z = logits.clone().requires_grad_(True)
    loss = categorical_fisher_loss(z, generator=torch.Generator().manual_seed(8))
    (g,) = torch.autograd.grad(loss, z)
    a = torch.multinomial(p, 1, generator=torch.Generator().manual_seed(8)).squeeze(1)
    torch.testing.assert_close(-g, nn.functional.one_hot(a, 5).to(DT) - p, **TIGHT)


def test_categorical_sampled_fisher_converges_to_exact():
    logits = torch.tensor([[0.3, -1.0, 0.8]], dtype=DT).expand(100_000, 3).clone().requires_grad_(True)
    (g,) = torch.autograd.grad(categorical_fisher_loss(logits, generator=torch.Generator().manual_seed(9)), logits)
    mc = g.T @ g / g.shape[0]
    p = torch.softmax(logits[0].detach(), -1)
    torch.testing.assert_close(mc, torch.diag(p) - torch.outer(p, p), rtol=0, atol=0.01)


def test_gaussian_fisher_sqrt_is_inverse_std():
    mean = torch.zeros(3, 2, dtype=DT)
    std = torch.tensor([0.5, 2.0], dtype=DT)
    B = gaussian_fisher_sqrt(mean, std)
    torch.testing.assert_close(B @ B.transpose(-1, -2), torch.diag(std**-2).expand(3, 2, 2), **TIGHT)
    assert GAUSSIAN_LOG_STD_FISHER == 2.0


# --------------------------------------------------------------------------- shared trunk


class SharedTrunk(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 5), nn.Tanh())
        self.pi = nn.Linear(5, 4)
        self.v = nn.Linear(5, 1)

    def forward(self, x):
        h = self.trunk(x)
        return self.pi(h), self.v(h)


def test_shared_trunk_joint_fisher_is_sum_of_policy_and_value_parts():
    torch.manual_seed(4)
    sigma = 0.7
    model = SharedTrunk().to(DT)
    x = torch.randn(6, 3, dtype=DT)
    kj, kp, kv = (KFAC(model, stats_decay=0.0) for _ in range(3))
    logits, v = model(x)
    Bp, Bv = categorical_fisher_sqrt(logits), value_fisher_sqrt(v, sigma)
    kj.update_stats_exact([(logits, Bp), (v, Bv)])
    kp.update_stats_exact([(logits, Bp)])
    kv.update_stats_exact([(v, Bv)])
    for name in ("trunk.0", "trunk.2"):
        torch.testing.assert_close(kj.layers[name].A, kp.layers[name].A, **TIGHT)
        torch.testing.assert_close(kj.layers[name].S, kp.layers[name].S + kv.layers[name].S, **TIGHT)
    torch.testing.assert_close(kj.layers["pi"].S, kp.layers["pi"].S, **TIGHT)
    torch.testing.assert_close(kj.layers["v"].S, kv.layers["v"].S, **TIGHT)
    assert kp.layers["v"].S is None and kv.layers["pi"].S is None  # untouched heads


def test_shared_trunk_batch_one_equals_dense_joint_fisher():
    """N = 1: every K-FAC block equals the dense joint Fisher block
    Jᵀ blockdiag(diag p − ppᵀ, 1/σ²) J = policy Fisher + value Fisher."""
    torch.manual_seed(5)
    sigma = 0.7
    model = SharedTrunk().to(DT)
    kfac = KFAC(model, stats_decay=0.0)
    x = torch.randn(1, 3, dtype=DT)
    logits, v = model(x)
    kfac.update_stats_exact([(logits, categorical_fisher_sqrt(logits)), (v, value_fisher_sqrt(v, sigma))])
    J = per_sample_jacobian(model, x)[0]  # (5, P): 4 logits then the value
    p = torch.softmax(logits[0].detach(), -1)
    F_pi = J[:4].T @ (torch.diag(p) - torch.outer(p, p)) @ J[:4]
    F_v = J[4:].T @ J[4:] / sigma**2
    for name, layer in kfac.layers.items():
        sl = layer_slice(model, name)
        torch.testing.assert_close(kron_param_order(layer.S, layer.A, layer.fan_in), (F_pi + F_v)[sl, sl], **TIGHT)


def test_shared_trunk_sampled_joint_loss_is_sum_in_expectation():
    """a and v drawn independently: the joint MC statistics equal the sum of the parts
    up to a zero-mean cross term (MC tolerance), and the loss is the sum exactly."""
    torch.manual_seed(6)
    model = SharedTrunk().to(DT)
    m = 20_000
    x = torch.randn(1, 3, dtype=DT).expand(m, 3)
    kj, kp, kv = (KFAC(model, stats_decay=0.0) for _ in range(3))
    logits, v = model(x)
    lp = categorical_fisher_loss(logits, generator=torch.Generator().manual_seed(1))
    lv = value_fisher_loss(v, generator=torch.Generator().manual_seed(2))
    joint = joint_fisher_loss(lp, lv)
    torch.testing.assert_close(joint, lp + lv, rtol=0, atol=0)
    kj.update_stats(joint)
    kp.update_stats(lp)
    kv.update_stats(lv)
    for name in ("trunk.0", "trunk.2"):
        total = kp.layers[name].S + kv.layers[name].S
        rel = (kj.layers[name].S - total).norm() / total.norm()
        assert rel < 0.03


def test_separate_actor_and_critic_use_two_preconditioners():
    torch.manual_seed(7)
    actor = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 4)).to(DT)
    critic = value_net()
    ka, kc = KFAC(actor, damping=0.1), KFAC(critic, damping=0.1)
    x = torch.randn(10, 3, dtype=DT)
    logits, v = actor(x), critic(x)
    ka.update_stats(categorical_fisher_loss(logits))
    kc.update_stats(value_fisher_loss(v))
    assert set(ka.layers) == {"0", "2"} and set(kc.layers) == {"0", "2", "4"}
    loss = -(torch.log_softmax(logits, -1)[:, 0] * torch.randn(10, dtype=DT)).sum() + (v - 1).pow(2).sum()
    loss.backward()
    critic_grads = [p.grad.clone() for p in critic.parameters()]
    qa = ka.precondition()
    for p, g in zip(critic.parameters(), critic_grads):  # the actor's K-FAC leaves the critic alone
        torch.testing.assert_close(p.grad, g, rtol=0, atol=0)
    qc = kc.precondition()
    assert qa > 0 and qc > 0 and ka.steps == 1 and kc.steps == 1


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("inf")])
def test_bad_sigma_raises_naming_it(sigma):
    v = torch.zeros(3)
    with pytest.raises(ValueError, match="sigma"):
        value_fisher_loss(v, sigma)
    with pytest.raises(ValueError, match="sigma"):
        value_fisher_sqrt(v, sigma)
    with pytest.raises(ValueError, match="sigma"):
        GaussNewtonCritic(sigma=sigma)


def test_bad_style_raises():
    with pytest.raises(ValueError, match="style"):
        value_fisher_loss(torch.zeros(3), style="mse")
    with pytest.raises(ValueError, match="sigma"):
        value_fisher_loss(torch.zeros(3), 0.5, style="baselines")
    with pytest.raises(ValueError, match="style"):
        GaussNewtonCritic(style="mse")
