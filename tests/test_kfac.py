"""K-FAC (rlkit.kfac) against independent dense computations, in float64.

Dense references are built with torch.func (tests/support/curvature.py) or
explicit loops, and Kronecker layouts are re-derived by hand, so that nothing below
trusts the code under test (nor rlkit.fisher).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from rlkit.critic import (
    categorical_fisher_loss,
    categorical_fisher_sqrt,
    gaussian_fisher_loss,
    gaussian_fisher_sqrt,
)
from support.curvature import per_sample_jacobian
from rlkit.kfac import KFAC
from rlkit.nets import NatureCNN

DT = torch.float64
TIGHT = dict(rtol=1e-9, atol=1e-11)


# --------------------------------------------------------------------------- references


def dense_fisher(J: torch.Tensor, F_out: torch.Tensor) -> torch.Tensor:
    """(1/N) Σ_n J_nᵀ F_n J_n, F_out of shape (N, K, K)."""
    return torch.einsum("nkp,nkl,nlq->pq", J, F_out, J) / J.shape[0]


def param_slices(model: nn.Module) -> dict[str, slice]:
    out, i = {}, 0
    for name, p in model.named_parameters():
        out[name] = slice(i, i + p.numel())
        i += p.numel()
    return out


def layer_slice(model: nn.Module, prefix: str) -> slice:
    sl = param_slices(model)
    parts = [sl[n] for n in sl if n.rsplit(".", 1)[0] == prefix]
    return slice(parts[0].start, parts[-1].stop)


def kron_param_order(S: torch.Tensor, A: torch.Tensor, fan_in: int, has_bias: bool) -> torch.Tensor:
    """Row-major layout: entry (i, j) of [W | b] has index i*d_in + j in kron(S, A).

    Reordered to the parameter order [W.reshape(-1), b] by explicit index lists.
    """
    d_out, d_in = S.shape[0], A.shape[0]
    K = torch.kron(S, A)
    order = [i * d_in + j for i in range(d_out) for j in range(fan_in)]
    if has_bias:
        order += [i * d_in + fan_in for i in range(d_out)]
    return K[order][:, order]


def kron_param_order_colmajor(S: torch.Tensor, A: torch.Tensor, fan_in: int, has_bias: bool) -> torch.Tensor:
    """Column-major layout: entry (i, j) of [W | b] has index j*d_out + i in kron(A, S)."""
    d_out = S.shape[0]
    K = torch.kron(A, S)
    order = [j * d_out + i for i in range(d_out) for j in range(fan_in)]
    if has_bias:
        order += [fan_in * d_out + i for i in range(d_out)]
    return K[order][:, order]


def grad_matrix(layer_module: nn.Module) -> torch.Tensor:
    W = layer_module.weight.grad.reshape(layer_module.weight.shape[0], -1)
    if layer_module.bias is None:
        return W.clone()
    return torch.cat([W, layer_module.bias.grad[:, None]], dim=1)


def mlp(sizes, act=nn.Tanh, bias=True):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1], bias=bias))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers).to(DT)


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("bias", [True, False])
def test_batch_size_one_blocks_equal_kron_and_exact_fisher(bias):
    """At N = 1 each layer's a is fixed, so E_y[(a⊗g)(a⊗g)ᵀ] = aaᵀ ⊗ E[ggᵀ] exactly,
    for a nonlinear net and a categorical output (exact expectation pass)."""
    torch.manual_seed(0)
    model = mlp([3, 5, 4, 3], bias=bias)
    kfac = KFAC(model, stats_decay=0.0)
    x = torch.randn(1, 3, dtype=DT)
    logits = model(x)
    kfac.update_stats_exact([(logits, categorical_fisher_sqrt(logits))])

    p = torch.softmax(logits.detach(), -1)
    F_out = torch.diag_embed(p) - p[..., :, None] * p[..., None, :]
    Fd = dense_fisher(per_sample_jacobian(model, x), F_out)
    for name, layer in kfac.layers.items():
        sl = layer_slice(model, name)
        exact = Fd[sl, sl]
        rowmajor = kron_param_order(layer.S, layer.A, layer.fan_in, bias)
        colmajor = kron_param_order_colmajor(layer.S, layer.A, layer.fan_in, bias)
        torch.testing.assert_close(rowmajor, exact, **TIGHT)
        torch.testing.assert_close(colmajor, exact, **TIGHT)
        torch.testing.assert_close(layer.dense_block(), exact, **TIGHT)


def test_batch_size_one_sampled_block_is_gradient_outer_product():
    """With one sample and one sampled action the K-FAC block is exactly the outer
    product of the Fisher loss's parameter gradient (the MC Fisher of that sample)."""
    torch.manual_seed(1)
    model = mlp([4, 6, 3])
    kfac = KFAC(model, stats_decay=0.0)
    x = torch.randn(1, 4, dtype=DT)
    logits = model(x)
    loss = categorical_fisher_loss(logits, generator=torch.Generator().manual_seed(3))
    kfac.update_stats(loss)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    g = torch.cat([t.reshape(-1) for t in grads])
    outer = torch.outer(g, g)
    for name, layer in kfac.layers.items():
        sl = layer_slice(model, name)
        torch.testing.assert_close(layer.dense_block(), outer[sl, sl], **TIGHT)


def test_deep_linear_network_gaussian_output_equals_exact_block_gauss_newton():
    """Deep linear net (with biases), Gaussian output with fixed diagonal covariance, a
    batch of N = 7 different inputs, S from the exact expectation.

    Theory: J_s = ∂f/∂s_ℓ = W_L ⋯ W_{ℓ+1} does not depend on x and F_out = diag(1/σ²) is
    constant, so the per-sample block E_y[aaᵀ ⊗ ggᵀ] = aaᵀ ⊗ J_sᵀF_outJ_s factorizes
    with a constant right factor, and its batch mean is exactly A ⊗ S. (For a
    nonlinear net J_s depends on x and K-FAC is only an approximation: checked too.)
    """
    torch.manual_seed(2)
    sigma = torch.tensor([0.5, 1.3], dtype=DT)
    x = torch.randn(7, 4, dtype=DT)
    F_out = torch.diag(sigma**-2).expand(7, 2, 2)

    def kfac_error(model):
        kfac = KFAC(model, stats_decay=0.0)
        out = model(x)
        kfac.update_stats_exact([(out, gaussian_fisher_sqrt(out, sigma))])
        Fd = dense_fisher(per_sample_jacobian(model, x), F_out)
        errs = []
        for name, layer in kfac.layers.items():
            sl = layer_slice(model, name)
            exact = Fd[sl, sl]
            approx = kron_param_order(layer.S, layer.A, layer.fan_in, True)
            errs.append(((approx - exact).norm() / exact.norm()).item())
        return max(errs)

    linear = nn.Sequential(nn.Linear(4, 5), nn.Linear(5, 3), nn.Linear(3, 2)).to(DT)
    assert kfac_error(linear) < 1e-12
    nonlinear = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 2)).to(DT)
    assert kfac_error(nonlinear) > 1e-3  # the test discriminates


# --------------------------------------------------------------------------- convolutions


class Conv1x1Model(nn.Module):
    def __init__(self, conv: bool):
        super().__init__()
        self.conv = conv
        self.mix = nn.Conv2d(3, 4, 1) if conv else nn.Linear(3, 4)
        self.head = nn.Linear(4 * 2 * 3, 5)

    def forward(self, x):  # x (N, 3, 2, 3)
        if self.conv:
            h = self.mix(x)
        else:
            n = x.shape[0]
            h = self.mix(x.permute(0, 2, 3, 1).reshape(n, 6, 3))  # (N, HW, C_out)
            h = h.reshape(n, 2, 3, 4).permute(0, 3, 1, 2)
        return self.head(torch.tanh(h).reshape(x.shape[0], -1))


def test_conv_1x1_equals_equivalent_linear_layer():
    torch.manual_seed(4)
    conv, lin = Conv1x1Model(True).to(DT), Conv1x1Model(False).to(DT)
    with torch.no_grad():
        lin.mix.weight.copy_(conv.mix.weight.reshape(4, 3))
        lin.mix.bias.copy_(conv.mix.bias)
        lin.head.load_state_dict(conv.head.state_dict())
    x = torch.randn(6, 3, 2, 3, dtype=DT)
    kf = {}
    for tag, model in (("conv", conv), ("lin", lin)):
        kfac = KFAC(model, damping=0.05, stats_decay=0.0)
        out = model(x)
        kfac.update_stats(categorical_fisher_loss(out, generator=torch.Generator().manual_seed(7)))
        model.zero_grad()
        (out * torch.linspace(-1, 1, 5, dtype=DT)).sum().backward()
        kfac.precondition()
        kf[tag] = kfac
    torch.testing.assert_close(conv(x), lin(x), **TIGHT)
    for name in ("mix", "head"):
        c, l = kf["conv"].layers[name], kf["lin"].layers[name]
        torch.testing.assert_close(c.A, l.A, **TIGHT)
        torch.testing.assert_close(c.S, l.S, **TIGHT)
    torch.testing.assert_close(conv.mix.weight.grad.reshape(4, 3), lin.mix.weight.grad, **TIGHT)
    torch.testing.assert_close(conv.mix.bias.grad, lin.mix.bias.grad, **TIGHT)
    torch.testing.assert_close(conv.head.weight.grad, lin.head.weight.grad, **TIGHT)


@pytest.mark.parametrize("padding_mode,dilation", [("zeros", 1), ("reflect", 1), ("zeros", 2)])
def test_conv_factors_match_explicit_patch_loops(padding_mode, dilation):
    """A = mean over samples and locations of [patch, 1][patch, 1]ᵀ; S = (1/N) Σ_n Σ_t g gᵀ
    (the sum over locations: S carries the factor T)."""
    torch.manual_seed(5)
    conv = nn.Conv2d(2, 3, kernel_size=3, stride=2, padding=1, dilation=dilation, padding_mode=padding_mode).to(DT)
    x = torch.randn(2, 2, 6 + 2 * dilation, 5 + 2 * dilation, dtype=DT)
    ho, wo = conv(x).shape[2:]
    head = nn.Linear(3 * ho * wo, 4).to(DT)
    model = nn.Sequential(conv, nn.Tanh(), nn.Flatten(), head)
    kfac = KFAC(model, stats_decay=0.0)
    s = conv(x)
    out = head(torch.tanh(s).flatten(1))
    B = categorical_fisher_sqrt(out)
    kfac.update_stats_exact([(out, B)])

    pad_mode = "constant" if padding_mode == "zeros" else padding_mode
    xp = F.pad(x, (1, 1, 1, 1), mode=pad_mode)
    n, _, ho, wo = s.shape
    A = torch.zeros(19, 19, dtype=DT)
    for i in range(n):
        for oh in range(ho):
            for ow in range(wo):
                rs, cs = 2 * oh, 2 * ow
                patch = xp[i, :, rs : rs + 2 * dilation + 1 : dilation, cs : cs + 2 * dilation + 1 : dilation]
                patch = patch.reshape(-1)
                a = torch.cat([patch, torch.ones(1, dtype=DT)])
                A += torch.outer(a, a)
    A /= n * ho * wo
    S = torch.zeros(3, 3, dtype=DT)
    for r in range(B.shape[-1]):
        (g,) = torch.autograd.grad(out, s, grad_outputs=B[..., r], retain_graph=True)
        for i in range(n):
            for oh in range(ho):
                for ow in range(wo):
                    S += torch.outer(g[i, :, oh, ow], g[i, :, oh, ow])
    S /= n
    layer = kfac.layers["0"]
    torch.testing.assert_close(layer.A, A, **TIGHT)
    torch.testing.assert_close(layer.S, S, **TIGHT)


@pytest.mark.parametrize("n", [3, 100])  # both code paths: ones appended / moments assembled
def test_linear_input_factor_is_mean_of_homogeneous_outer_products(n):
    torch.manual_seed(5)
    model = make_model("linear", True)
    kfac = KFAC(model, stats_decay=0.0)
    x = make_input("linear", n)
    kfac.update_stats(categorical_fisher_loss(model(x)))
    ae = torch.cat([x, torch.ones(n, 1, dtype=DT)], dim=1)
    want = sum(torch.outer(r, r) for r in ae) / n
    torch.testing.assert_close(kfac.layers["0"].A, want, **TIGHT)


def exact_pass_factors(model: nn.Module, x: torch.Tensor, **kfac_kwargs) -> dict[str, tuple]:
    """(A, S) of every layer after one exact-expectation pass on x (stats_decay 0)."""
    kfac = KFAC(model, stats_decay=0.0, **kfac_kwargs)
    out = model(x)
    kfac.update_stats_exact([(out, categorical_fisher_sqrt(out))])
    kfac.remove()
    return {name: (layer.A.clone(), layer.S.clone()) for name, layer in kfac.layers.items()}


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("k", [2, 3])
def test_subsampled_statistics_are_those_of_the_strided_subset(kind, k):
    """stats_subsample = k: pass j takes its statistics from samples j mod k, j mod k + k, ...
    equal to a full pass on that subset alone (a separate model copy, no subsampling)."""
    torch.manual_seed(30)
    model = make_model(kind, True)
    x = make_input(kind, 10)
    kfac = KFAC(model, stats_decay=0.0, stats_subsample=k)
    for j in range(k + 1):  # k + 1 passes: the offset cycles 0, 1, .., k - 1, 0
        out = model(x)
        kfac.update_stats_exact([(out, categorical_fisher_sqrt(out))])
        want = exact_pass_factors(copy.deepcopy(model), x[j % k :: k])
        for name, layer in kfac.layers.items():
            torch.testing.assert_close(layer.A, want[name][0], **TIGHT)
            torch.testing.assert_close(layer.S, want[name][1], **TIGHT)
    if kind == "linear":  # and, by hand, A of the first layer on the last pass (offset 0)
        rows = torch.cat([x[0::k], torch.ones(len(range(0, 10, k)), 1, dtype=DT)], dim=1)
        want_A = sum(torch.outer(r, r) for r in rows) / rows.shape[0]
        torch.testing.assert_close(kfac.layers["0"].A, want_A, **TIGHT)


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("k", [2, 3])
def test_presampled_pass_on_stats_rows_equals_the_in_graph_subsample(kind, k):
    """A Fisher pass on a forward of x[kfac.stats_rows(N)] with presampled=True takes the same statistics
    as a pass that forwards the whole batch and selects the rows itself, pass after pass (the offset
    cycles in both)."""
    torch.manual_seed(32)
    model = make_model(kind, True)
    twin = copy.deepcopy(model)
    x = make_input(kind, 10)
    in_graph = KFAC(model, stats_decay=0.5, stats_subsample=k)
    presampled = KFAC(twin, stats_decay=0.5, stats_subsample=k)
    for j in range(k + 1):
        rows = presampled.stats_rows(len(x))
        assert rows == slice(j % k, None, k)
        out = model(x)
        in_graph.update_stats_exact([(out, categorical_fisher_sqrt(out))])
        out_rows = twin(x[rows])
        presampled.update_stats_exact([(out_rows, categorical_fisher_sqrt(out_rows))], presampled=True)
        for name, layer in presampled.layers.items():
            torch.testing.assert_close(layer.A, in_graph.layers[name].A, **TIGHT)
            torch.testing.assert_close(layer.S, in_graph.layers[name].S, **TIGHT)
    assert presampled.stats_updates == in_graph.stats_updates == k + 1


def test_presampled_mean_reduction_and_bad_batch_size():
    """A mean-reduced sampled loss over the forwarded rows gives the sum-reduced pass's statistics
    (the same samples: one generator seed); stats_rows refuses a batch size < 1."""
    torch.manual_seed(33)
    model = make_model("linear", True)
    x = make_input("linear", 9)
    factors = {}
    for reduction in ("sum", "mean"):
        kfac = KFAC(copy.deepcopy(model), stats_decay=0.0, stats_subsample=4)
        xs = x[kfac.stats_rows(len(x))]
        loss = categorical_fisher_loss(kfac.model(xs), generator=torch.Generator().manual_seed(5))
        kfac.update_stats(loss / len(xs) if reduction == "mean" else loss, loss_reduction=reduction, presampled=True)
        factors[reduction] = {name: (layer.A, layer.S) for name, layer in kfac.layers.items()}
    for name, (A, S) in factors["sum"].items():
        torch.testing.assert_close(factors["mean"][name][0], A, **TIGHT)
        torch.testing.assert_close(factors["mean"][name][1], S, **TIGHT)
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
            KFAC(make_model("linear", True), stats_subsample=2).stats_rows(bad)


def test_subsample_larger_than_the_batch_keeps_one_sample():
    torch.manual_seed(31)
    model = make_model("linear", True)
    x = make_input("linear", 3)
    kfac = KFAC(model, stats_decay=0.0, stats_subsample=5)
    for j in range(5):  # offsets 0..4; 3 and 4 wrap to samples 0 and 1
        out = model(x)
        kfac.update_stats_exact([(out, categorical_fisher_sqrt(out))])
        want = exact_pass_factors(copy.deepcopy(model), x[(j % 5) % 3 :][:1])
        for name, layer in kfac.layers.items():
            torch.testing.assert_close(layer.A, want[name][0], **TIGHT)
            torch.testing.assert_close(layer.S, want[name][1], **TIGHT)


def test_module_called_twice_is_treated_as_extra_locations():
    """Weight sharing across calls (KFAC-expand) equals one call on a stacked input."""
    torch.manual_seed(6)
    lin = nn.Linear(3, 4).to(DT)
    head = nn.Linear(8, 2).to(DT)
    x1, x2 = torch.randn(5, 3, dtype=DT), torch.randn(5, 3, dtype=DT)

    def run(two_calls):
        kfac = KFAC(nn.ModuleList([lin, head]), stats_decay=0.0)
        if two_calls:
            h = torch.cat([lin(x1), lin(x2)], dim=1)
        else:
            h = lin(torch.stack([x1, x2], dim=1)).reshape(5, 8)
        out = head(torch.tanh(h))
        kfac.update_stats_exact([(out, gaussian_fisher_sqrt(out, 1.0))])
        layer = kfac.layers["0"]
        kfac.remove()
        return layer.A.clone(), layer.S.clone()

    (A1, S1), (A2, S2) = run(True), run(False)
    torch.testing.assert_close(A1, A2, **TIGHT)
    torch.testing.assert_close(S1, S2, **TIGHT)


def test_paused_removes_the_hooks_and_captures_nothing():
    """Inside paused(): no forward hook on any covered layer, and a forward there is not captured (a Fisher pass
    after it finds no forward alive). After: hooks back, and the statistics of a forward equal the hand-computed
    E[a aᵀ] (homogeneous coordinate), as if the pause had never happened."""
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(DT)
    kfac = KFAC(model, stats_decay=0.0)
    x = torch.randn(6, 3, dtype=DT)
    with kfac.paused():
        assert all(len(m._forward_hooks) == 0 for m in model if isinstance(m, nn.Linear))
        out = model(x)
        with pytest.raises(RuntimeError, match="no forward pass"):
            kfac.update_stats(categorical_fisher_loss(out))
    assert all(len(m._forward_hooks) == 1 for m in model if isinstance(m, nn.Linear))
    kfac.update_stats(categorical_fisher_loss(model(x)))
    ae = torch.cat([x, torch.ones(6, 1, dtype=DT)], dim=1)
    torch.testing.assert_close(kfac.layers["0"].A, ae.T @ ae / 6, **TIGHT)
    kfac.remove()
    with kfac.paused():  # after remove(): nothing to pause, and nothing comes back
        pass
    assert all(len(m._forward_hooks) == 0 for m in model if isinstance(m, nn.Linear))


# --------------------------------------------------------------------------- preconditioning


def make_model(kind: str, bias: bool) -> nn.Module:
    if kind == "linear":
        return nn.Sequential(nn.Linear(4, 5, bias=bias), nn.Tanh(), nn.Linear(5, 3, bias=bias)).to(DT)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, bias=bias), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 4 * 4, 3, bias=bias)
    ).to(DT)


def make_input(kind: str, n: int) -> torch.Tensor:
    return torch.randn(n, 4, dtype=DT) if kind == "linear" else torch.randn(n, 2, 4, 4, dtype=DT)


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("mode,method", [("factored", "cholesky"), ("factored", "eigh"), ("eigen", "eigh")])
def test_precondition_equals_dense_damped_solve(kind, bias, mode, method):
    torch.manual_seed(7)
    lam = 0.03
    model = make_model(kind, bias)
    kfac = KFAC(model, damping=lam, damping_mode=mode, inverse_method=method, stats_decay=0.7)
    gen = torch.Generator().manual_seed(11)
    for _ in range(2):  # two passes: a non-trivial running average
        kfac.update_stats(categorical_fisher_loss(model(make_input(kind, 6)), generator=gen))
    out = model(make_input(kind, 6))
    model.zero_grad()
    (out * torch.randn(out.shape, dtype=DT)).sum().backward()
    raw = {name: grad_matrix(layer.module) for name, layer in kfac.layers.items()}
    quad = kfac.precondition()

    expected_quad = 0.0
    for name, layer in kfac.layers.items():
        A, S = layer.A, layer.S
        if mode == "factored":
            pi = math.sqrt((torch.trace(A).item() / A.shape[0]) / (torch.trace(S).item() / S.shape[0]))
            K = torch.kron(S + math.sqrt(lam) / pi * torch.eye(S.shape[0], dtype=DT),
                           A + pi * math.sqrt(lam) * torch.eye(A.shape[0], dtype=DT))
        else:
            K = torch.kron(S, A) + lam * torch.eye(S.shape[0] * A.shape[0], dtype=DT)
        g = raw[name].reshape(-1)  # row-major vec of [W | b]
        sol = torch.linalg.solve(K, g)
        torch.testing.assert_close(grad_matrix(layer.module).reshape(-1), sol, rtol=1e-8, atol=1e-10)
        expected_quad += torch.dot(g, sol).item()
    assert quad == pytest.approx(expected_quad, rel=1e-9)


def test_quadratic_form_is_delta_f_delta():
    """gᵀF̂⁻¹g = ΔᵀF̂Δ with Δ = F̂⁻¹g, F̂ the damped dense block (from dense_block)."""
    torch.manual_seed(8)
    model = make_model("linear", True)
    kfac = KFAC(model, damping=0.1, damping_mode="eigen")
    kfac.update_stats(categorical_fisher_loss(model(make_input("linear", 5))))
    model.zero_grad()
    model(make_input("linear", 5)).pow(2).sum().backward()
    quad = kfac.precondition()
    total = 0.0
    for layer in kfac.layers.values():
        delta = torch.cat([layer.weight.grad.reshape(-1), layer.bias.grad])
        total += (delta @ layer.dense_block(damped=True) @ delta).item()
    assert quad == pytest.approx(total, rel=1e-9)


# --------------------------------------------------------------------------- statistics schedule


def test_ordinary_backward_never_touches_statistics():
    torch.manual_seed(9)
    model = make_model("linear", True)
    kfac = KFAC(model)
    x = make_input("linear", 8)
    out = model(x)
    out.pow(2).sum().backward(retain_graph=True)
    assert all(layer.A is None and layer.S is None for layer in kfac.layers.values())
    kfac.update_stats(categorical_fisher_loss(out))
    snap = {n: (l.A.clone(), l.S.clone()) for n, l in kfac.layers.items()}
    assert all(p.grad is not None for p in model.parameters())
    grads = [p.grad.clone() for p in model.parameters()]
    for p, g in zip(model.parameters(), grads):  # update_stats leaves .grad alone
        torch.testing.assert_close(p.grad, g, rtol=0, atol=0)
    model(x).sum().backward()
    out.pow(3).sum().backward()
    for n, layer in kfac.layers.items():
        torch.testing.assert_close(layer.A, snap[n][0], rtol=0, atol=0)
        torch.testing.assert_close(layer.S, snap[n][1], rtol=0, atol=0)
    assert kfac.stats_updates == 1


def test_fisher_pass_context_matches_update_stats():
    torch.manual_seed(10)
    model = make_model("conv", True)
    x = make_input("conv", 5)
    k1 = KFAC(model, stats_decay=0.0)
    k2 = KFAC(model, stats_decay=0.0)
    out = model(x)
    k1.update_stats(categorical_fisher_loss(out, generator=torch.Generator().manual_seed(1)))
    model.zero_grad()
    with k2.fisher_pass() as taken:
        categorical_fisher_loss(out, generator=torch.Generator().manual_seed(1)).backward()
    assert taken
    assert k1.stats_updates == 1 and k2.stats_updates == 1
    for name in k1.layers:
        torch.testing.assert_close(k1.layers[name].A, k2.layers[name].A, **TIGHT)
        torch.testing.assert_close(k1.layers[name].S, k2.layers[name].S, **TIGHT)


def test_update_stats_computes_no_parameter_gradient():
    """The Fisher pass differentiates w.r.t. layer outputs only (cheap, .grad untouched)."""
    torch.manual_seed(11)
    model = make_model("conv", True)
    kfac = KFAC(model)
    fired = []
    for name, p in model.named_parameters():
        p.register_hook(lambda g, name=name: fired.append(name))
    out = model(make_input("conv", 4))
    kfac.update_stats(categorical_fisher_loss(out))
    assert fired == [] and all(p.grad is None for p in model.parameters())
    assert all(layer.S is not None for layer in kfac.layers.values())


def test_stale_forward_falls_back_to_an_equivalent_pass():
    """A later forward replaces the bottom layer's output edge; the pass then goes through
    the bias gradient instead, with identical statistics."""
    torch.manual_seed(12)
    model = make_model("linear", True)
    x, x2 = make_input("linear", 5), make_input("linear", 5)
    k1, k2 = KFAC(model, stats_decay=0.0), KFAC(model, stats_decay=0.0)
    out = model(x)
    k1.update_stats(categorical_fisher_loss(out, generator=torch.Generator().manual_seed(3)))
    out = model(x)
    other = model(x2)  # its graph stays alive but is not part of the Fisher loss
    k2.update_stats(categorical_fisher_loss(out, generator=torch.Generator().manual_seed(3)))
    for name in k1.layers:
        torch.testing.assert_close(k1.layers[name].A, k2.layers[name].A, **TIGHT)
        torch.testing.assert_close(k1.layers[name].S, k2.layers[name].S, **TIGHT)
    del other


@pytest.mark.parametrize("subsample", [1, 4])  # 4: divided by N (the whole batch), not by the subset's size
def test_mean_reduction_is_rescaled_to_per_sample_gradients(subsample):
    torch.manual_seed(12)
    model = make_model("linear", True)
    x = make_input("linear", 9)
    ks, km = (KFAC(model, stats_decay=0.0, stats_subsample=subsample) for _ in range(2))
    out = model(x)
    ks.update_stats(categorical_fisher_loss(out, generator=torch.Generator().manual_seed(2)))
    km.update_stats(categorical_fisher_loss(out, generator=torch.Generator().manual_seed(2)) / 9,
                    loss_reduction="mean")
    for name in ks.layers:
        torch.testing.assert_close(ks.layers[name].S, km.layers[name].S, **TIGHT)


def test_running_average_decay_arithmetic_with_warm_up():
    """A_k = Σ β^{k-j} Â_j / Σ β^{k-j}: the first pass is taken as is (bias correction)."""
    torch.manual_seed(13)
    beta = 0.8
    model = make_model("linear", True)
    avg = KFAC(model, stats_decay=beta)
    plain = KFAC(model, stats_decay=0.0)
    batches = []
    for k in range(3):
        out = model(make_input("linear", 6))
        avg.update_stats(categorical_fisher_loss(out, generator=torch.Generator().manual_seed(k)))
        plain.update_stats(categorical_fisher_loss(out, generator=torch.Generator().manual_seed(k)))
        batches.append({n: (l.A.clone(), l.S.clone()) for n, l in plain.layers.items()})
        w = [beta ** (k - j) for j in range(k + 1)]
        for n, layer in avg.layers.items():
            for idx, got in ((0, layer.A), (1, layer.S)):
                want = sum(wj * batches[j][n][idx] for j, wj in enumerate(w)) / sum(w)
                torch.testing.assert_close(got, want, **TIGHT)


def test_statistics_and_inverse_periods():
    torch.manual_seed(14)
    model = make_model("linear", True)
    kfac = KFAC(model, stats_every=2, inverse_every=3)
    taken, inverted = [], []
    for step in range(7):
        out = model(make_input("linear", 4))
        assert kfac.stats_due == (step % 2 == 0)
        taken.append(kfac.update_stats(categorical_fisher_loss(out)))
        model.zero_grad()
        out.sum().backward()
        before = kfac.inverse_updates
        kfac.precondition()
        inverted.append(kfac.inverse_updates > before)
    assert taken == [s % 2 == 0 for s in range(7)]
    assert inverted == [s % 3 == 0 for s in range(7)]
    assert kfac.steps == 7 and kfac.stats_updates == 4 and kfac.inverse_updates == 3
    assert set(kfac.timings) == {"stats", "inverse", "precondition"}
    assert all(t > 0 for t in kfac.timings.values())


def test_changing_damping_recomputes_inverses():
    torch.manual_seed(15)
    model = make_model("linear", True)
    kfac = KFAC(model, damping=0.1, inverse_every=100)
    out = model(make_input("linear", 4))
    kfac.update_stats(categorical_fisher_loss(out))
    out.sum().backward(retain_graph=True)
    kfac.precondition()
    kfac.damping = 0.5
    model.zero_grad()
    out.sum().backward()
    kfac.precondition()
    assert kfac.inverse_updates == 2


# --------------------------------------------------------------------------- exact blocks, coverage


class GaussianPolicy(nn.Module):
    def __init__(self):
        super().__init__()
        self.mean = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
        self.log_std = nn.Parameter(torch.tensor([-0.3, 0.2]))

    def forward(self, x):
        return self.mean(x), self.log_std


def test_log_std_gets_its_exact_block_two_identity():
    torch.manual_seed(16)
    lam = 0.05
    policy = GaussianPolicy().to(DT)
    with pytest.raises(ValueError, match="log_std"):
        KFAC(policy)  # undeclared: refuses, names the parameter
    kfac = KFAC(policy, damping=lam, exact_diagonal_blocks={policy.log_std: 2.0})
    assert kfac.uncovered_parameters == {}
    x = torch.randn(5, 3, dtype=DT)
    mean, log_std = policy(x)
    kfac.update_stats(gaussian_fisher_loss(mean, log_std))
    policy.zero_grad()
    actions = torch.randn(5, 2, dtype=DT)
    logp = (-((actions - mean) / log_std.exp()) ** 2 / 2 - log_std).sum()
    (-logp).backward()
    g = policy.log_std.grad.clone()
    layer_quad = 0.0
    raw = {n: grad_matrix(l.module) for n, l in kfac.layers.items()}
    quad = kfac.precondition()
    torch.testing.assert_close(policy.log_std.grad, g / (2.0 + lam), **TIGHT)
    for n, layer in kfac.layers.items():
        layer_quad += (raw[n] * grad_matrix(layer.module)).sum().item()
    assert quad == pytest.approx(layer_quad + (g * g).sum().item() / (2.0 + lam), rel=1e-10)


def test_log_std_score_is_z_squared_minus_one_with_second_moment_two():
    """∂log p/∂log σ = z² − 1 exactly (sample by sample); E[(z²−1)²] = 2 (MC, 5σ)."""
    n = 400_000
    log_std = torch.zeros(n, 1, dtype=DT, requires_grad=True)
    mean = torch.zeros(n, 1, dtype=DT)
    loss = gaussian_fisher_loss(mean, log_std, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad(-loss, log_std)
    z = torch.randn((n, 1), generator=torch.Generator().manual_seed(0), dtype=DT)
    torch.testing.assert_close(grad, z**2 - 1, **TIGHT)
    assert (grad**2).mean().item() == pytest.approx(2.0, abs=0.06)


def test_uncovered_parameter_policies():
    policy = GaussianPolicy().to(DT)
    ident = KFAC(policy, uncovered="identity")
    assert list(ident.uncovered_parameters) == ["log_std"]
    zero = KFAC(policy, uncovered="zero")
    x = torch.randn(4, 3, dtype=DT)
    mean, log_std = policy(x)
    ident.update_stats(gaussian_fisher_loss(mean, log_std, generator=torch.Generator().manual_seed(0)))
    zero.update_stats(gaussian_fisher_loss(mean, log_std, generator=torch.Generator().manual_seed(0)))
    policy.zero_grad()
    (mean.sum() + log_std.sum()).backward()
    g = policy.log_std.grad.clone()
    q_rest = KFAC(policy, uncovered="zero")  # no stats: only used for its layers' list
    assert list(q_rest.layers) == ["mean.0", "mean.2"]
    grads = {n: p.grad.clone() for n, p in policy.named_parameters()}
    q_ident = ident.precondition()
    torch.testing.assert_close(policy.log_std.grad, g, rtol=0, atol=0)  # unchanged
    for n, p in policy.named_parameters():
        p.grad.copy_(grads[n])
    q_zero = zero.precondition()
    assert torch.count_nonzero(policy.log_std.grad) == 0
    assert q_ident == pytest.approx(q_zero + (g * g).sum().item(), rel=1e-10)


def test_grouped_convolution_is_reported_uncovered():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="groups"):
        KFAC(model)
    kfac = KFAC(model, uncovered="identity")
    assert set(kfac.uncovered_parameters) == {"0.weight", "0.bias"}
    assert list(kfac.layers) == ["2"]


def test_nature_cnn_layers_and_factor_sizes():
    torch.manual_seed(17)
    cnn = NatureCNN()
    head = nn.Linear(512, 6)
    model = nn.Sequential(cnn, head)
    kfac = KFAC(model)
    obs = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    out = model(obs)
    assert cnn(obs).shape == (2, 512)
    kfac.update_stats(categorical_fisher_loss(out))
    sizes = {n: (l.A.shape[0], l.S.shape[0]) for n, l in kfac.layers.items()}
    assert sizes == {
        "0.convs.0": (4 * 64 + 1, 32), "0.convs.2": (32 * 16 + 1, 64), "0.convs.4": (64 * 9 + 1, 64),
        "0.fc": (3136 + 1, 512), "1": (513, 6),
    }
    assert kfac.layers["0.convs.0"].A[-1, -1].item() == pytest.approx(1.0)  # homogeneous corner


# --------------------------------------------------------------------------- robustness


@pytest.mark.parametrize("mode,method", [("factored", "cholesky"), ("factored", "eigh"), ("eigen", "eigh")])
def test_singular_factors_give_finite_results(mode, method):
    """Dead ReLU units, a constant input feature and zero damping: singular A and S."""
    torch.manual_seed(18)
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2)).to(DT)
    with torch.no_grad():
        model[0].bias[:3] = -100.0  # units 0-2 of layer 1 never fire: zero rows in A of layer 2
        model[2].weight[:2] = 0.0
        model[2].bias[:2] = -5.0  # units 0-1 of layer 2 are dead: zero rows/cols in S of layer 2
    kfac = KFAC(model, damping=0.0, damping_mode=mode, inverse_method=method)
    x = torch.randn(8, 3, dtype=DT)
    x[:, 2] = 1.0  # a constant feature: A of layer 1 is singular (column = homogeneous one)
    out = model(x)
    kfac.update_stats(categorical_fisher_loss(out))
    assert torch.linalg.matrix_rank(kfac.layers["0"].A) < 4
    assert torch.linalg.matrix_rank(kfac.layers["2"].A) < 7
    model.zero_grad()
    out.pow(2).sum().backward()
    quad = kfac.precondition()
    assert math.isfinite(quad) and quad >= 0
    for p in model.parameters():
        assert torch.isfinite(p.grad).all()


def test_singular_factors_float32_cholesky_falls_back():
    torch.manual_seed(19)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2))
    kfac = KFAC(model, damping=0.0)
    x = torch.randn(3, 4)  # N = 3 < 5: rank-deficient A
    out = model(x)
    kfac.update_stats(categorical_fisher_loss(out))
    out.sum().backward()
    quad = kfac.precondition()
    assert math.isfinite(quad)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(damping=-1e-3), "damping"),
        (dict(damping=float("nan")), "damping"),
        (dict(stats_decay=1.0), "stats_decay"),
        (dict(stats_decay=-0.1), "stats_decay"),
        (dict(stats_every=0), "stats_every"),
        (dict(stats_every=1.5), "stats_every"),
        (dict(stats_subsample=0), "stats_subsample"),
        (dict(stats_subsample=2.5), "stats_subsample"),
        (dict(inverse_every=0), "inverse_every"),
        (dict(damping_mode="tikhonov"), "damping_mode"),
        (dict(inverse_method="svd"), "inverse_method"),
        (dict(damping_mode="eigen", inverse_method="cholesky"), "inverse_method"),
        (dict(uncovered="ignore"), "uncovered"),
    ],
)
def test_bad_hyperparameters_raise_naming_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        KFAC(make_model("linear", True), **kwargs)


def test_bad_runtime_values_raise():
    model = make_model("linear", True)
    kfac = KFAC(model)
    with pytest.raises(ValueError, match=r"damping.*\[0, inf\)"):
        kfac.damping = -1.0
    out = model(make_input("linear", 3))
    with pytest.raises(ValueError, match="loss_reduction"):
        kfac.update_stats(categorical_fisher_loss(out), loss_reduction="avg")
    with pytest.raises(ValueError, match="exact_diagonal_blocks"):
        policy = GaussianPolicy()
        KFAC(policy, exact_diagonal_blocks={policy.log_std: 0.0})


def test_non_finite_statistics_and_gradients_raise_naming_the_layer():
    model = make_model("linear", True)
    kfac = KFAC(model)
    x = make_input("linear", 4)
    x[0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"non-finite statistics.*'0'"):
        kfac.update_stats(categorical_fisher_loss(model(x).nan_to_num()))
    assert all(layer.A is None for layer in kfac.layers.values())  # nothing was merged
    out = model(make_input("linear", 4))
    kfac.update_stats(categorical_fisher_loss(out))
    model.zero_grad()
    out.sum().backward()
    model[2].weight.grad[0, 0] = float("nan")
    before = model[0].weight.grad.clone()
    with pytest.raises(ValueError, match=r"non-finite gradient.*'2'"):
        kfac.precondition()
    torch.testing.assert_close(model[0].weight.grad, before, rtol=0, atol=0)  # nothing written


def test_precondition_without_statistics_raises():
    model = make_model("linear", True)
    kfac = KFAC(model)
    model(make_input("linear", 2)).sum().backward()
    with pytest.raises(RuntimeError, match="no Fisher statistics"):
        kfac.precondition()


def test_forward_under_no_grad_and_torch_func_capture_nothing():
    model = make_model("linear", True)
    kfac = KFAC(model)
    x = make_input("linear", 3)
    with torch.no_grad():
        model(x)
    per_sample_jacobian(model, x)  # torch.func transforms: hooks stay quiet
    assert len(kfac._captures) == 0
    with pytest.raises(RuntimeError, match="no forward pass"):
        kfac.update_stats(torch.zeros((), requires_grad=True) * 1.0)


@pytest.mark.parametrize("subsample", [1, 3])  # 3: the subsample's offset resumes with the pass count
def test_state_dict_resume_equals_uninterrupted(subsample):
    def run(resume_at=None):
        torch.manual_seed(20)
        model = make_model("linear", True)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        kfac = KFAC(model, stats_decay=0.9, inverse_every=3, stats_subsample=subsample)
        gen = torch.Generator().manual_seed(0)
        for step in range(5):
            if step == resume_at:
                state = {k: v for k, v in kfac.state_dict().items()}
                kfac.remove()
                kfac = KFAC(model, stats_decay=0.9, inverse_every=3, stats_subsample=subsample)
                kfac.load_state_dict(state)
            out = model(torch.randn(6, 4, generator=gen, dtype=DT))
            kfac.update_stats(categorical_fisher_loss(out, generator=gen))
            opt.zero_grad()
            out.pow(2).mean().backward()
            kfac.precondition()
            opt.step()
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    torch.testing.assert_close(run(), run(resume_at=2), rtol=0, atol=0)


def test_half_precision_model_keeps_float32_factors():
    torch.manual_seed(22)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).to(torch.bfloat16)
    kfac = KFAC(model, damping=0.1)
    out = model(torch.randn(16, 4, dtype=torch.bfloat16))
    kfac.update_stats(categorical_fisher_loss(out.float()))
    out.float().pow(2).sum().backward()
    quad = kfac.precondition()
    assert math.isfinite(quad)
    assert all(layer.A.dtype == torch.float32 for layer in kfac.layers.values())
    assert all(p.grad.dtype == torch.bfloat16 and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    torch.manual_seed(21)
    model = make_model("conv", True)
    x = make_input("conv", 5)
    results = {}
    for dev in ("cpu", "cuda"):
        m = make_model("conv", True)
        m.load_state_dict(model.state_dict())
        m.to(dev)
        kfac = KFAC(m, damping=0.1)
        out = m(x.to(dev))
        kfac.update_stats_exact([(out, categorical_fisher_sqrt(out))])
        out.pow(2).sum().backward()
        q = kfac.precondition()
        assert kfac.layers["0"].A.device.type == dev
        results[dev] = (q, torch.cat([p.grad.reshape(-1).cpu() for p in m.parameters()]))
    assert results["cpu"][0] == pytest.approx(results["cuda"][0], rel=1e-8)
    torch.testing.assert_close(results["cpu"][1], results["cuda"][1], rtol=1e-8, atol=1e-10)
