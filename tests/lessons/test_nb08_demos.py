"""rlkit.lessons.nb08_vmpo_em.demos: the numbers behind notebook 08, checked against independent computations
(plain-Python float64 formulas, a scalar root-find of ε_η − KL(τ), torch.distributions, a brute-force grid)."""

import math

import numpy as np
import pytest
import torch

from rlkit.lessons.nb08_vmpo_em import demos as vd


@pytest.fixture(scope="module")
def bandit():
    return vd.bandit_batch()


@pytest.fixture(scope="module")
def cartpole():
    return vd.cartpole_batch()


def _selected(batch):
    """The top half of the valid advantages, by plain sorting (independent of top_k_mask)."""
    adv = batch.advantages.reshape(-1).tolist()
    valid = [True] * len(adv) if batch.valid is None else batch.valid.reshape(-1).tolist()
    values = sorted((a for a, v in zip(adv, valid) if v), reverse=True)
    return values[: math.ceil(len(values) / 2)]


def _kl(selected, eta):
    """KL(softmax(A/η) ‖ uniform), explicitly: Σ ψ log(k ψ)."""
    m = max(selected)
    w = [math.exp((a - m) / eta) for a in selected]
    z = sum(w)
    return sum((x / z) * math.log(len(w) * x / z) for x in w if x > 0)


def _root(selected, eps):
    """η with KL(η) = ε by plain bisection in log η."""
    lo, hi = math.log(1e-6), math.log(1e6)
    for _ in range(300):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _kl(selected, math.exp(mid)) > eps else (lo, mid)
    return math.exp(0.5 * (lo + hi))


def test_cartpole_batch_is_a_real_rollout_with_reset_steps(cartpole):
    assert cartpole.advantages.shape == (64, 4) and cartpole.valid.shape == (64, 4)
    assert int((~cartpole.valid).sum()) > 0  # an untrained CartPole policy ends episodes in a 64-step rollout
    assert torch.isnan(cartpole.advantages[~cartpole.valid]).all()
    assert torch.isfinite(cartpole.advantages[cartpole.valid]).all()


def test_cartpole_batch_is_deterministic(cartpole):
    again = vd.cartpole_batch()
    assert torch.equal(again.valid, cartpole.valid)
    assert torch.allclose(again.advantages[again.valid], cartpole.advantages[cartpole.valid], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["bandit", "cartpole"])
def test_selection_is_the_top_half_of_valid_samples(name, request):
    batch = request.getfixturevalue(name)
    s = vd.selection_summary(batch)
    expected = _selected(batch)
    assert s["k"] == len(expected) and s["invalid_selected"] == 0
    assert sorted(batch.advantages[s["mask"]].tolist(), reverse=True) == expected
    assert s["min_selected"] >= s["max_unselected"]


def test_forgetting_valid_selects_reset_steps(cartpole):
    # standardized advantages, 0 at the reset steps, a top-k over everything: by plain sorting
    adv, valid = cartpole.advantages.reshape(-1).tolist(), cartpole.valid.reshape(-1).tolist()
    v = [a for a, ok in zip(adv, valid) if ok]
    mean = sum(v) / len(v)
    std = math.sqrt(sum((a - mean) ** 2 for a in v) / (len(v) - 1))
    z = [(a - mean) / std if ok else 0.0 for a, ok in zip(adv, valid)]
    order = sorted(range(len(z)), key=lambda i: -z[i])[: math.ceil(len(z) / 2)]
    expected = sum(1 for i in order if not valid[i])
    assert vd.selection_summary(cartpole)["invalid_if_forgotten"] == expected > 0


@pytest.mark.parametrize("name", ["bandit", "cartpole"])
@pytest.mark.parametrize("eps", [0.01, 0.1, 0.5, 1.0])
def test_tau_star_matches_an_independent_root_find(name, eps, request):
    batch = request.getfixturevalue(name)
    sel = _selected(batch)
    eta = vd.solve_eta(batch, eps)
    assert eta == pytest.approx(_root(sel, eps), rel=1e-6)
    d = vd.eps_eta_panel_data(batch, eps)
    assert d["kl_star"] == pytest.approx(eps, abs=1e-9)  # the KL reached at the optimum is ε_η
    assert abs(d["grad_star"]) < 1e-9  # dL_τ/dτ = ε_η − KL = 0 there (the notebook prints "< 1e-09")
    assert d["entropy_psi"] == pytest.approx(math.log(len(sel)) - eps, abs=1e-9)  # H(ψ) = log k − KL


def test_dual_slope_is_eps_minus_kl_and_tau_star_minimizes(bandit):
    eps = 0.3
    curve = vd.temperature_curve(bandit, eps)
    sel = _selected(bandit)
    explicit = np.array([_kl(sel, e) for e in curve["etas"]])
    assert np.allclose(curve["kl"], explicit, atol=1e-10)
    assert np.allclose(curve["grad"], eps - explicit, atol=1e-8)
    # L_τ by its explicit formula, and τ* below every grid value of it
    loss = np.array([e * eps + e * math.log(np.mean(np.exp(np.array(sel) / e))) for e in curve["etas"]])
    assert np.allclose(curve["loss"], loss, rtol=1e-10)
    d = vd.eps_eta_panel_data(bandit, eps, curve=curve)
    assert d["loss_star"] <= loss.min() + 1e-12


def test_panel_data_reuses_a_curve_at_another_eps(bandit):
    curve = vd.temperature_curve(bandit, 0.1)
    shifted = vd.eps_eta_panel_data(bandit, 0.5, curve=curve)
    direct = vd.eps_eta_panel_data(bandit, 0.5)
    assert np.allclose(shifted["loss"], direct["loss"], rtol=1e-12)


def test_larger_eps_eta_concentrates_psi(cartpole):
    a, b = vd.eps_eta_panel_data(cartpole, 0.05), vd.eps_eta_panel_data(cartpole, 1.0)
    assert b["tau_star"] < a["tau_star"]
    assert b["max_psi"] > a["max_psi"] and b["entropy_psi"] < a["entropy_psi"]


@pytest.fixture(scope="module")
def sweep(bandit):
    return vd.m_step_sweep(bandit, [0.01, 0.0178, 0.1, 0.3])


def test_m_step_fit_tracks_eps_alpha(sweep):
    kls = [f["kl"] for f in sweep]
    assert kls == sorted(kls)  # a larger budget, a larger move
    assert kls[0] == pytest.approx(0.01, rel=0.05) and kls[1] == pytest.approx(0.0178, rel=0.05)
    for f in sweep:
        assert 0.5 * f["eps_alpha"] < f["kl"] < 1.5 * f["eps_alpha"]
        old, new = torch.tensor(f["probs_old"]), torch.tensor(f["probs_new"])
        assert f["kl"] == pytest.approx(float((old * (old / new).log()).sum()), rel=1e-6)  # KL(old ‖ new), explicit


def test_m_step_without_trust_region_heads_for_psi(bandit, sweep):
    free = vd.fit_categorical(bandit, 0.01, use_trust_region=False)
    assert free["kl"] > 10 * sweep[0]["kl"]
    assert np.abs(free["probs_new"] - free["target"]).max() < 0.03
    assert free["target"].sum() == pytest.approx(1.0)
    # the target is Σψ per action: recompute it with a plain softmax over the selected samples
    eta = free["eta"]
    sel_mask = vd.selection_summary(bandit)["mask"]
    a = bandit.advantages[sel_mask]
    psi = torch.softmax(a / eta, 0)
    target = np.bincount(bandit.actions[sel_mask].numpy(), weights=psi.numpy(), minlength=5)
    assert np.allclose(free["target"], target, atol=1e-12)


def test_eps_alpha_panel_data_selects_the_nearest_grid_point(sweep):
    d = vd.eps_alpha_panel_data(sweep, 0.09)
    assert d["eps_alpha"] == pytest.approx(0.1) and d["kl"] == sweep[2]["kl"]


@pytest.mark.parametrize("old_mean, old_std, new_mean, new_std", [
    (0.0, 1.0, 0.5, 1.0), (0.0, 1.0, 0.0, 0.7), (0.3, 2.0, -0.5, 0.7), ([0.0, 1.0], [1.0, 0.5], [0.5, 1.2], [1.5, 0.4]),
])
def test_gaussian_kl_parts_against_explicit_formulas(old_mean, old_std, new_mean, new_std):
    m0, s0, m1, s1 = (np.atleast_1d(np.asarray(x, dtype=float)) for x in (old_mean, old_std, new_mean, new_std))
    mean = 0.5 * np.sum((m1 - m0) ** 2 / s0**2)
    r = s0**2 / s1**2
    cov = 0.5 * np.sum(r - 1 - np.log(r))
    full = cov + 0.5 * np.sum((m1 - m0) ** 2 / s1**2)
    p = vd.gaussian_kl_parts(old_mean, old_std, new_mean, new_std)
    assert p["mean"] == pytest.approx(mean, rel=1e-10) and p["covariance"] == pytest.approx(cov, rel=1e-10)
    assert p["full"] == pytest.approx(full, rel=1e-10)
    assert p["full_minus_sum"] == pytest.approx(0.5 * np.sum((m1 - m0) ** 2 * (1 / s1**2 - 1 / s0**2)), abs=1e-10)


def _brute_force(gb, *, eps_mu=None, eps_sigma=None, coupled=None):
    """The constrained weighted fit by a plain 2-D grid over (μ, σ): the best feasible grid point."""
    a, w = gb["actions"].numpy(), gb["weights"].numpy()
    mu, sigma = np.meshgrid(np.linspace(-0.3, 0.3, 601), np.linspace(0.8, 1.2, 801))
    ll = (w[:, None, None] * (-np.log(sigma) - (a[:, None, None] - mu) ** 2 / (2 * sigma**2))).sum(0)
    r = 1 / sigma**2
    cov = 0.5 * (r - 1 - np.log(r))
    if coupled is None:
        feasible = (0.5 * mu**2 <= eps_mu) & (cov <= eps_sigma)
    else:
        feasible = cov + 0.5 * mu**2 / sigma**2 <= coupled
    ll = np.where(feasible, ll, -np.inf)
    j = np.unravel_index(np.argmax(ll), ll.shape)
    return mu[j], sigma[j], ll[j]


def _ll(gb, mean, std):
    a, w = gb["actions"].numpy(), gb["weights"].numpy()
    return float((w * (-np.log(std) - (a - mean) ** 2 / (2 * std**2))).sum())


def test_gaussian_m_step_is_the_constrained_optimum():
    gb = vd.gaussian_bandit_weights(target=0.3)
    dec = vd.gaussian_m_step(gb["actions"], gb["weights"], eps_alpha_mu=0.01, eps_alpha_sigma=1e-4)
    cou = vd.gaussian_m_step(gb["actions"], gb["weights"], coupled_eps=0.0101)
    # feasible, with the bounds active (KLs from rlkit and torch.distributions)
    assert dec["kl_mean"] == pytest.approx(0.01, rel=1e-9) and dec["kl_cov"] == pytest.approx(1e-4, rel=1e-6)
    assert cou["kl_full"] == pytest.approx(0.0101, rel=1e-6)
    # no point of a fine grid does better
    for step, kwargs in [(dec, {"eps_mu": 0.01, "eps_sigma": 1e-4}), (cou, {"coupled": 0.0101})]:
        mu, sigma, best = _brute_force(gb, **kwargs)
        assert _ll(gb, step["mean"], step["std"]) >= best - 1e-9
        assert step["mean"] == pytest.approx(mu, abs=2e-3) and step["std"] == pytest.approx(sigma, abs=2e-3)
    # the lesson: one budget spends most of the KL on σ, and the mean moves less
    assert cou["kl_cov"] > 0.8 * cou["kl_full"] and cou["std"] < 0.95 < dec["std"]
    assert dec["mean"] > 2.5 * cou["mean"] > 0
    assert dec["mle_mean"] == pytest.approx(gb["mle_mean"]) and dec["mle_std"] == pytest.approx(gb["mle_std"])


def test_gaussian_m_step_away_from_the_old_policy():
    # the same problem, shifted and scaled: the solution moves with it (the coordinates are relative to π_old)
    gb = vd.gaussian_bandit_weights(target=0.3)
    base = vd.gaussian_m_step(gb["actions"], gb["weights"], coupled_eps=0.0101)
    moved = vd.gaussian_m_step(2.0 + 3.0 * gb["actions"], gb["weights"], 2.0, 3.0, coupled_eps=0.0101)
    assert moved["mean"] == pytest.approx(2.0 + 3.0 * base["mean"], rel=1e-9)
    assert moved["std"] == pytest.approx(3.0 * base["std"], rel=1e-9)
    assert moved["kl_full"] == pytest.approx(base["kl_full"], rel=1e-9)


def test_gaussian_em_coupled_sigma_collapses_decoupled_keeps_it():
    em = vd.gaussian_em(target=0.3, iterations=30)
    dec, cou = em["decoupled"], em["coupled"]
    assert dec["mean"].shape == cou["std"].shape == (31,) and dec["mean"][0] == 0 and cou["std"][0] == 1
    # decoupled: σ shrinks by at most the ε_Σ step each update; coupled: far more
    r = dec["std"][1:] / dec["std"][:-1]
    assert np.all(0.5 * (1 / r**2 - 1 + np.log(r**2)) <= 1e-4 * (1 + 1e-6))
    assert cou["std"][30] < 0.1 < 0.7 < dec["std"][30]
    assert abs(dec["mean"][30] - 0.3) < 0.1 and abs(cou["mean"][30] - 0.3) < 0.05
    assert np.array_equal(vd.gaussian_em(target=0.3, iterations=30)["coupled"]["std"], cou["std"])  # deterministic
