"""A hand-written actor-critic step with K-FAC and the trust region: ACKTR's update in a few lines.

Run: python examples/acktr_step.py (tests/test_examples.py runs every script here). Explained in docs/kfac.md.
"""
import torch
import torch.nn as nn
from rlkit.kfac import KFAC
from rlkit.kfac.losses import categorical_fisher_loss, joint_fisher_loss, value_fisher_loss
from rlkit.trust_region import effective_step_size

torch.manual_seed(0)
trunk = nn.Sequential(nn.Linear(4, 16), nn.Tanh())
pi, v = nn.Linear(16, 2), nn.Linear(16, 1)
model = nn.ModuleDict({"trunk": trunk, "pi": pi, "v": v})
kfac = KFAC(model, damping=1e-2, damping_mode="eigen")
obs, actions = torch.randn(32, 4), torch.randint(0, 2, (32,))
returns = torch.randn(32)

h = trunk(obs)
logits, values = pi(h), v(h).squeeze(-1)
kfac.update_stats(joint_fisher_loss(categorical_fisher_loss(logits), value_fisher_loss(values)))
logp = torch.log_softmax(logits, -1).gather(1, actions[:, None]).squeeze(1)
advantages = (returns - values).detach()
loss = -(logp * advantages).mean() + 0.5 * (returns - values).pow(2).mean()
model.zero_grad()
loss.backward()
q = kfac.precondition()
eta = effective_step_size(q, delta=1e-3, eta_max=0.25)
with torch.no_grad():
    for p in model.parameters():
        p -= eta * p.grad
print("acktr_step.py: ok")
