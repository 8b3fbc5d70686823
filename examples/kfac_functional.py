"""Gradients outside .grad (torch.func), the Fisher as an operator, micro-batches with accumulate().

Run: python examples/kfac_functional.py (tests/test_examples.py runs every script here). Explained in docs/kfac.md.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad
from rlkit.kfac import KFAC
from rlkit.kfac.losses import categorical_fisher_loss

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
kfac = KFAC(model, damping=1e-2)
x, y = torch.randn(12, 4), torch.randint(0, 3, (12,))

with kfac.accumulate():                        # ONE statistic over three micro-batches
    for chunk in x.split(4):
        kfac.update_stats(categorical_fisher_loss(model(chunk)))
assert kfac.stats_updates == 1

params = {n: p.detach() for n, p in model.named_parameters()}
g = grad(lambda ps: F.cross_entropy(functional_call(model, ps, (x,)), y))(params)
step, q = kfac.apply_inverse(g)               # {name: F̃⁻¹g}, gᵀF̃⁻¹g; .grad untouched
back = kfac.matvec(step)                       # F̃ (F̃⁻¹g) = g
assert all(torch.allclose(back[n], g[n], atol=1e-5) for n in g)
dense = kfac.linear_operator().to_dense()      # small models only; .to_scipy() with SciPy
assert dense.shape == (67, 67)
print("kfac_functional.py: ok")
