"""ACKTR's checked trust region (kl_tolerance > 0): the KL a step reached, measured by a fresh forward
pass, is within kl_tolerance·δ; the step taken is the paper's step shrunk by backtrack_coef^k."""
import pytest
import torch

from rlkit.agents import resolve_config
from rlkit.trust_region import measured_kl
from tests.support.agents import fields_that_differ, run, setup


def parameters(agent):
    return [p.detach().clone() for p in agent.model.parameters()]


def one_update(seed=0, env="CartPole-v1", earlier=0, **overrides):
    """(parameters before, after, diagnostics, rollout, agent) of the update after ``earlier`` ones."""
    agent, collector = setup("acktr", env, seed=seed, **overrides)
    run(agent, collector, earlier)
    rollout = collector.collect(agent.policy)
    before = parameters(agent)
    diagnostics = agent.update(rollout)
    return before, parameters(agent), diagnostics, rollout, agent


def kl_between(agent, before, obs):
    """KL(π_before ‖ π_now) on obs, from a copy of the model set to ``before``."""
    import copy

    old = copy.deepcopy(agent.model)
    with torch.no_grad():
        for p, value in zip(old.parameters(), before):
            p.copy_(value)
        pi_old = old.distribution(old(obs)[0])
        pi_new = agent.model.distribution(agent.model(obs)[0])
    return measured_kl(pi_old, pi_new)


LOOSE = dict(delta=0.05, eta_max=10.0)  # a large uncapped step: its KL overshoots δ


def test_a_step_within_tolerance_is_the_papers_step():
    before, paper, d_paper, _, _ = one_update(**LOOSE)
    _, checked, d_checked, _, _ = one_update(**LOOSE, kl_tolerance=1e6)
    assert d_checked["line_search_steps"] == 0 and d_checked["line_search_accepted"] == 1
    assert "line_search_steps" not in d_paper  # the paper's variant logs the columns it always had
    for a, b in zip(paper, checked):
        assert torch.equal(a, b)
    assert d_checked["step_size"] == d_paper["step_size"]


# separate networks: the first update is within 1.5 δ (the same in both variants), the second overshoots;
# a shared trunk: the joint KL of the first update overshoots (its value part)
@pytest.mark.parametrize("shared,earlier", [(False, 1), (True, 0)])
def test_the_checked_step_is_the_papers_shrunk_until_its_kl_is_within_tolerance(shared, earlier):
    before, paper, d_paper, _, _ = one_update(**LOOSE, shared_trunk=shared, earlier=earlier)
    before_checked, checked, d, rollout, agent = one_update(**LOOSE, shared_trunk=shared, earlier=earlier,
                                                            kl_tolerance=1.5)
    for a, b in zip(before, before_checked):
        assert torch.equal(a, b)
    delta = LOOSE["delta"]
    obs = agent.batch(rollout).obs  # the valid steps the update learned from
    assert d_paper["measured_kl"] + (d_paper["measured_value_kl"] if shared else 0) > 1.5 * delta  # it overshoots
    k = int(d["line_search_steps"])
    assert k >= 1 and d["line_search_accepted"] == 1
    assert d["step_size"] == pytest.approx(d_paper["step_size"] * 0.5**k, rel=1e-12)
    stepped = [shared or name.startswith("actor.") for name, _ in agent.model.named_parameters()]
    assert sum(stepped) >= 4
    for is_stepped, b, p, c in zip(stepped, before, paper, checked):  # the paper's direction, 0.5^k of its change
        if is_stepped:
            torch.testing.assert_close(c - b, (p - b) * 0.5**k, rtol=1e-4, atol=1e-7)
    reached = kl_between(agent, before, obs)
    joint = reached + (d["measured_value_kl"] if shared else 0.0)
    assert joint <= 1.5 * delta
    assert d["measured_kl"] == pytest.approx(reached, rel=1e-5)
    if k < 10:  # one backtrack fewer would have been outside the tolerance (the search stops at the first fit)
        assert d_paper["step_size"] * 0.5 ** (k - 1) > d["step_size"]


def test_no_step_within_tolerance_leaves_the_policy_where_it_was():
    before, after, d, _, _ = one_update(**LOOSE, earlier=1, kl_tolerance=1.0, max_backtracks=1, backtrack_coef=0.99)
    assert d["line_search_accepted"] == 0 and d["step_size"] == 0.0 and d["line_search_steps"] == 1
    actor = [name.startswith("actor.") for name, _ in setup("acktr", "CartPole-v1", **LOOSE)[0].model.named_parameters()]
    assert sum(actor) >= 4
    for is_actor, b, a in zip(actor, before, after):
        if is_actor:
            assert torch.equal(a, b)
    assert d["measured_kl"] == 0.0


def test_checked_runs_keep_within_tolerance_over_updates():
    agent, collector = setup("acktr", "CartPole-v1", seed=1, delta=0.01, eta_max=1.0, kl_tolerance=2.0)
    diagnostics = run(agent, collector, 6)
    assert all(d["measured_kl"] <= 2.0 * 0.01 for d in diagnostics)


@pytest.mark.parametrize("key,value", [("kl_tolerance", 0.5), ("kl_tolerance", -1.0), ("backtrack_coef", 1.0),
                                       ("max_backtracks", 0)])
def test_bad_line_search_settings_are_refused_by_name(key, value):
    with pytest.raises(ValueError, match=key):
        resolve_config("acktr", overrides={key: value})


def test_the_checked_mujoco_preset_is_the_mujoco_preset_with_its_check():
    """mujoco-checked differs from mujoco in δ and kl_tolerance only: its runs compare with the paper's step's."""
    from rlkit.agents import resolve_config

    paper, checked = resolve_config("acktr", preset="mujoco"), resolve_config("acktr", preset="mujoco-checked")
    assert fields_that_differ(paper, checked) == {"delta", "kl_tolerance"}
    assert (paper.kl_tolerance, checked.kl_tolerance, checked.delta) == (0.0, 1.5, 0.1)
    tuned = resolve_config("acktr", preset="mujoco-tuned")  # the checked step at the batch a search chose
    assert fields_that_differ(checked, tuned) == {"num_steps"}
    assert (checked.num_steps, tuned.num_steps) == (2500, 250)


def test_the_checked_classic_preset_is_the_classic_preset_with_its_check():
    """classic-checked differs from classic in kl_tolerance only: the search around it kept batch, δ and η_max."""
    from rlkit.agents import resolve_config

    paper, checked = resolve_config("acktr", preset="classic"), resolve_config("acktr", preset="classic-checked")
    assert fields_that_differ(paper, checked) == {"kl_tolerance"}
    assert (paper.kl_tolerance, checked.kl_tolerance, checked.delta, checked.eta_max) == (0.0, 1.5, 0.002, 0.25)
