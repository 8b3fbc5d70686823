"""rlkit.lessons.nb05_trust_region.demos: the numbers behind notebook 05, against independent computations
(dense Fisher and dense K-FAC blocks, the categorical KL written out, closed forms of the rule)."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import vector_to_parameters, parameters_to_vector

from rlkit.lessons.nb05_trust_region import demos as trd
from rlkit.critic import categorical_fisher_sqrt
from rlkit.fisher import Categorical, fisher_matrix
from rlkit.kfac import KFAC

DTYPE = torch.float64


@pytest.fixture(scope="module")
def batch():
    return trd.fixed_batch()


def categorical_kl(old_logits, new_logits):
    """Mean over rows of Σ_a p_a (log p_a − log p'_a), written out (no torch.distributions)."""
    log_p, log_q = torch.log_softmax(old_logits.detach(), -1), torch.log_softmax(new_logits.detach(), -1)
    return float((log_p.exp() * (log_p - log_q)).sum(-1).mean())


def stepped_copy(batch, name, eta):
    policy = copy.deepcopy(batch.policy)
    with torch.no_grad():
        vector_to_parameters(parameters_to_vector(policy.parameters()) + eta * batch.directions[name].vector,
                             policy.parameters())
    return policy


# ------------------------------------------------------------------ the fixed batch


def test_fixed_batch_is_deterministic(batch):
    again = trd.fixed_batch()
    assert torch.equal(again.gradient, batch.gradient)
    for name in trd.PRECONDITIONERS:
        assert torch.equal(again.directions[name].vector, batch.directions[name].vector)
        assert again.directions[name].quadratic == batch.directions[name].quadratic


def test_fixed_batch_policy_is_no_longer_uniform_and_gradient_is_the_policy_gradient(batch):
    assert 0.5 < batch.entropy < math.log(3) - 0.05
    logits = batch.policy(batch.contexts)
    objective = (batch.advantages * torch.log_softmax(logits, -1).gather(1, batch.actions[:, None]).squeeze(1)).mean()
    grads = torch.autograd.grad(objective, list(batch.policy.parameters()))
    assert torch.allclose(torch.cat([g.reshape(-1) for g in grads]), batch.gradient, rtol=1e-12, atol=1e-14)


def test_exact_direction_is_the_damped_natural_gradient_and_q_uses_the_undamped_fisher(batch):
    fisher = fisher_matrix(batch.policy, batch.contexts, Categorical())
    assert torch.allclose(fisher, batch.fisher, rtol=1e-12, atol=1e-14)
    d = batch.directions["exact"]
    eye = torch.eye(len(batch.gradient), dtype=DTYPE)
    assert torch.allclose(d.vector, torch.linalg.solve(fisher + batch.damping * eye, batch.gradient), rtol=1e-9, atol=1e-12)
    assert d.quadratic == pytest.approx(float(d.vector @ fisher @ d.vector), rel=1e-12)
    assert batch.limit_ratio("exact") == 1.0


def test_kfac_direction_against_dense_damped_kfac_blocks(batch):
    """Δ = F̃⁻¹g and q = gᵀF̃⁻¹g with F̃ = block-diag(S ⊗ A + λI), formed densely."""
    policy = copy.deepcopy(batch.policy)
    kfac = KFAC(policy, damping=batch.damping, damping_mode="eigen", stats_decay=0.0)
    logits = policy(batch.contexts)
    kfac.update_stats_exact([(logits, categorical_fisher_sqrt(logits))])
    blocks = [kfac.layers[name].dense_block(damped=True) for name in ("0", "2")]
    kfac.remove()
    dense = torch.block_diag(*blocks)  # parameter order: W0, b0, W2, b2 = named_parameters()
    expected = torch.linalg.solve(dense, batch.gradient)
    d = batch.directions["kfac"]
    assert torch.allclose(d.vector, expected, rtol=1e-8, atol=1e-11)
    assert d.quadratic == pytest.approx(float(batch.gradient @ expected), rel=1e-9)
    assert d.exact_quadratic == pytest.approx(float(d.vector @ batch.fisher @ d.vector), rel=1e-12)


def test_measured_kl_is_the_categorical_kl_after_the_step(batch):
    for name in trd.PRECONDITIONERS:
        for eta in (0.01, 0.2):
            new_logits = stepped_copy(batch, name, eta)(batch.contexts)
            expected = categorical_kl(batch.policy(batch.contexts), new_logits)
            assert batch.measured_kl(name, eta) == pytest.approx(expected, rel=1e-10)
            assert torch.allclose(batch.stepped_logits(name, eta), new_logits.detach(), rtol=1e-12, atol=1e-13)


def test_step_follows_the_rule_in_both_conventions(batch):
    for name, d in batch.directions.items():
        q = d.quadratic
        paper = trd.step_at(batch, name, 1e-3, eta_max=10.0)
        baselines = trd.step_at(batch, name, 1e-3, eta_max=10.0, convention="baselines")
        assert paper["eta"] == pytest.approx(math.sqrt(2e-3 / q), rel=1e-12)
        assert baselines["eta"] == pytest.approx(math.sqrt(1e-3 / q), rel=1e-12)
        assert paper["predicted_kl"] == pytest.approx(0.5 * paper["eta"] ** 2 * q, rel=1e-12)
        assert paper["predicted_kl"] == pytest.approx(1e-3, rel=1e-12)
        assert baselines["predicted_kl"] == pytest.approx(0.5e-3, rel=1e-12)  # same δ: half the predicted KL
        assert not paper["capped"] and not baselines["capped"]


@pytest.mark.parametrize("convention", ["paper", "baselines"])
def test_delta_cap_is_where_eta_max_takes_over(batch, convention):
    eta_max = 0.1
    for name, d in batch.directions.items():
        cap = trd.delta_cap(d.quadratic, eta_max, convention)
        assert cap == pytest.approx((0.5 if convention == "paper" else 1.0) * eta_max**2 * d.quadratic, rel=1e-12)
        below = trd.step_at(batch, name, cap * 0.99, eta_max, convention)
        above = trd.step_at(batch, name, cap * 1.01, eta_max, convention)
        assert below["eta"] < eta_max and not below["capped"]
        assert above["eta"] == eta_max and above["capped"]  # exactly η_max
        assert above["predicted_kl"] == pytest.approx(0.5 * eta_max**2 * d.quadratic, rel=1e-12)


def test_exact_fisher_ratio_tends_to_one_as_delta_shrinks(batch):
    errors = [abs(trd.step_at(batch, "exact", delta, 1e9)["ratio"] - 1) for delta in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)]
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 0.005


def test_kfac_ratio_tends_to_its_model_error_not_to_one(batch):
    limit = batch.limit_ratio("kfac")
    assert limit > 1.2  # on this batch K-FAC's quadratic underestimates the KL clearly
    ratio = trd.step_at(batch, "kfac", 1e-7, 1e9)["ratio"]
    assert ratio == pytest.approx(limit, rel=2e-3)


def test_curves_over_delta(batch):
    deltas = np.logspace(-4, -1, 13)
    curves = trd.step_size_curves(batch, deltas, eta_max=0.2)
    for name, c in curves.items():
        q = batch.directions[name].quadratic
        assert np.all(np.diff(c["measured_kl"]) >= 0)  # a larger δ never gives a smaller measured KL
        assert np.array_equal(c["capped"], deltas >= c["delta_cap"])
        assert np.all(c["eta"][c["capped"]] == 0.2)
        assert np.allclose(c["predicted_kl"][~c["capped"]], deltas[~c["capped"]], rtol=1e-12)
        assert np.allclose(c["predicted_kl"][c["capped"]], 0.5 * 0.2**2 * q, rtol=1e-12)
        assert np.ptp(c["measured_kl"][c["capped"]]) == 0  # capped: one step, one KL


def test_panel_data_holds_both_conventions_and_the_marked_point(batch):
    data = trd.step_size_panel_data(batch, delta=0.003, eta_max=0.5)
    assert data["convention"] == "paper" and data["other"] == "baselines"
    for name in trd.PRECONDITIONERS:
        uncapped = ~data["curves"][name]["capped"]
        assert np.allclose(data["other_convention"][name][uncapped], data["deltas"][uncapped] / 2, rtol=1e-12)
        assert data["at_delta"][name] == trd.step_at(batch, name, 0.003, 0.5)
        assert data["limit_ratio"][name] == batch.limit_ratio(name)
    assert data["limits"] == trd.panel_limits(batch, data["deltas"])  # no control moves an axis
    with pytest.raises(ValueError):
        trd.step_size_panel_data(batch, convention="kl_clip")


# ------------------------------------------------------------------ the bandit


class Tabular(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = nn.Parameter(logits)

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1)


def test_tabular_fisher_is_the_output_fisher():
    logits = torch.tensor([0.3, -1.0, 2.0, 0.0, 0.5], dtype=DTYPE)
    dense = fisher_matrix(Tabular(logits), torch.zeros(1, 1, dtype=DTYPE), Categorical())
    assert torch.allclose(Categorical().output_fisher(logits[None])[0], dense, rtol=1e-12, atol=1e-14)


def test_bandit_rules():
    fixed = trd.bandit_runs("fixed", 0.3, runs=4, updates=30)
    assert np.all(fixed["eta"] == 0.3)
    tr = trd.bandit_runs("trust_region", 0.01, runs=4, updates=30, eta_max=1.0)
    capped = tr["eta"] == 1.0
    assert np.allclose(tr["predicted_kl"][~capped], 0.01, rtol=1e-10)
    assert np.all(tr["predicted_kl"][capped] <= 0.01 + 1e-15)
    assert np.allclose(tr["predicted_kl"], 0.5 * tr["eta"] ** 2 * tr["quadratic"], rtol=1e-12)
    again = trd.bandit_runs("trust_region", 0.01, runs=4, updates=30, eta_max=1.0)
    for key in tr:
        assert np.array_equal(tr[key], again[key]), key
    with pytest.raises(ValueError):
        trd.bandit_runs("adam", 0.1)


def test_bandit_records_match_the_logits_it_visits():
    run = trd.bandit_runs("fixed", 0.5, runs=3, updates=6)
    logits = torch.as_tensor(run["logits"])
    assert logits.shape == (3, 7, 5) and torch.all(logits[:, 0] == 0)
    for t in range(6):
        for r in range(3):
            assert run["measured_kl"][r, t] == pytest.approx(categorical_kl(logits[r, t][None], logits[r, t + 1][None]),
                                                             rel=1e-9, abs=1e-15)
        p = torch.softmax(logits[:, t], -1)
        assert np.allclose(run["entropy"][:, t], -(p * p.log()).sum(-1).numpy(), rtol=1e-12)
        assert np.allclose(run["p_best"][:, t], p[:, -1].numpy(), rtol=1e-12)
        assert np.allclose(run["expected_reward"][:, t], (p @ torch.linspace(0, 1, 5, dtype=DTYPE)).numpy(), rtol=1e-12)
    assert np.allclose(run["final_probs"], torch.softmax(logits[:, -1], -1).numpy(), rtol=1e-12)


def test_bandit_reward_scale_invariance():
    """Rewards × 10: the trust-region run is unchanged while η_max does not bind; a fixed rate α acts as 10α."""
    kw = dict(runs=6, updates=40)
    tr1 = trd.bandit_runs("trust_region", 0.01, reward_scale=1.0, eta_max=1e6, **kw)
    tr10 = trd.bandit_runs("trust_region", 0.01, reward_scale=10.0, eta_max=1e6, **kw)
    assert np.allclose(tr1["entropy"], tr10["entropy"], rtol=1e-6, atol=1e-9)
    assert np.allclose(tr1["measured_kl"], tr10["measured_kl"], rtol=1e-6, atol=1e-12)
    fixed10 = trd.bandit_runs("fixed", 0.1, reward_scale=10.0, **kw)
    fixed1 = trd.bandit_runs("fixed", 1.0, reward_scale=1.0, **kw)
    assert np.allclose(fixed10["entropy"], fixed1["entropy"], rtol=1e-6, atol=1e-9)


def test_bandit_lesson_fixed_rate_collapses_trust_region_does_not():
    fixed = trd.bandit_summary(trd.bandit_runs("fixed", 1.0))
    tr = trd.bandit_summary(trd.bandit_runs("trust_region", 0.01, eta_max=1.0))
    assert fixed["stuck_wrong"] > 0 and fixed["max_kl"] > 1.0 and fixed["entropy_at"] < 0.2
    assert tr["on_best"] == 1.0 and tr["stuck_wrong"] == 0 and tr["max_kl"] < 0.02 and tr["entropy_at"] > 0.5


def test_bandit_summary_on_a_hand_made_result():
    result = {
        "final_probs": np.array([[0.0, 0.0, 0.0, 0.0, 1.0], [0.995, 0.0, 0.0, 0.0, 0.005], [0.3, 0.0, 0.0, 0.0, 0.7]]),
        "means": np.linspace(0, 2, 5),
        "entropy": np.array([[1.0, 0.5], [2.0, 0.1], [3.0, 0.2]]),
        "measured_kl": np.array([[1e-3, 2e-3], [5.0, 0.0], [1e-4, 1e-4]]),
    }
    s = trd.bandit_summary(result, at=0)
    assert s["entropy_at"] == 2.0 and s["final_entropy"] == 0.2
    assert s["on_best"] == pytest.approx(2 / 3) and s["stuck_wrong"] == pytest.approx(1 / 3)
    assert s["final_reward"] == pytest.approx((1.0 + 0.005 + 0.7) / 3)
    assert s["max_kl"] == 5.0
