"""A classifier trained with K-FAC-preconditioned SGD and the trust-region step size: the loss falls.

Run: python examples/kfac_classifier.py (tests/test_examples.py runs every script here). Explained in docs/kfac.md.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from rlkit.kfac import KFAC
from rlkit.kfac.losses import categorical_fisher_loss
from rlkit.trust_region import effective_step_size

torch.manual_seed(0)
x, y = torch.randn(256, 10), torch.randint(0, 3, (256,))
model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 3))
kfac = KFAC(model, damping=1e-2, stats_decay=0.95, inverse_every=10)
optimizer = torch.optim.SGD(model.parameters(), lr=1.0)

first = F.cross_entropy(model(x), y).item()
for step in range(30):
    logits = model(x)
    if kfac.stats_due:                                   # y ~ the model, not the labels
        kfac.update_stats(categorical_fisher_loss(logits))
    optimizer.zero_grad()
    loss = F.cross_entropy(logits, y)
    loss.backward()
    q = kfac.precondition()                              # .grad <- F̃⁻¹g, q = gᵀF̃⁻¹g
    eta = effective_step_size(q, delta=1e-3, eta_max=1.0)  # KL of the step ≈ δ
    for group in optimizer.param_groups:
        group["lr"] = eta
    optimizer.step()
assert F.cross_entropy(model(x), y).item() < first
print("kfac_classifier.py: ok")
