"""rlkit: a teaching and exploration kit for natural-gradient deep reinforcement learning.

The mathematics layer (``rlkit.fisher``, ``rlkit.kfac``, ``rlkit.critic``,
``rlkit.trust_region``, ``rlkit.vmpo``) knows tensors and ``nn.Module``s only; ``rlkit.experiments.data``
loads the papers' published tables. See the README for the map of the kit, docs/design.md for its
architecture and conventions.
"""

__version__ = "0.1.0"
