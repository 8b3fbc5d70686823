"""K-FAC's functional surface, against independent dense computations: apply_inverse on
gradients outside .grad, matvec, the linear-operator view, accumulate() over micro-batches,
the eigendecomposition's order, the Fisher losses under rlkit.kfac, and a lean import."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import rlkit.critic
from rlkit.kfac import KFAC, Eigendecomposition
from rlkit.kfac.losses import categorical_fisher_loss, categorical_fisher_sqrt

DT = torch.float64


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4, bias=False), nn.Tanh(),
                         nn.Linear(4, 3)).to(DT)


def _fitted(mode="factored", **kw):
    model = _net()
    kfac = KFAC(model, damping=0.05, damping_mode=mode, stats_decay=0.0, **kw)
    z = model(torch.randn(9, 3, dtype=DT))
    kfac.update_stats(categorical_fisher_loss(z, generator=torch.Generator().manual_seed(0)))
    kfac.update_inverses()
    return model, kfac


def _dense_damped(kfac) -> torch.Tensor:
    """Block diagonal of each layer's damped S ⊗ A in model.parameters() order (the layers
    here are in that order; each block is [W.reshape(-1), b])."""
    return torch.block_diag(*[layer.dense_block(damped=True) for layer in kfac.layers.values()])


def _flat(d):
    return torch.cat([t.reshape(-1) for t in d])


@pytest.mark.parametrize("mode", ["factored", "eigen"])
def test_apply_inverse_of_a_torch_func_grad_equals_the_dense_solve(mode):
    model, kfac = _fitted(mode)
    params = {n: p.detach() for n, p in model.named_parameters()}
    x, y = torch.randn(5, 3, dtype=DT), torch.randint(0, 3, (5,))

    def loss(ps):
        return F.cross_entropy(torch.func.functional_call(model, ps, (x,)), y)

    grads = torch.func.grad(loss)(params)
    pre, q = kfac.apply_inverse(grads)
    assert list(pre) == list(grads)
    g = _flat(grads.values())
    sol = torch.linalg.solve(_dense_damped(kfac), g)
    torch.testing.assert_close(_flat(pre.values()), sol, rtol=1e-9, atol=1e-12)
    assert q == pytest.approx(float(g @ sol), rel=1e-10)
    assert all(p.grad is None for p in model.parameters())  # .grad untouched
    assert kfac.steps == 0
    # a list aligned with model.parameters() gives the same, as a list
    pre_list, q_list = kfac.apply_inverse(list(grads.values()))
    assert isinstance(pre_list, list) and q_list == pytest.approx(q, rel=1e-14)
    kfac.apply_inverse(grads, step=True, update_inverses=None)
    assert kfac.steps == 1


def test_apply_inverse_rejects_unknown_names_and_wrong_shapes():
    model, kfac = _fitted()
    with pytest.raises(ValueError, match=r"\['nope'\] are not parameter names"):
        kfac.apply_inverse({"nope": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(3, 5\)"):
        kfac.apply_inverse({"0.weight": torch.zeros(3, 5, dtype=DT)})
    with pytest.raises(ValueError, match="got 1 gradients"):
        kfac.apply_inverse([torch.zeros(5, 3)])


@pytest.mark.parametrize("mode", ["factored", "eigen"])
def test_matvec_is_the_damped_block_diagonal_and_inverts_apply_inverse(mode):
    model, kfac = _fitted(mode)
    torch.manual_seed(3)
    v = {n: torch.randn_like(p) for n, p in model.named_parameters()}
    Fv = kfac.matvec(v)
    torch.testing.assert_close(_flat(Fv.values()), _dense_damped(kfac) @ _flat(v.values()), rtol=1e-10, atol=1e-12)
    back, _ = kfac.apply_inverse(Fv)
    torch.testing.assert_close(_flat(back.values()), _flat(v.values()), rtol=1e-8, atol=1e-10)
    undamped = kfac.matvec(v, damped=False)
    dense = torch.block_diag(*[layer.dense_block() for layer in kfac.layers.values()])
    torch.testing.assert_close(_flat(undamped.values()), dense @ _flat(v.values()), rtol=1e-10, atol=1e-12)


def test_linear_operator_views():
    model, kfac = _fitted("eigen")
    op, inv = kfac.linear_operator(), kfac.linear_operator(inverse=True)
    n = sum(p.numel() for p in model.parameters())
    assert op.shape == (n, n)
    D = _dense_damped(kfac)
    torch.testing.assert_close(op.to_dense(), D, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(inv.to_dense(), torch.linalg.inv(D), rtol=1e-8, atol=1e-10)
    v = torch.randn(n, dtype=DT)
    torch.testing.assert_close(inv @ (op @ v), v, rtol=1e-8, atol=1e-10)
    pytest.importorskip("scipy")
    sp = op.to_scipy()
    torch.testing.assert_close(torch.as_tensor(sp.matvec(v.numpy())), D @ v, rtol=1e-10, atol=1e-12)


def test_linear_operator_with_uncovered_identity_and_exact_blocks():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2)).to(DT)
    model.log_std = nn.Parameter(torch.zeros(2, dtype=DT))
    model.extra = nn.Parameter(torch.zeros(3, dtype=DT))
    kfac = KFAC(model, damping=0.1, exact_diagonal_blocks={model.log_std: 2.0}, uncovered="identity")
    z = model(torch.randn(6, 2, dtype=DT))
    kfac.update_stats(categorical_fisher_loss(z))
    kfac.update_inverses()
    assert [n for n, _ in model.named_parameters()][:2] == ["log_std", "extra"]  # the module's own first
    D = torch.block_diag(2.1 * torch.eye(2, dtype=DT), torch.eye(3, dtype=DT),
                         *[layer.dense_block(damped=True) for layer in kfac.layers.values()])
    torch.testing.assert_close(kfac.linear_operator().to_dense(), D, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- accumulate


def _fixed_nll(logits, actions):
    return -torch.log_softmax(logits, -1).gather(1, actions[:, None]).sum()


@pytest.mark.parametrize("how", ["sum", "mean", "exact"])
def test_accumulate_over_micro_batches_equals_the_concatenated_batch(how):
    model = _net()
    x = torch.randn(10, 3, dtype=DT)
    actions = torch.randint(0, 3, (10,), generator=torch.Generator().manual_seed(1))
    whole, parts = KFAC(model, stats_decay=0.9), KFAC(copy.deepcopy(model), stats_decay=0.9)

    def one(kfac, xs, acts):
        z = kfac.model(xs)
        if how == "exact":
            kfac.update_stats_exact([(z, categorical_fisher_sqrt(z))])
        elif how == "mean":
            kfac.update_stats(_fixed_nll(z, acts) / len(xs), loss_reduction="mean")
        else:
            kfac.update_stats(_fixed_nll(z, acts))

    for _ in range(2):  # two updates: the running averages weight them identically
        one(whole, x, actions)
        with parts.accumulate():
            for sl in (slice(0, 3), slice(3, 4), slice(4, 10)):  # unequal micro-batches
                one(parts, x[sl], actions[sl])
    assert parts.stats_updates == whole.stats_updates == 2
    for name, layer in whole.layers.items():
        assert parts.layers[name].num_updates == 2
        torch.testing.assert_close(parts.layers[name].A, layer.A, rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(parts.layers[name].S, layer.S, rtol=1e-10, atol=1e-13)


def test_without_accumulate_k_calls_are_k_updates_and_nesting_is_refused():
    model = _net()
    kfac = KFAC(model)
    for _ in range(3):
        kfac.update_stats(categorical_fisher_loss(model(torch.randn(4, 3, dtype=DT))))
    assert kfac.stats_updates == 3
    with kfac.accumulate():
        with pytest.raises(RuntimeError, match="cannot be nested"):
            with kfac.accumulate():
                pass
    assert kfac.stats_updates == 3  # an empty accumulate adds nothing


# --------------------------------------------------------------------------- eigendecomposition order


def test_eigen_attribute_and_eigendecomposition_share_one_order():
    model, kfac = _fitted("eigen")
    for layer in kfac.layers.values():
        mine, computed = layer.eigen, layer.eigendecomposition()
        assert isinstance(mine, Eigendecomposition) and isinstance(computed, Eigendecomposition)
        evals_A, Q_A, evals_S, Q_S = mine
        assert evals_A.dim() == 1 and Q_A.dim() == 2 and evals_S.dim() == 1 and Q_S.dim() == 2
        for field in Eigendecomposition._fields:
            torch.testing.assert_close(getattr(mine, field).abs(), getattr(computed, field).abs())
        torch.testing.assert_close((Q_A * evals_A) @ Q_A.T, layer.A, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- reachable names, lean import


def test_fisher_losses_are_reachable_from_rlkit_kfac():
    import rlkit.kfac as kfac_pkg

    assert kfac_pkg.losses.categorical_fisher_loss is rlkit.critic.categorical_fisher_loss
    assert kfac_pkg.gaussian_fisher_loss is rlkit.critic.gaussian_fisher_loss


BLOCKED = ["gymnasium", "ale_py", "mujoco", "cv2", "matplotlib", "ipywidgets", "jupyterlab", "tqdm",
           "scipy", "pandas", "IPython", "notebook", "PIL"]


def test_the_math_modules_import_with_torch_and_numpy_alone():
    code = f"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {BLOCKED!r}:
            raise ImportError('blocked extra: ' + name)
sys.meta_path.insert(0, Block())
import rlkit.kfac, rlkit.kfac.losses, rlkit.fisher, rlkit.critic, rlkit.trust_region, rlkit.vmpo
import torch
from rlkit.kfac import KFAC
m = torch.nn.Linear(2, 2)
k = KFAC(m)
z = m(torch.randn(3, 2))
k.update_stats(rlkit.kfac.losses.categorical_fisher_loss(z))
z.sum().backward()
k.precondition()
print('ok')
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
