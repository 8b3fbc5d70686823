"""Exercise checks of notebook 09: the right answer passes, typical wrong answers and the notebook's
placeholder (None) fail without raising. The data are synthetic run directories and sweeps whose
answers are computed by hand here."""

import math

import pytest

from rlkit.lessons.nb09_vmpo_runs import exercises as ex09
from support.vmpo_runs import categorical_updates, make_run, make_sweep

UPDATE = 3  # its row: estep_kl 0.15, num_selected 128; ε_η = 0.1
GRAD, ENTROPY = 0.1 - 0.15, math.log(128) - 0.15
KL = [0.0, 0.004, 0.008, 0.012] * 2  # the mstep_kl column; ε_α = 0.005 below
RATIO = sum(KL) / len(KL) / 0.005


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path / "run", [(1000, 20.0)], categorical_updates(), agent={"eps_alpha": 0.005})


@pytest.fixture
def sweep():
    # fewest median steps: (0.1, 0.01) at 1000; highest final return: (1.0, 0.01) (500, every seed)
    reach = {(0.1, 0.001): [1000, 2000, 2000], (0.1, 0.01): [1000, 1000, 3000],
             (1.0, 0.001): [3000, None, None], (1.0, 0.01): [2000, 2000, 2000]}
    final = {(0.1, 0.001): 480.0, (0.1, 0.01): 490.0, (1.0, 0.001): 480.0, (1.0, 0.01): 500.0}
    return make_sweep(reach, final, {point: 0.001 for point in reach})


def test_temperature_dual(run, capsys):
    assert ex09.expected_temperature_dual(run, UPDATE) == pytest.approx((GRAD, ENTROPY))
    assert ex09.check_temperature_dual([GRAD, ENTROPY], run, UPDATE) is True
    assert capsys.readouterr().out.startswith("✓")
    wrong = {"sign of the derivative": [-GRAD, ENTROPY], "SELECTED": [GRAD, math.log(256) - 0.15],
             "log k − H": [GRAD, math.log(128) + 0.15], "nats": [GRAD, math.log2(128) - 0.15]}
    for hint, answer in wrong.items():
        assert ex09.check_temperature_dual(answer, run, UPDATE) is False
        out = capsys.readouterr().out
        assert out.startswith("✗") and hint in out
    with pytest.raises(ValueError, match="no update 99"):
        ex09.expected_temperature_dual(run, 99)


def test_mstep_ratio(run, capsys):
    assert ex09.expected_mstep_ratio(run) == pytest.approx(1.2)
    assert ex09.check_mstep_ratio(RATIO, run) is True
    assert capsys.readouterr().out.startswith("✓")
    assert ex09.check_mstep_ratio(round(RATIO * 1.004, 3), run) is True  # three significant digits pass
    assert capsys.readouterr().out.startswith("✓")
    nonzero = [k for k in KL if k > 0]
    wrong = {"upside down": 1 / RATIO, "target refresh": sum(nonzero) / len(nonzero) / 0.005,
             "last update": 0.012 / 0.005}
    for hint, answer in wrong.items():
        assert ex09.check_mstep_ratio(answer, run) is False
        out = capsys.readouterr().out
        assert out.startswith("✗") and hint in out


def test_fastest_point(sweep, capsys):
    assert ex09.fastest_points(sweep) == [(0.1, 0.01)]
    assert ex09.check_fastest_point((0.1, 0.01), sweep) is True
    assert capsys.readouterr().out.startswith("✓")
    wrong = {"order": (0.01, 0.1), "the median is 2,000 steps; the fewest is 1,000": (1.0, 0.01),
             "too few seeds reach it": (1.0, 0.001)}
    for hint, answer in wrong.items():
        assert ex09.check_fastest_point(answer, sweep) is False
        out = capsys.readouterr().out
        assert out.startswith("✗") and hint in out
    assert ex09.check_fastest_point((0.5, 0.5), sweep) is False  # not a point of the sweep
    assert "largest absolute error" in capsys.readouterr().out


def test_fastest_point_accepts_any_tied_point(capsys):
    reach = {(0.1, 0.001): [1000] * 3, (0.1, 0.01): [2000] * 3, (1.0, 0.001): [3000] * 3, (1.0, 0.01): [1000] * 3}
    tied = make_sweep(reach, {p: 500.0 for p in reach}, {p: 0.001 for p in reach})
    assert ex09.fastest_points(tied) == [(0.1, 0.001), (1.0, 0.01)]
    assert ex09.check_fastest_point([1.0, 0.01], tied) is True
    assert "tied with" in capsys.readouterr().out
    assert ex09.check_fastest_point((0.1, 0.001), tied) is True


@pytest.mark.parametrize("answer", [None, "abc", [1.0, 2.0, 3.0]])
def test_placeholder_and_unreadable_answers_fail_without_raising(answer, run, sweep, capsys):
    assert ex09.check_temperature_dual(answer, run, UPDATE) is False
    assert capsys.readouterr().out.startswith("✗")
    assert ex09.check_mstep_ratio(answer, run) is False
    assert capsys.readouterr().out.startswith("✗")
    assert ex09.check_fastest_point(answer, sweep) is False
    assert capsys.readouterr().out.startswith("✗")


# ----------------------------------------------------------------------------- exercise 4: the learner step's loss


def learner_loss(advantages, valid, log_probs, old_logits, new_logits, temperature, alpha, eps_eta, eps_alpha,
                 mistake=None):
    """A student's L_τ + L_π + L_α, right, or with one planted ``mistake``."""
    import torch

    adv = advantages if mistake == "not detached" else advantages.detach()
    ranked = torch.ones_like(valid) if mistake == "reset steps" else valid
    index = torch.nonzero(ranked).reshape(-1)
    k = math.ceil(index.numel() / 2)
    top = index[torch.argsort(adv.detach()[index], descending=True)[:k]]
    tau_psi = temperature if mistake == "psi to tau" else temperature.detach()
    log_mean = torch.logsumexp(adv[top] / temperature, 0) - (0.0 if mistake == "log k" else math.log(k))
    loss_tau = temperature * eps_eta + temperature * log_mean
    denominator = adv[valid] if mistake == "normalized over all" else adv[top]
    psi = torch.exp(adv[top] / tau_psi) / torch.exp(denominator / tau_psi).sum()
    weighted = psi * log_probs[top]
    loss_pi = -(weighted.mean() if mistake == "mean" else weighted.sum())
    p_old = torch.softmax(old_logits, -1)
    p_new = torch.softmax(new_logits, -1)
    if mistake == "reversed":
        per_state = (p_new * (p_new.log() - p_old.log())).sum(-1)
    else:
        per_state = (p_old * (p_old.log() - p_new.log())).sum(-1)
    kl = per_state[valid].sum() if mistake == "kl sum" else per_state[valid].mean()
    if mistake == "no stop-gradients":
        loss_alpha = alpha * (eps_alpha - kl)
    else:
        loss_alpha = alpha.detach() * kl + alpha * (eps_alpha - kl.detach())
    return loss_tau + loss_pi + loss_alpha


def test_learner_loss_accepts_a_correct_implementation(capsys):
    assert ex09.check_learner_loss(learner_loss) is True
    assert capsys.readouterr().out.startswith("✓ learner_loss: agrees with rlkit")


def test_learner_loss_stub_is_not_done(capsys):
    def stub(advantages, valid, log_probs, old_logits, new_logits, temperature, alpha, eps_eta, eps_alpha):
        raise NotImplementedError

    assert ex09.check_learner_loss(stub) is False
    assert "not done yet" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, named", [
    ("normalized over all", "ψ normalized over all valid samples instead of the selected half"),
    ("reversed", "the KL in the wrong direction"),
    ("not detached", "advantages not detached"),
    ("mean", "a mean where a sum belongs"),
    ("log k", "log-sum-exp without − log k"),
    ("no stop-gradients", "L_α without its stop-gradients"),
    ("psi to tau", "ψ carries gradient to τ"),
    ("reset steps", "reset steps entered the top-k"),
    ("kl sum", "the KL summed over states"),
])
def test_learner_loss_names_each_typical_mistake(mistake, named, capsys):
    assert ex09.check_learner_loss(lambda **case: learner_loss(**case, mistake=mistake)) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ learner_loss") and named in out


def test_learner_loss_that_returns_a_float_is_reported_not_raised(capsys):
    assert ex09.check_learner_loss(lambda **case: learner_loss(**case).detach().item()) is False
    assert "0-dim tensor" in capsys.readouterr().out
