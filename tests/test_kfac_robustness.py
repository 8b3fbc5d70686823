"""K-FAC on researchers' models: each case is correct (against an independent computation)
or refused with an error that names the parameter or module and says what to do.

Tied weights, an Embedding tied to a head, mean-reduced Fisher losses, functional_call with
other parameters, torch.compile / vmap forwards, nn.MultiheadAttention, load_state_dict.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from rlkit.kfac import KFAC
from rlkit.kfac.losses import categorical_fisher_loss

DT = torch.float64


def _sampled(logits: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.multinomial(torch.softmax(logits.detach(), -1), 1, generator=g).squeeze(1)


def _nll_sum(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    return -torch.log_softmax(logits, -1).gather(1, actions[:, None]).sum()


def _homog(a: torch.Tensor) -> torch.Tensor:
    return torch.cat([a, a.new_ones(a.shape[0], 1)], dim=1)


# --------------------------------------------------------------------------- tied weights


class Tied(nn.Module):
    """The same d×d weight (and bias) applied twice, through two modules."""

    def __init__(self, d=4, k=3):
        super().__init__()
        self.l1 = nn.Linear(d, d)
        self.l2 = nn.Linear(d, d)
        self.l2.weight = self.l1.weight
        self.l2.bias = self.l1.bias
        self.head = nn.Linear(d, k)

    def forward(self, x):
        return self.head(torch.tanh(self.l2(torch.tanh(self.l1(x)))))


def test_tied_linear_weights_form_one_block_whose_statistics_sum_over_both_uses():
    torch.manual_seed(0)
    model = Tied().to(DT)
    x = torch.randn(7, 4, dtype=DT)
    kfac = KFAC(model, damping=0.1, stats_decay=0.0)
    assert list(kfac.layers) == ["l1", "head"]
    assert kfac.layers["l1"].module_names == ["l1", "l2"]
    logits = model(x)
    actions = _sampled(logits)
    kfac.update_stats(_nll_sum(logits, actions))
    model.zero_grad()
    F.cross_entropy(logits, actions, reduction="sum").backward()
    G = torch.cat([model.l1.weight.grad, model.l1.bias.grad[:, None]], 1).clone()
    q = kfac.precondition()

    # independent: the same network written with F.linear, gradients w.r.t. both outputs
    W, b = model.l1.weight.detach(), model.l1.bias.detach()
    s1 = F.linear(x, W, b).requires_grad_()
    h1 = torch.tanh(s1)
    s2 = F.linear(h1, W, b)
    s2.retain_grad()
    out = F.linear(torch.tanh(s2), model.head.weight.detach(), model.head.bias.detach())
    g1, g2 = torch.autograd.grad(_nll_sum(out, actions), [s1, s2])
    n = x.shape[0]
    A = (_homog(x).T @ _homog(x) + _homog(h1.detach()).T @ _homog(h1.detach())) / (2 * n)
    S = (g1.T @ g1 + g2.T @ g2) / n
    layer = kfac.layers["l1"]
    torch.testing.assert_close(layer.A, A, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(layer.S, S, rtol=1e-10, atol=1e-12)
    # the shared gradient (sum of both uses) is preconditioned once, by that block
    kappa = ((A.trace() / 5) / (S.trace() / 4)).sqrt()
    P = torch.linalg.solve(S + 0.1 ** 0.5 / kappa * torch.eye(4, dtype=DT),
                           G @ torch.linalg.inv(A + kappa * 0.1 ** 0.5 * torch.eye(5, dtype=DT)))
    torch.testing.assert_close(model.l1.weight.grad, P[:, :4], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(model.l1.bias.grad, P[:, 4], rtol=1e-8, atol=1e-10)
    # q counts the shared block once: Σ over unique parameters of ⟨g, F̃⁻¹g⟩
    assert q == pytest.approx(float((G * P).sum()) + float(_quad_of_head(model, kfac)), rel=1e-9)


def _quad_of_head(model, kfac):
    """⟨g, F̃⁻¹g⟩ of the head from its preconditioned gradient P: g = F̃ P."""
    P = {"head.weight": model.head.weight.grad, "head.bias": model.head.bias.grad}
    g = kfac.matvec(P)
    return (g["head.weight"] * P["head.weight"]).sum() + (g["head.bias"] * P["head.bias"]).sum()


def test_tied_weight_with_different_biases_is_refused_by_name():
    model = Tied()
    model.l2.bias = nn.Parameter(torch.zeros(4))
    with pytest.raises(ValueError, match=r"'l2'.*'l1'.*share the weight.*biases are different"):
        KFAC(model)


def test_tied_conv_with_another_stride_is_refused():
    class Convs(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(2, 2, 3)
            self.c2 = nn.Conv2d(2, 2, 3, stride=2)
            self.c2.weight, self.c2.bias = self.c1.weight, self.c1.bias

    with pytest.raises(ValueError, match="apply it differently"):
        KFAC(Convs())


class TiedEmbedding(nn.Module):
    def __init__(self, vocab=6, d=4):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.body = nn.Linear(d, d)
        self.head = nn.Linear(d, vocab)
        self.head.weight = self.emb.weight

    def forward(self, tokens):
        return self.head(torch.tanh(self.body(self.emb(tokens))))


def test_embedding_tied_to_the_head_is_refused_naming_both():
    with pytest.raises(ValueError, match=r"'emb.weight' of Embedding 'emb'.*covered layer 'head'.*exclude"):
        KFAC(TiedEmbedding())


def test_embedding_tied_to_the_head_works_with_the_head_excluded():
    torch.manual_seed(0)
    model = TiedEmbedding()
    kfac = KFAC(model, exclude=[model.head], uncovered="identity")
    assert list(kfac.layers) == ["body"]
    assert set(kfac.uncovered_parameters) == {"emb.weight", "head.bias"}
    logits = model(torch.randint(0, 6, (5,)))
    kfac.update_stats(categorical_fisher_loss(logits))
    F.cross_entropy(logits, torch.zeros(5, dtype=torch.long)).backward()
    g = model.emb.weight.grad.clone()
    kfac.precondition()
    torch.testing.assert_close(model.emb.weight.grad, g)  # identity: unchanged


# --------------------------------------------------------------------------- mean-reduced Fisher losses


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).to(DT)


@pytest.mark.parametrize("make", [
    lambda z, a: F.cross_entropy(z, a),
    lambda z, a: -torch.log_softmax(z, -1).gather(1, a[:, None]).mean(),
    lambda z, a: F.nll_loss(torch.log_softmax(z, -1), a) + 0.0 * z.sum(),
    lambda z, a: 0.5 * F.cross_entropy(z, a) + 0.5 * F.cross_entropy(z, a),
])
def test_mean_reduced_fisher_loss_without_loss_reduction_is_refused(make):
    model = _net()
    kfac = KFAC(model)
    z = model(torch.randn(8, 3, dtype=DT))
    with pytest.raises(ValueError, match=r"is a mean .*loss_reduction='mean'"):
        kfac.update_stats(make(z, _sampled(z)))
    assert kfac.stats_updates == 0


def test_mean_reduced_fisher_loss_with_loss_reduction_mean_equals_the_sum():
    model = _net()
    x = torch.randn(8, 3, dtype=DT)
    a, b = KFAC(model, stats_decay=0.0), KFAC(copy.deepcopy(model), stats_decay=0.0)
    z = model(x)
    actions = _sampled(z)
    a.update_stats(F.cross_entropy(z, actions), loss_reduction="mean")
    zb = b.model(x)
    b.update_stats(_nll_sum(zb, actions))
    for name in a.layers:
        torch.testing.assert_close(a.layers[name].S, b.layers[name].S, rtol=1e-10, atol=1e-14)


def test_a_mean_over_a_single_element_or_inside_a_sum_is_not_a_batch_mean():
    model = _net()
    kfac = KFAC(model)
    z = model(torch.randn(8, 3, dtype=DT))
    actions = _sampled(z)
    assert kfac.update_stats(_nll_sum(z, actions).mean())  # a 0-d mean
    assert kfac.update_stats(-torch.log_softmax(z, -1).gather(1, actions[:, None]).mean(-1).sum(), force=True)


# --------------------------------------------------------------------------- forwards the hooks cannot see


def test_precondition_without_any_grad_is_an_error_and_counts_no_step():
    model = _net()
    kfac = KFAC(model)
    z = model(torch.randn(4, 3, dtype=DT))
    kfac.update_stats(categorical_fisher_loss(z))
    with pytest.raises(RuntimeError, match="no parameter of the model has a .grad"):
        kfac.precondition()
    assert kfac.steps == 0


def test_functional_call_with_other_parameters_is_named_and_apply_inverse_is_the_way():
    model = _net()
    kfac = KFAC(model, damping=0.1)
    params = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters()}
    x = torch.randn(6, 3, dtype=DT)
    z = torch.func.functional_call(model, params, (x,))
    kfac.update_stats(categorical_fisher_loss(z))
    F.cross_entropy(z, _sampled(z, 1)).backward()
    with pytest.raises(RuntimeError, match=r"functional_call.*apply_inverse"):
        kfac.precondition()
    assert kfac.steps == 0
    grads = {n: p.grad for n, p in params.items()}
    pre, q = kfac.apply_inverse(grads)
    # the same gradient through .grad and precondition()
    for n, p in model.named_parameters():
        p.grad = grads[n].clone()
    q2 = kfac.precondition()
    assert q == pytest.approx(q2, rel=1e-12)
    for n, p in model.named_parameters():
        torch.testing.assert_close(pre[n], p.grad, rtol=1e-12, atol=1e-14)


def test_vmap_forward_is_named_in_the_error():
    model = _net()
    kfac = KFAC(model)
    z = torch.func.vmap(model)(torch.randn(4, 3, dtype=DT))
    with pytest.raises(RuntimeError, match=r"torch.func transform.*eagerly"):
        kfac.update_stats(categorical_fisher_loss(z))


def test_compiled_forward_is_named_in_the_error():
    model = _net()
    kfac = KFAC(model)
    try:
        z = torch.compile(model, backend="eager")(torch.randn(4, 3, dtype=DT))
    except Exception as err:  # pragma: no cover - platforms without dynamo
        pytest.skip(f"torch.compile unavailable: {err}")
    with pytest.raises(RuntimeError, match=r"torch.compile.*eagerly"):
        kfac.update_stats(categorical_fisher_loss(z))


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.attn(x, x, x, need_weights=False)[0].mean(1))


def test_multihead_attention_out_proj_is_named_as_never_called():
    with pytest.raises(ValueError, match=r"attn.out_proj.*out_proj of nn.MultiheadAttention 'attn'"):
        KFAC(Attention())
    torch.manual_seed(0)
    model = Attention()
    kfac = KFAC(model, uncovered="identity")
    assert list(kfac.layers) == ["head"]
    assert {"attn.in_proj_weight", "attn.out_proj.weight"} <= set(kfac.uncovered_parameters)
    z = model(torch.randn(5, 3, 4))
    kfac.update_stats(categorical_fisher_loss(z))
    F.cross_entropy(z, torch.zeros(5, dtype=torch.long)).backward()
    assert kfac.precondition() > 0


def test_a_linear_used_functionally_by_its_parent_is_named():
    class Parent(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)
            self.head = nn.Linear(3, 2)

        def forward(self, x):
            return self.head(F.linear(x, self.lin.weight, self.lin.bias))

    model = Parent()
    kfac = KFAC(model)
    z = model(torch.randn(4, 3))
    kfac.update_stats(categorical_fisher_loss(z))
    z.sum().backward()
    with pytest.raises(RuntimeError, match=r"\['lin'\].*never called as modules.*exclude"):
        kfac.precondition()


# --------------------------------------------------------------------------- load_state_dict


def _trained(model, **kw):
    kfac = KFAC(model, stats_decay=0.9, **kw)
    for seed in range(3):
        torch.manual_seed(seed)
        z = model(torch.randn(6, 3, dtype=next(model.parameters()).dtype))
        kfac.update_stats(categorical_fisher_loss(z))
        model.zero_grad()
        z.pow(2).sum().backward()
        kfac.precondition()
    return kfac


def test_state_of_the_eigen_mode_into_a_factored_kfac_is_a_clear_error():
    saved = _trained(_net(), damping_mode="eigen").state_dict()
    target = KFAC(_net())
    with pytest.raises(ValueError, match=r"damping_mode='eigen'.*damping_mode='factored'"):
        target.load_state_dict(saved)
    assert target.steps == 0 and target.layers["0"].A is None  # nothing changed


def test_float32_state_into_a_float64_model_is_converted():
    saved = _trained(_net().float()).state_dict()
    model = _net()
    kfac = KFAC(model)
    kfac.load_state_dict(saved)
    layer = kfac.layers["0"]
    assert layer.A.dtype == DT and layer.A_inv.dtype == DT
    torch.testing.assert_close(layer.A, saved["layers"]["0"]["A"].double())
    z = model(torch.randn(4, 3, dtype=DT))
    z.sum().backward()
    kfac.precondition()  # runs in float64 with the converted inverses


@pytest.mark.parametrize("corrupt, match", [
    (lambda s: s["layers"].pop("2"), r"missing \['2'\]"),
    (lambda s: s["layers"]["0"].__setitem__("A", torch.eye(3)), r"layer '0': A has shape \(3, 3\).*\(4, 4\)"),
    (lambda s: s.pop("steps"), r"missing keys \['steps'\]"),
    (lambda s: s.__setitem__("damping", -1.0), "damping must be"),
])
def test_load_state_dict_mismatches_say_which(corrupt, match):
    state = _trained(_net()).state_dict()
    corrupt(state)
    with pytest.raises(ValueError, match=match):
        KFAC(_net()).load_state_dict(state)


def test_a_state_with_the_old_eigen_order_still_loads():
    source = _trained(_net(), damping_mode="eigen")
    state = source.state_dict()
    for s in state["layers"].values():
        eA, QA, eS, QS = s["eigen"]
        s["eigen"] = (QA, eA, QS, eS)
    del state["eigen_order"], state["damping_mode"]
    target = KFAC(_net(), damping_mode="eigen")
    target.load_state_dict(state)
    for name, layer in target.layers.items():
        for mine, theirs in zip(layer.eigen, source.layers[name].eigen):
            torch.testing.assert_close(mine, theirs)
