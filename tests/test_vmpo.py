"""rlkit.vmpo: V-MPO's EM pieces against independent computations.

References: NumPy/Python closed forms in float64 (softmax, log-mean-exp, KL(ψ ‖ uniform)),
brute-force sorting for the top-k rule, torch.distributions.kl_divergence for the KLs,
autograd and central finite differences for derivatives, the paper's Table 1 (rlkit.experiments.data).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Independent, Normal, kl_divergence

from rlkit import vmpo
from rlkit.experiments.data import find_row, load_table
from rlkit.vmpo import (
    PAPER_INITIAL_DUALS,
    DualVariables,
    categorical_kl,
    decoupled_gaussian_kl,
    e_step,
    kl_constraint_loss,
    policy_loss,
    sample_eps_alpha,
    top_k_mask,
)

DT = torch.float64
TIGHT = dict(rtol=1e-12, atol=1e-12)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def reference_e_step(adv: np.ndarray, selected: np.ndarray, eta: float, eps_eta: float):
    """Independent float64 E-step on the selected entries: ψ, L_η, KL(ψ ‖ uniform) (max-shifted by hand)."""
    a = adv[selected] / eta
    m = a.max()
    e = np.exp(a - m)
    psi = e / e.sum()
    k = a.size
    loss = eta * eps_eta + eta * (m + math.log(e.sum()) - math.log(k))
    kl = float(np.sum(psi * np.log(k * psi, where=psi > 0, out=np.zeros_like(psi))))
    return psi, loss, kl


def brute_force_top_k(values: list[float], valid: list[bool], fraction: float) -> set[int]:
    """The documented rule spelled out: k = ceil(fraction·n) (tolerant), largest first, ties by index."""
    idx = [i for i in range(len(values)) if valid[i]]
    n = len(idx)
    x = fraction * n
    k = round(x) if abs(x - round(x)) <= 1e-9 * max(1.0, x) else math.ceil(x)
    k = min(max(k, 1), n)
    return set(sorted(idx, key=lambda i: (-values[i], i))[:k])


# --------------------------------------------------------------------------- top-k


@pytest.mark.parametrize(
    "n, fraction, k",
    [
        (5, 0.5, 3),  # odd: ceil(2.5)
        (4, 0.5, 2),
        (1, 0.5, 1),
        (7, 0.3, 3),  # ceil(2.1)
        (10, 0.3, 3),  # 0.3·10 = 3.0000000000000004 in floating point: still 3
        (10, 0.7, 7),  # 7.000000000000001
        (10, 0.1, 1),
        (6, 1 / 3, 2),
        (9, 2 / 3, 6),
        (3, 1.0, 3),
        (1000, 1e-6, 1),  # at least one
    ],
)
def test_top_k_count_rule(n, fraction, k):
    adv = torch.randn(n, generator=gen(n), dtype=DT)
    mask = top_k_mask(adv, fraction)
    assert mask.dtype == torch.bool and mask.shape == adv.shape
    assert int(mask.sum()) == k
    # the k largest (distinct values): the smallest selected beats the largest unselected
    if k < n:
        assert adv[mask].min() > adv[~mask].max()


def test_top_k_ties_go_to_the_earlier_index():
    adv = torch.tensor([2.0, 1.0, 2.0, 2.0, 0.0, 2.0], dtype=DT)  # four 2's, k = 3
    assert top_k_mask(adv, 0.5).tolist() == [True, False, True, True, False, False]
    # all equal: the first k in row-major order, any shape
    same = torch.zeros(3, 4, dtype=DT)
    expected = torch.zeros(12, dtype=torch.bool)
    expected[:6] = True
    assert torch.equal(top_k_mask(same, 0.5), expected.reshape(3, 4))
    # -0.0 and 0.0 are equal: a tie, broken by index
    assert top_k_mask(torch.tensor([-0.0, 0.0, 0.0]), 1 / 3).tolist() == [True, False, False]


@pytest.mark.parametrize("seed", range(12))
def test_top_k_matches_brute_force_with_ties_padding_and_shapes(seed):
    g = gen(seed)
    shape = [(17,), (4, 5), (3, 2, 3)][seed % 3]
    adv = torch.randint(-3, 4, shape, generator=g).to(DT)  # many ties
    valid = torch.rand(shape, generator=g) < 0.7
    valid.view(-1)[seed % valid.numel()] = True
    fraction = [0.5, 0.3, 0.25, 1.0, 0.9, 0.01][seed % 6]
    mask = top_k_mask(adv, fraction, valid)
    chosen = set(torch.nonzero(mask.reshape(-1)).reshape(-1).tolist())
    assert chosen == brute_force_top_k(adv.reshape(-1).tolist(), valid.reshape(-1).tolist(), fraction)


def test_top_k_never_selects_padding_even_if_largest():
    adv = torch.tensor([100.0, float("nan"), float("inf"), 1.0, 2.0, 3.0], dtype=DT)
    valid = torch.tensor([False, False, False, True, True, True])
    mask = top_k_mask(adv, 0.5, valid)  # k = ceil(0.5 · 3) = 2 of the valid ones
    assert mask.tolist() == [False, False, False, False, True, True]


def test_top_k_mask_carries_no_gradient():
    adv = torch.randn(8, dtype=DT, requires_grad=True)
    mask = top_k_mask(adv)
    assert not mask.requires_grad and mask.dtype == torch.bool


# --------------------------------------------------------------------------- E-step


def test_single_selected_sample_identities():
    eps_eta = 0.3
    # The formula with A a leaf: L_η = η ε_η + A, so ∂L/∂A = 1 and ∂L/∂η = ε_η.
    a = torch.tensor([0.7], dtype=DT, requires_grad=True)
    eta = torch.tensor(1.3, dtype=DT, requires_grad=True)
    loss = vmpo._temperature_loss(a, eta, eps_eta)
    d_a, d_eta = torch.autograd.grad(loss, (a, eta))
    assert loss.item() == pytest.approx(1.3 * eps_eta + 0.7, rel=1e-14)
    assert d_a.item() == pytest.approx(1.0, rel=1e-14)
    assert d_eta.item() == pytest.approx(eps_eta, rel=1e-14)
    # The public e_step: one valid sample among padding; same loss, ψ one-hot, KL = 0.
    adv = torch.tensor([5.0, 0.7, -1.0], dtype=DT)
    valid = torch.tensor([False, True, False])
    out = e_step(adv, eta, eps_eta, valid=valid)
    (d_eta,) = torch.autograd.grad(out.loss, eta)
    assert out.num_selected == 1
    assert out.loss.item() == pytest.approx(1.3 * eps_eta + 0.7, rel=1e-14)
    assert d_eta.item() == pytest.approx(eps_eta, rel=1e-12)
    assert out.weights.tolist() == [0.0, 1.0, 0.0]
    assert out.kl.item() == 0.0 and out.max_weight.item() == 1.0


@pytest.mark.parametrize("seed", range(6))
def test_temperature_loss_value_and_eta_derivative_match_closed_form(seed):
    g = gen(seed)
    n = 10 + 7 * seed
    adv = 2.0 * torch.randn(n, generator=g, dtype=DT)
    valid = torch.rand(n, generator=g) < 0.8
    eta_value = [0.05, 0.3, 1.0, 2.5, 10.0, 0.7][seed]
    eps_eta = [0.01, 0.1, 0.5, 0.02, 1.0, 0.2][seed]
    fraction = [0.5, 0.5, 0.3, 1.0, 0.25, 0.6][seed]
    eta = torch.tensor(eta_value, dtype=DT, requires_grad=True)
    out = e_step(adv, eta, eps_eta, top_k_fraction=fraction, valid=valid)

    selected = out.mask.numpy()
    assert selected.sum() == len(brute_force_top_k(adv.tolist(), valid.tolist(), fraction))
    psi, loss, kl = reference_e_step(adv.numpy(), selected, eta_value, eps_eta)
    assert out.loss.item() == pytest.approx(loss, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(out.weights.numpy()[selected], psi, rtol=1e-12, atol=1e-15)
    assert out.kl.item() == pytest.approx(kl, rel=1e-10, abs=1e-12)
    assert out.max_weight.item() == pytest.approx(psi.max(), rel=1e-12)
    assert 0.0 <= out.kl.item() <= math.log(out.num_selected) + 1e-12
    # ∂L_η/∂η = ε_η − KL(ψ ‖ uniform over the selected set)
    (d_eta,) = torch.autograd.grad(out.loss, eta)
    assert d_eta.item() == pytest.approx(eps_eta - kl, rel=1e-10, abs=1e-12)


def test_temperature_loss_advantage_gradient_is_psi():
    """∂L_η/∂A_i = ψ_i: autograd on the formula, and finite differences on the public e_step."""
    g = gen(3)
    adv = torch.randn(11, generator=g, dtype=DT)
    eta, eps_eta = 0.8, 0.1
    out = e_step(adv, eta, eps_eta)
    leaf = adv[out.mask].clone().requires_grad_(True)
    (d_a,) = torch.autograd.grad(vmpo._temperature_loss(leaf, torch.tensor(eta, dtype=DT), eps_eta), leaf)
    torch.testing.assert_close(d_a, out.weights[out.mask], **TIGHT)
    # e_step's own loss as a function of A (central differences; h small enough to keep the selection)
    h = 1e-6
    for i in range(adv.numel()):
        up, down = adv.clone(), adv.clone()
        up[i] += h
        down[i] -= h
        fd = (e_step(up, eta, eps_eta).loss - e_step(down, eta, eps_eta).loss).item() / (2 * h)
        assert fd == pytest.approx(out.weights[i].item(), abs=1e-8)


def test_e_step_trains_eta_only():
    """Advantages detached inside e_step; ψ and the mask carry no gradient."""
    g = gen(4)
    values = torch.randn(9, generator=g, dtype=DT, requires_grad=True)  # a "critic"
    adv = torch.randn(9, generator=g, dtype=DT) - values  # A = G − V carries the critic's graph
    eta = torch.tensor(0.5, dtype=DT, requires_grad=True)
    out = e_step(adv, eta, 0.1)
    assert not out.weights.requires_grad and out.weights.grad_fn is None
    assert not out.mask.requires_grad
    assert not out.kl.requires_grad and not out.max_weight.requires_grad
    d_values, d_adv, d_eta = torch.autograd.grad(out.loss, (values, adv, eta), allow_unused=True)
    assert d_values is None and d_adv is None
    assert d_eta is not None and torch.isfinite(d_eta)


def test_psi_sums_to_one_over_the_selected_set_only():
    g = gen(5)
    adv = torch.randn(4, 6, generator=g, dtype=DT)
    out = e_step(adv, 0.7, 0.1)
    assert out.weights.shape == adv.shape
    assert out.weights.sum().item() == pytest.approx(1.0, rel=1e-14)
    assert bool((out.weights[~out.mask] == 0).all()) and bool((out.weights[out.mask] > 0).all())
    # softmax over the selected set, not over all samples
    over_selected = torch.softmax(adv[out.mask] / 0.7, 0)
    torch.testing.assert_close(out.weights[out.mask], over_selected, **TIGHT)
    assert not torch.allclose(out.weights[out.mask], torch.softmax(adv.reshape(-1) / 0.7, 0)[out.mask.reshape(-1)])


def test_constant_shift_leaves_psi_unchanged():
    g = gen(6)
    adv = torch.randn(15, generator=g, dtype=DT)
    base = e_step(adv, 0.4, 0.2)
    for c in (-37.0, 1e-3, 250.0):
        shifted = e_step(adv + c, 0.4, 0.2)
        assert torch.equal(shifted.mask, base.mask)
        torch.testing.assert_close(shifted.weights, base.weights, rtol=1e-9, atol=1e-12)
        assert shifted.kl.item() == pytest.approx(base.kl.item(), rel=1e-8, abs=1e-12)
        # L_η(A + c) = L_η(A) + c
        assert shifted.loss.item() == pytest.approx(base.loss.item() + c, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_large_advantages_stay_finite_and_correct(dtype):
    adv = torch.tensor([1000.0, 999.0, 0.0, -5.0], dtype=dtype)  # k = 2: 1000 and 999
    eta = torch.tensor(0.1, dtype=dtype, requires_grad=True)
    out = e_step(adv, eta, 0.1)
    (d_eta,) = torch.autograd.grad(out.loss, eta)
    # closed form: z = (10000, 9990); ψ = (1, e^-10)/(1 + e^-10)
    r = math.exp(-10.0)
    psi = [1 / (1 + r), r / (1 + r)]
    lse = 10000.0 + math.log1p(r)
    loss = 0.1 * 0.1 + 0.1 * (lse - math.log(2))
    kl = psi[0] * math.log(2 * psi[0]) + psi[1] * math.log(2 * psi[1])
    tol = dict(rel=1e-12, abs=1e-15) if dtype == torch.float64 else dict(rel=1e-6, abs=1e-6)
    assert all(bool(torch.isfinite(t).all()) for t in (out.loss, out.weights, out.kl, d_eta))
    assert out.loss.item() == pytest.approx(loss, **tol)
    assert out.weights[:2].tolist() == pytest.approx(psi, **tol)
    assert out.kl.item() == pytest.approx(kl, **tol)
    # ∂L_η/∂η = ε_η − KL stays accurate even in float32 (no cancellation of two 10⁴-sized terms)
    assert d_eta.item() == pytest.approx(0.1 - kl, **tol)


def test_masked_samples_get_zero_weight_and_never_enter():
    adv = torch.tensor([50.0, float("nan"), 0.3, -0.2, 0.9, 0.1], dtype=DT, requires_grad=True)
    valid = torch.tensor([False, False, True, True, True, True])
    eta = torch.tensor(0.5, dtype=DT, requires_grad=True)
    out = e_step(adv, eta, 0.1, valid=valid)
    assert out.mask.tolist() == [False, False, True, False, True, False]
    assert out.weights[0].item() == 0.0 and out.weights[1].item() == 0.0
    expected, loss, _ = reference_e_step(adv.detach().numpy(), out.mask.numpy(), 0.5, 0.1)
    np.testing.assert_allclose(out.weights[out.mask].numpy(), expected, rtol=1e-12)
    assert out.loss.item() == pytest.approx(loss, rel=1e-12)
    (d_eta,) = torch.autograd.grad(out.loss, eta)
    assert torch.isfinite(d_eta)


def test_minimizing_the_temperature_loss_drives_the_e_step_kl_to_eps_eta():
    """L_η is convex in η; at its minimum ∂L/∂η = 0, i.e. KL(ψ ‖ uniform) = ε_η."""
    adv = torch.randn(200, generator=gen(7), dtype=DT)
    duals = DualVariables(dtype=DT)
    opt = torch.optim.LBFGS(
        duals.parameters(),
        lr=1.0,
        max_iter=500,
        tolerance_grad=1e-13,
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )
    eps_eta = 0.1

    def closure():
        opt.zero_grad()
        loss = e_step(adv, duals.eta, eps_eta).loss
        loss.backward()
        return loss

    opt.step(closure)
    assert e_step(adv, duals.eta, eps_eta).kl.item() == pytest.approx(eps_eta, abs=1e-8)


# --------------------------------------------------------------------------- M-step


def test_policy_loss_is_a_weighted_sum_and_its_gradient_is_minus_psi():
    g = gen(8)
    adv = torch.randn(12, generator=g, dtype=DT)
    out = e_step(adv, 0.6, 0.1)
    log_probs = (-torch.rand(12, generator=g, dtype=DT) * 3).requires_grad_(True)
    loss = policy_loss(log_probs, out.weights)
    expected = -sum(w * lp for w, lp in zip(out.weights.tolist(), log_probs.tolist()))
    assert loss.item() == pytest.approx(expected, rel=1e-14)
    (d_lp,) = torch.autograd.grad(loss, log_probs)
    torch.testing.assert_close(d_lp, -out.weights, **TIGHT)
    # a sum, not a mean: uniform ψ over k samples gives −mean(log π) over them, not /k again
    uniform = out.mask.to(DT) / out.num_selected
    assert policy_loss(log_probs, uniform).item() == pytest.approx(-log_probs[out.mask].mean().item(), rel=1e-14)


def test_no_gradient_reaches_eta_through_psi():
    g = gen(9)
    adv = torch.randn(10, generator=g, dtype=DT)
    eta = torch.tensor(0.9, dtype=DT, requires_grad=True)
    log_probs = torch.randn(10, generator=g, dtype=DT, requires_grad=True)
    # weights that (wrongly) carry η's graph: policy_loss treats them as constants
    leaky = torch.softmax(adv / eta, 0)
    assert leaky.requires_grad
    d_eta, d_lp = torch.autograd.grad(policy_loss(log_probs, leaky), (eta, log_probs), allow_unused=True)
    assert d_eta is None
    torch.testing.assert_close(d_lp, -leaky.detach(), **TIGHT)
    # the full loss L_π + L_η: η's gradient is exactly that of L_η, ε_η − KL
    out = e_step(adv, eta, 0.2)
    total = policy_loss(log_probs, out.weights) + out.loss
    (d_eta,) = torch.autograd.grad(total, eta)
    assert d_eta.item() == pytest.approx(0.2 - out.kl.item(), rel=1e-10, abs=1e-12)


def test_policy_loss_ignores_padding_log_probs():
    weights = torch.tensor([0.25, 0.0, 0.75, 0.0], dtype=DT)
    log_probs = torch.tensor([-1.0, float("-inf"), -2.0, float("nan")], dtype=DT, requires_grad=True)
    loss = policy_loss(log_probs, weights)
    (d_lp,) = torch.autograd.grad(loss, log_probs)
    assert loss.item() == pytest.approx(0.25 + 1.5, rel=1e-15)
    assert d_lp.tolist() == [-0.25, 0.0, -0.75, 0.0]


def test_kl_constraint_terms_train_what_they_should():
    theta = torch.tensor(0.4, dtype=DT, requires_grad=True)
    kl = 3.0 * theta**2  # a KL that depends on the policy: 0.48
    alpha = torch.tensor(5.0, dtype=DT, requires_grad=True)
    eps_alpha = 0.01
    kl_term, dual_term = kl_constraint_loss(kl, alpha, eps_alpha)
    assert kl_term.item() == pytest.approx(5.0 * 0.48, rel=1e-14)
    assert dual_term.item() == pytest.approx(5.0 * (0.01 - 0.48), rel=1e-14)
    d_theta, d_alpha = torch.autograd.grad(kl_term, (theta, alpha), allow_unused=True)
    assert d_alpha is None and d_theta.item() == pytest.approx(5.0 * 6 * 0.4, rel=1e-14)
    d_theta, d_alpha = torch.autograd.grad(dual_term, (theta, alpha), allow_unused=True)
    assert d_theta is None and d_alpha.item() == pytest.approx(0.01 - 0.48, rel=1e-14)
    # minimizing the dual term with KL > ε_α increases α (gradient ε − KL < 0)
    assert d_alpha.item() < 0


def test_kl_constraint_per_dimension():
    theta = torch.tensor([0.1, 0.2, 0.3], dtype=DT, requires_grad=True)
    kl = theta**2
    alpha = torch.tensor([1.0, 2.0, 3.0], dtype=DT, requires_grad=True)
    eps = torch.tensor([0.05, 0.01, 0.2], dtype=DT)
    res = kl_constraint_loss(kl, alpha, eps)
    assert res.kl_term.item() == pytest.approx(1 * 0.01 + 2 * 0.04 + 3 * 0.09, rel=1e-14)
    assert res.dual_term.item() == pytest.approx(1 * 0.04 + 2 * (-0.03) + 3 * 0.11, rel=1e-14)
    assert res.total.item() == pytest.approx(res.kl_term.item() + res.dual_term.item(), rel=1e-15)
    d_theta, d_alpha = torch.autograd.grad(res.dual_term, (theta, alpha), allow_unused=True)
    assert d_theta is None
    torch.testing.assert_close(d_alpha, eps - kl.detach(), **TIGHT)
    d_theta, d_alpha = torch.autograd.grad(res.kl_term, (theta, alpha), allow_unused=True)
    assert d_alpha is None
    torch.testing.assert_close(d_theta, 2 * alpha.detach() * theta.detach(), **TIGHT)
    # one ε for every dimension
    same = kl_constraint_loss(kl, alpha, 0.05)
    assert same.dual_term.item() == pytest.approx(float((alpha * (0.05 - kl)).sum().detach()), rel=1e-14)


# --------------------------------------------------------------------------- KLs


def test_categorical_kl_matches_torch_and_its_direction():
    g = gen(10)
    old = torch.randn(6, 5, generator=g, dtype=DT)
    new = (old + 0.8 * torch.randn(6, 5, generator=g, dtype=DT)).requires_grad_(True)
    ours = categorical_kl(old, new)
    forward = kl_divergence(Categorical(logits=old), Categorical(logits=new)).mean()
    reverse = kl_divergence(Categorical(logits=new), Categorical(logits=old)).mean()
    assert ours.item() == pytest.approx(forward.item(), rel=1e-12)
    assert abs(forward.item() - reverse.item()) > 1e-3 * forward.item()  # asymmetric pair
    (d_new,) = torch.autograd.grad(ours, new)
    (d_ref,) = torch.autograd.grad(forward, new)
    torch.testing.assert_close(d_new, d_ref, **TIGHT)
    # old (target network) is detached
    old_leaf = old.clone().requires_grad_(True)
    (d_old,) = torch.autograd.grad(categorical_kl(old_leaf, new), old_leaf, allow_unused=True)
    assert d_old is None


def test_categorical_kl_with_valid_states_and_impossible_actions():
    old = torch.tensor([[0.0, float("-inf"), 1.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=DT)
    new = torch.tensor([[0.5, 0.0, 0.0], [0.0, 1.0, 0.0], [9.0, 9.0, 9.0]], dtype=DT)
    valid = torch.tensor([True, True, False])
    ours = categorical_kl(old, new, valid)
    ref = kl_divergence(Categorical(logits=old[:2]), Categorical(logits=new[:2])).mean()
    assert torch.isfinite(ours) and ours.item() == pytest.approx(ref.item(), rel=1e-12)


def _gauss(mean, std):
    return Independent(Normal(mean, std), 1)


def test_decoupled_gaussian_kl_parts_match_torch():
    g = gen(11)
    n, d = 7, 3
    mo = torch.randn(n, d, generator=g, dtype=DT)
    mn = (mo + 0.5 * torch.randn(n, d, generator=g, dtype=DT)).requires_grad_(True)
    so = torch.exp(torch.randn(n, d, generator=g, dtype=DT))  # far from 1: σ vs σ² matters
    sn = (so * torch.exp(0.4 * torch.randn(n, d, generator=g, dtype=DT))).requires_grad_(True)
    kl = decoupled_gaussian_kl(mo, so, mn, sn)
    ref_mean = kl_divergence(_gauss(mo, so), _gauss(mn, so)).mean()  # new mean, old covariance
    ref_cov = kl_divergence(_gauss(mo, so), _gauss(mo, sn)).mean()  # old mean, new covariance
    assert kl.mean.item() == pytest.approx(ref_mean.item(), rel=1e-12)
    assert kl.covariance.item() == pytest.approx(ref_cov.item(), rel=1e-12)
    # per dimension: univariate Normals, averaged over states
    torch.testing.assert_close(kl.mean_per_dim, kl_divergence(Normal(mo, so), Normal(mn, so)).mean(0), **TIGHT)
    torch.testing.assert_close(kl.covariance_per_dim, kl_divergence(Normal(mo, so), Normal(mo, sn)).mean(0), **TIGHT)
    assert kl.mean_per_dim.shape == (d,) and kl.covariance_per_dim.shape == (d,)
    # gradients: mean part to the new mean only, covariance part to the new std only
    d_mn, d_sn = torch.autograd.grad(kl.mean, (mn, sn), allow_unused=True)
    assert d_sn is None
    torch.testing.assert_close(d_mn, torch.autograd.grad(ref_mean, mn)[0], **TIGHT)
    d_mn, d_sn = torch.autograd.grad(kl.covariance, (mn, sn), allow_unused=True)
    assert d_mn is None
    torch.testing.assert_close(d_sn, torch.autograd.grad(ref_cov, sn)[0], **TIGHT)
    # direction: KL(old ‖ new), not the reverse
    reverse_cov = kl_divergence(_gauss(mo, sn), _gauss(mo, so)).mean()
    assert abs(reverse_cov.item() - kl.covariance.item()) > 1e-3 * kl.covariance.item()
    # the full KL is the covariance part plus ½ Δμᵀ Σ_new⁻¹ Δμ (new covariance), not KL_Σ + KL_μ
    full = kl_divergence(_gauss(mo, so), _gauss(mn, sn)).mean()
    quad_new = (0.5 * (mn - mo) ** 2 / sn**2).sum(-1).mean()
    assert full.item() == pytest.approx((kl.covariance + quad_new).item(), rel=1e-12)


def test_shared_covariance_mean_part_is_the_whole_kl_and_state_independent_std():
    g = gen(12)
    mo = torch.randn(5, 2, generator=g, dtype=DT)
    mn = mo + torch.randn(5, 2, generator=g, dtype=DT)
    std = torch.tensor([0.3, 2.0], dtype=DT)  # state-independent, shape (D,)
    kl = decoupled_gaussian_kl(mo, std, mn, std)
    full = kl_divergence(_gauss(mo, std.expand(5, 2)), _gauss(mn, std.expand(5, 2))).mean()
    assert kl.mean.item() == pytest.approx(full.item(), rel=1e-12)
    assert kl.covariance.item() == 0.0
    # valid states only
    valid = torch.tensor([True, False, True, True, False])
    kv = decoupled_gaussian_kl(mo, std, mn, std, valid)
    ref = kl_divergence(_gauss(mo[valid], std.expand(3, 2)), _gauss(mn[valid], std.expand(3, 2))).mean()
    assert kv.mean.item() == pytest.approx(ref.item(), rel=1e-12)


def test_covariance_part_accurate_for_tiny_changes_in_float32():
    """ε_α_Σ is small; KL_Σ ≈ Σ x²/4 must not drown in cancellation in float32."""
    so = torch.tensor([[0.5, 1.0, 3.0]], dtype=torch.float32)
    sn = so * (1 + 1e-3)
    mo = torch.zeros(1, 3)
    ours = decoupled_gaussian_kl(mo, so, mo, sn).covariance.item()
    ref = kl_divergence(_gauss(mo.double(), so.double()), _gauss(mo.double(), sn.double())).item()
    assert ours == pytest.approx(ref, rel=1e-3)


# --------------------------------------------------------------------------- duals


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dual_initial_values_are_the_papers(dtype):
    table = load_table("vmpo_table1_common")
    # the table's row for V-MPO's η is "initial_temperature" (ACKTR's η is a step size)
    rows = {"eta": "temperature", "alpha": "alpha", "alpha_mu": "alpha_mu", "alpha_sigma": "alpha_sigma"}
    paper = {
        col: {name: find_row(table, parameter=f"initial_{row}")[col] for name, row in rows.items()}
        for col in ("dmlab", "continuous_control")
    }
    discrete = DualVariables("discrete", dtype=dtype)
    assert discrete.eta.item() == paper["dmlab"]["eta"] == PAPER_INITIAL_DUALS["discrete"]["eta"] == 1.0
    assert discrete.alpha.item() == paper["dmlab"]["alpha"] == 5.0
    cont = DualVariables("continuous", dtype=dtype)
    assert cont.eta.item() == paper["continuous_control"]["eta"] == 1.0
    assert cont.alpha_mu.item() == paper["continuous_control"]["alpha_mu"] == 1.0
    assert cont.alpha_sigma.item() == paper["continuous_control"]["alpha_sigma"] == 1.0
    per_dim = DualVariables("continuous", action_dim=4, dtype=dtype)
    assert per_dim.alpha_mu.shape == (4,) and per_dim.eta.shape == ()
    assert per_dim.alpha_sigma.tolist() == [1.0] * 4
    assert discrete.eta.dtype == dtype
    assert DualVariables("discrete", eta=0.25, alpha=2.0).diagnostics() == {"eta": 0.25, "alpha": 2.0}
    with pytest.raises(AttributeError, match="alpha_mu"):
        discrete.alpha_mu


@pytest.mark.parametrize("opt_cls, lr", [(torch.optim.Adam, 0.5), (torch.optim.SGD, 100.0)])
@pytest.mark.parametrize("project", [True, False])
def test_duals_stay_positive_when_pushed_down(opt_cls, lr, project):
    duals = DualVariables("continuous", action_dim=2)
    opt = opt_cls(duals.parameters(), lr=lr)
    if project:
        duals.register_projection(opt)
    for _ in range(1000):
        opt.zero_grad()
        loss = duals.eta + duals.alpha_mu.sum() + duals.alpha_sigma.sum()  # gradient pushes all down
        loss.backward()
        opt.step()
    for v in (duals.eta, duals.alpha_mu, duals.alpha_sigma):
        # positive by construction, projected or not
        assert bool(torch.isfinite(v).all()) and bool((v >= duals.floor).all()) and bool((v > 0).all())
        if project:
            assert bool((v >= duals.min_value * (1 - 1e-6)).all())
    assert duals.eta.item() < 1e-3  # it did go down
    if project:
        assert all(bool((p >= duals.raw_min).all()) for p in duals.parameters())
        # and it comes back up when the gradient says so, within a few dozen Adam steps
        if opt_cls is torch.optim.Adam:
            opt = opt_cls(duals.parameters(), lr=lr)
            for _ in range(100):
                opt.zero_grad()
                (-duals.eta).backward()
                opt.step()
            assert duals.eta.item() > 1.0


def test_why_the_projection_exists_softplus_gradient_underflows():
    duals = DualVariables("discrete")
    with torch.no_grad():
        duals.raw_eta.fill_(-200.0)  # where an unprojected dual can drift
    (g,) = torch.autograd.grad(duals.eta, duals.raw_eta)
    assert duals.eta.item() == pytest.approx(duals.floor) and g.item() == 0.0  # dead: no way back
    duals.project_()
    (g,) = torch.autograd.grad(duals.eta, duals.raw_eta)
    assert duals.raw_eta.item() == duals.raw_min and g.item() > 0


def test_dual_gradients_reach_the_raw_parameters():
    duals = DualVariables("discrete")
    adv = torch.randn(20, generator=gen(13))
    out = e_step(adv, duals.eta, 0.1)
    theta = torch.tensor(0.3, requires_grad=True)
    res = kl_constraint_loss(theta**2, duals.alpha, 0.01)
    (out.loss + res.total).backward()
    sig = torch.sigmoid
    assert duals.raw_eta.grad.item() == pytest.approx((0.1 - out.kl.item()) * sig(duals.raw_eta).item(), rel=1e-5)
    assert duals.raw_alpha.grad.item() == pytest.approx((0.01 - 0.09) * sig(duals.raw_alpha).item(), rel=1e-5)


def test_eps_alpha_log_uniform():
    low, high = 1e-3, 1e-2
    x = sample_eps_alpha(low, high, gen(14), size=200_000)
    assert x.dtype == torch.float64 and x.shape == (200_000,)
    assert bool((x >= low).all()) and bool((x < high).all())
    logs = torch.log(x)
    width = math.log(high) - math.log(low)
    # uniform on [log low, log high): mean and variance within 5 standard errors
    se_mean = width / math.sqrt(12 * x.numel())
    assert abs(logs.mean().item() - (math.log(low) + math.log(high)) / 2) < 5 * se_mean
    assert logs.var().item() == pytest.approx(width**2 / 12, rel=0.02)
    # each decade-tenth of the log range holds ~10% (log-uniform, not uniform)
    counts = torch.histc(logs, bins=10, min=math.log(low), max=math.log(high))
    assert bool(((counts / x.numel() - 0.1).abs() < 0.005).all())
    # reproducible, a float without size
    one = sample_eps_alpha(low, high, gen(15))
    assert isinstance(one, float) and one == sample_eps_alpha(low, high, gen(15)) and low <= one < high


def test_eps_alpha_never_reaches_high(monkeypatch):
    low, high = 0.005, 0.01
    u_max = 1 - 2**-53  # the largest u < 1 torch.rand can return in float64
    unguarded = math.exp(math.log(low) + u_max * (math.log(high) - math.log(low)))
    assert unguarded >= high  # rounding reaches high: what the guard is for
    monkeypatch.setattr(vmpo.duals.torch, "rand", lambda shape, **kw: torch.full(shape, u_max, dtype=DT))
    x = sample_eps_alpha(low, high, size=3)
    assert bool((x < high).all()) and x[0].item() == pytest.approx(high, rel=1e-15)
    monkeypatch.setattr(vmpo.duals.torch, "rand", lambda shape, **kw: torch.zeros(shape, dtype=DT))
    assert sample_eps_alpha(low, high) >= low


# --------------------------------------------------------------------------- bad input

ADV = torch.randn(6, dtype=DT)
Z34, Z32 = torch.zeros(3, 4), torch.zeros(3, 2)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: top_k_mask(ADV, 0.0), "fraction"),
        (lambda: top_k_mask(ADV, 1.5), "fraction"),
        (lambda: top_k_mask(ADV, -0.2), "fraction"),
        (lambda: top_k_mask(ADV, float("nan")), "fraction"),
        (lambda: top_k_mask(ADV, True), "fraction"),
        (lambda: top_k_mask(ADV, 0.5, torch.ones(5, dtype=torch.bool)), "valid"),
        (lambda: top_k_mask(ADV, 0.5, torch.ones(6)), "valid"),
        (lambda: top_k_mask(ADV, 0.5, torch.zeros(6, dtype=torch.bool)), "no valid sample"),
        (lambda: top_k_mask(torch.empty(0), 0.5), "no valid sample"),
        (lambda: top_k_mask(torch.tensor([1.0, float("nan")]), 0.5), "advantages"),
        (lambda: top_k_mask([1.0, 2.0], 0.5), "advantages"),
        (lambda: top_k_mask(torch.arange(4), 0.5), "advantages"),
        (lambda: e_step(ADV, 1.0, 0.0), "eps_eta"),
        (lambda: e_step(ADV, 1.0, -0.1), "eps_eta"),
        (lambda: e_step(ADV, 1.0, float("inf")), "eps_eta"),
        (lambda: e_step(ADV, 0.0, 0.1), "eta"),
        (lambda: e_step(ADV, -1.0, 0.1), "eta"),
        (lambda: e_step(ADV, float("nan"), 0.1), "eta"),
        (lambda: e_step(ADV, torch.tensor(float("inf")), 0.1), "eta"),
        (lambda: e_step(ADV, torch.tensor([1.0, 2.0]), 0.1), "eta"),
        (lambda: e_step(ADV, 1.0, 0.1, top_k_fraction=0.0), "top_k_fraction"),
        (lambda: e_step(ADV, 1.0, 0.1, top_k_fraction=1.01), "top_k_fraction"),
        (lambda: e_step(ADV, 1.0, 0.1, valid=torch.zeros(6, dtype=torch.bool)), "no valid sample"),
        (lambda: e_step(ADV, 1.0, 0.1, valid=torch.ones(2, 3, dtype=torch.bool)), "valid"),
        (lambda: policy_loss(torch.zeros(5), torch.zeros(6)), "log_probs and weights"),
        (lambda: policy_loss(torch.zeros(2), torch.tensor([1.5, -0.5])), "weights"),
        (lambda: kl_constraint_loss(torch.tensor(0.1), 1.0, 0.0), "eps_alpha"),
        (lambda: kl_constraint_loss(torch.tensor(0.1), 1.0, -1e-3), "eps_alpha"),
        (lambda: kl_constraint_loss(torch.tensor(0.1), 0.0, 0.01), "alpha"),
        (lambda: kl_constraint_loss(torch.tensor(0.1), torch.tensor(-1.0), 0.01), "alpha"),
        (lambda: kl_constraint_loss(torch.zeros(3), torch.ones(2), 0.01), "alpha"),
        (lambda: kl_constraint_loss(torch.zeros(3), 1.0, 0.01), "alpha"),
        (lambda: kl_constraint_loss(torch.zeros(3), torch.ones(3), torch.ones(2)), "eps_alpha"),
        (lambda: kl_constraint_loss(torch.zeros(3), torch.ones(3), torch.tensor([0.1, 0.0, 0.1])), "eps_alpha"),
        (lambda: kl_constraint_loss(torch.tensor(float("nan")), 1.0, 0.01), "kl"),
        (lambda: categorical_kl(torch.zeros(3, 4), torch.zeros(3, 5)), "old_logits and new_logits"),
        (lambda: categorical_kl(Z34, Z34, torch.zeros(3, dtype=torch.bool)), "no valid state"),
        (lambda: categorical_kl(Z34, Z34, torch.ones(4, dtype=torch.bool)), "valid"),
        (lambda: decoupled_gaussian_kl(Z32, torch.ones(2), torch.zeros(3, 3), torch.ones(2)), "old_mean and new_mean"),
        (lambda: decoupled_gaussian_kl(torch.zeros(3, 2), torch.zeros(2), torch.zeros(3, 2), torch.ones(2)), "old_std"),
        (lambda: decoupled_gaussian_kl(torch.zeros(3, 2), torch.ones(2), torch.zeros(3, 2), -torch.ones(2)), "new_std"),
        (lambda: decoupled_gaussian_kl(torch.zeros(3, 2), torch.ones(3), torch.zeros(3, 2), torch.ones(2)), "old_std"),
        (lambda: sample_eps_alpha(0.0, 0.01), "low"),
        (lambda: sample_eps_alpha(0.01, 0.01), "high"),
        (lambda: sample_eps_alpha(0.01, float("inf")), "high"),
        (lambda: DualVariables("gaussian"), "kind"),
        (lambda: DualVariables("discrete", alpha_mu=1.0), "alpha_mu"),
        (lambda: DualVariables("discrete", eta=0.0), "eta"),
        (lambda: DualVariables("discrete", action_dim=3), "action_dim"),
        (lambda: DualVariables("continuous", action_dim=0), "action_dim"),
        (lambda: DualVariables("discrete", alpha=1e-9), "alpha"),
        (lambda: DualVariables("discrete", raw_min=-200.0), "raw_min"),
    ],
)
def test_bad_input_raises_naming_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()
