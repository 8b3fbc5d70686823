"""K-FAC on a small CNN (nn.Conv2d and nn.Linear layers).

Run: python examples/kfac_cnn.py (tests/test_examples.py runs every script here). Explained in docs/kfac.md.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from rlkit.kfac import KFAC
from rlkit.kfac.losses import categorical_fisher_loss

torch.manual_seed(0)
cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2),
                    nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 3, 5))
kfac = KFAC(cnn, damping=1e-2)
images, labels = torch.randn(16, 1, 8, 8), torch.randint(0, 5, (16,))
logits = cnn(images)
kfac.update_stats(categorical_fisher_loss(logits))
F.cross_entropy(logits, labels).backward()
q = kfac.precondition()
assert q > 0 and set(kfac.layers) == {"0", "2", "5"}
print("kfac_cnn.py: ok")
