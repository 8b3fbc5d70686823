"""V-MPO's E-step and M-step losses on a 3-armed bandit: the policy learns the best arm.

Run: python examples/vmpo_bandit.py (tests/test_examples.py runs every script here). Explained in docs/kfac.md.
"""
import torch
from rlkit.vmpo import DualVariables, categorical_kl, e_step, kl_constraint_loss, policy_loss

torch.manual_seed(0)
means = torch.tensor([0.0, 0.5, 1.0])                 # the best arm is 2
logits = torch.zeros(1, 3, requires_grad=True)
duals = DualVariables("discrete")
opt = torch.optim.Adam([logits], lr=0.05)
dual_opt = torch.optim.Adam(duals.parameters(), lr=0.05)
duals.register_projection(dual_opt)
for it in range(200):
    old = logits.detach().clone()
    actions = torch.distributions.Categorical(logits=old.expand(64, 3)).sample()
    advantages = means[actions] + 0.1 * torch.randn(64) - means[actions].mean()
    est = e_step(advantages, duals.eta, eps_eta=0.1)
    log_probs = torch.log_softmax(logits, -1).expand(64, 3).gather(1, actions[:, None]).squeeze(1)
    kl = categorical_kl(old, logits)
    loss = policy_loss(log_probs, est.weights) + kl_constraint_loss(kl, duals.alpha, 0.01).total + est.loss
    opt.zero_grad(); dual_opt.zero_grad()
    loss.backward()
    opt.step(); dual_opt.step()
assert torch.softmax(logits, -1)[0, 2] > 0.9
print("vmpo_bandit.py: ok")
