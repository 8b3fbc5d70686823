"""Torch modules shared by the agents: trunks, policy heads and the actor-critic.

* :func:`mlp` and :class:`NatureCNN` (Mnih et al. 2015; input 4×84×84): the trunks, also used
  alone by ``rlkit.kfac``'s tests and the benchmarks;
* :class:`CategoricalHead` (logits) and :class:`GaussianHead` (the mean μ(s) and a
  state-independent log-std parameter, initialized to ``log_std_init``);
* :class:`ActorCritic`: ``forward(obs) -> (pd_params, value)``, with separate actor and critic
  networks (``shared_trunk=False``, the paper's MuJoCo setting) or one trunk feeding both heads
  (``shared_trunk=True``, its Atari setting). ACKTR, A2C and TRPO share these networks, so
  comparisons are like for like.

Conventions:

* initialization as openai/baselines' ``ortho_init``: orthogonal weights, zero biases, gain √2 in
  the trunks, 0.01 in the policy head, 1 in the value head;
* every random draw (initialization, :meth:`CategoricalHead.sample`, :meth:`GaussianHead.sample`)
  comes from a ``torch.Generator`` the caller passes, never from torch's global RNG: a run is
  reproducible only if every draw comes from a stream the agent owns and checkpoints;
* the log-std belongs to no layer: K-FAC gives it its exact Fisher block
  (``rlkit.critic.GAUSSIAN_LOG_STD_FISHER``).

The two layouts, initialization and sampling in detail: docs/plumbing.md, *rlkit.nets*.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import torch
import torch.nn as nn
from torch import Tensor

__all__ = [
    "mlp",
    "NatureCNN",
    "ACTIVATIONS",
    "orthogonal_init",
    "CategoricalHead",
    "GaussianHead",
    "Actor",
    "Critic",
    "ActorCritic",
]


def mlp(
    sizes: Sequence[int],
    activation: Callable[[], nn.Module] = nn.Tanh,
    output_activation: Callable[[], nn.Module] | None = None,
) -> nn.Sequential:
    """Linear layers ``sizes[0] → sizes[1] → ... → sizes[-1]`` with ``activation`` between
    them (and ``output_activation`` after the last one, if given)."""
    sizes = list(sizes)
    if len(sizes) < 2 or any(not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"sizes must be at least two positive integers; got {sizes!r}")
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(activation())
        elif output_activation is not None:
            layers.append(output_activation())
    return nn.Sequential(*layers)


class NatureCNN(nn.Module):
    """The Nature-DQN convolutional trunk: (N, C, 84, 84) → (N, ``features``).

    A ``uint8`` input is scaled to [0, 1] (divided by 255); a float input is used as is.
    """

    def __init__(self, in_channels: int = 4, features: int = 512):
        super().__init__()
        self.in_channels = in_channels
        self.features = features
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.fc = nn.Linear(64 * 7 * 7, features)

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        return torch.relu(self.fc(self.convs(x)))


# ----------------------------------------------------------------------------- actor-critic

#: Hidden activations an actor-critic config may name.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}

TRUNK_GAIN = 2**0.5  # baselines' ortho_init scale for hidden layers
POLICY_GAIN = 0.01  # near-uniform logits / near-zero mean at the start
VALUE_GAIN = 1.0


def orthogonal_init(module: nn.Module, gain: float, generator: torch.Generator | None = None) -> nn.Module:
    """Orthogonal weights (scaled by ``gain``) and zero biases for every Linear/Conv2d in ``module``."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            with torch.no_grad():
                nn.init.orthogonal_(layer.weight, gain=gain, generator=generator)
                if layer.bias is not None:
                    layer.bias.zero_()
    return module


class CategoricalHead(nn.Module):
    """π(a|s) = softmax(logits)_a with logits = W h + b: ``forward(h) -> logits`` (N, K)."""

    kind = "discrete"

    def __init__(self, features: int, num_actions: int):
        super().__init__()
        self.logits = nn.Linear(features, num_actions)

    def forward(self, h: Tensor) -> Tensor:
        return self.logits(h)

    def distribution(self, logits: Tensor, *, detach: bool = False) -> torch.distributions.Categorical:
        """π as a ``torch.distributions.Categorical`` (``detach=True``: a frozen copy, e.g. π_old)."""
        return torch.distributions.Categorical(logits=logits.detach() if detach else logits)

    def sample(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """a ~ π(·|s), (N,) int64, drawn from ``generator``."""
        probs = torch.softmax(logits, dim=-1)
        return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator).reshape(logits.shape[:-1])

    def mode(self, logits: Tensor) -> Tensor:
        """The most likely action (argmax), for evaluation."""
        return logits.argmax(dim=-1)


class GaussianHead(nn.Module):
    """π(a|s) = N(a; μ(s), diag σ²) with μ = W h + b and a state-independent ``log_std`` parameter.

    ``forward(h) -> mean`` (N, D); σ = exp(``log_std``) is shared by all states.
    """

    kind = "continuous"

    def __init__(self, features: int, action_dim: int, log_std_init: float = 0.0):
        super().__init__()
        self.mean = nn.Linear(features, action_dim)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init)))

    def forward(self, h: Tensor) -> Tensor:
        return self.mean(h)

    def distribution(self, mean: Tensor, *, detach: bool = False) -> torch.distributions.Independent:
        """π as ``Independent(Normal(μ, σ), 1)``: log_prob, entropy and KL sum over action dimensions."""
        log_std = self.log_std.detach().clone() if detach else self.log_std
        mean = mean.detach() if detach else mean
        return torch.distributions.Independent(torch.distributions.Normal(mean, log_std.exp().expand_as(mean)), 1)

    def sample(self, mean: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """a = μ + σ z, z ~ N(0, I) from ``generator``: (N, D), not clipped (the env clips)."""
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean + self.log_std.exp() * noise

    def mode(self, mean: Tensor) -> Tensor:
        """The mean action, for evaluation."""
        return mean


def _trunk(obs_shape: tuple[int, ...], hidden_sizes: Sequence[int], activation: str) -> tuple[nn.Module, int]:
    """The feature extractor for ``obs_shape`` and its output size: NatureCNN for images, else an MLP."""
    if len(obs_shape) == 3:
        cnn = NatureCNN(in_channels=obs_shape[0])
        return cnn, cnn.features
    if len(obs_shape) != 1:
        raise ValueError(f"observations of shape {tuple(obs_shape)} are not supported: "
                         "flat vectors (D,) or images (C, H, W)")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
    sizes = [int(obs_shape[0]), *map(int, hidden_sizes)]
    if len(sizes) == 1:
        return nn.Identity(), sizes[0]
    act = ACTIVATIONS[activation]
    return mlp(sizes, act, output_activation=act), sizes[-1]


def _policy_head(action_kind: str, features: int, action_size: int, log_std_init: float) -> nn.Module:
    if action_kind == "discrete":
        return CategoricalHead(features, action_size)
    if action_kind == "continuous":
        return GaussianHead(features, action_size, log_std_init)
    raise ValueError(f"no policy head for the {action_kind!r} action kind (supported: discrete, continuous)")


class Actor(nn.Module):
    """The policy network of a separate actor-critic: ``forward(obs) -> pd_params``."""

    def __init__(self, trunk: nn.Module, head: nn.Module):
        super().__init__()
        self.trunk, self.head = trunk, head

    def forward(self, obs: Tensor) -> Tensor:
        return self.head(self.trunk(obs))


class Critic(nn.Module):
    """The value network of a separate actor-critic: ``forward(obs) -> V(s)`` of shape (N,)."""

    def __init__(self, trunk: nn.Module, features: int):
        super().__init__()
        self.trunk, self.head = trunk, nn.Linear(features, 1)

    def forward(self, obs: Tensor) -> Tensor:
        return self.head(self.trunk(obs)).squeeze(-1)


class ActorCritic(nn.Module):
    """Policy π(a|s) and value V(s) for ``obs_shape``, with separate networks or a shared trunk.

    Args:
        obs_shape: (D,) for an MLP trunk, (C, H, W) for the Nature CNN.
        action_kind: ``"discrete"`` (``action_size`` actions, categorical head) or
            ``"continuous"`` (``action_size`` dimensions, diagonal Gaussian head).
        hidden_sizes: MLP hidden widths (ignored by the CNN); each trunk gets these layers.
        shared_trunk: one trunk feeding both heads (True) or two independent networks
            ``actor`` and ``critic`` (False).
        activation: ``"tanh"``, ``"relu"`` or ``"elu"`` between MLP layers (the CNN uses ReLU).
        log_std_init: the Gaussian head's initial log-std.
        generator: the random stream of the orthogonal initialization (None: torch's global RNG,
            whose state is then advanced; with a generator the global RNG is left as it was).

    ``forward(obs) -> (pd_params, value)``; ``distribution(pd_params)`` gives π;
    ``policy_head`` is the head (``policy_head.log_std`` for Gaussian policies).
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        action_kind: str,
        action_size: int,
        *,
        hidden_sizes: Sequence[int] = (64, 64),
        shared_trunk: bool = False,
        activation: str = "tanh",
        log_std_init: float = 0.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        obs_shape = tuple(int(d) for d in obs_shape)
        if not (isinstance(action_size, int) and action_size >= 1):
            raise ValueError(f"action_size must be an integer >= 1; got {action_size!r}")
        self.obs_shape, self.action_kind, self.action_size = obs_shape, action_kind, action_size
        self.shared_trunk = bool(shared_trunk)
        # The layers' default init draws from the global RNG before orthogonal_init overwrites it:
        # with a generator, undo those draws so that building leaves the global stream alone.
        with torch.random.fork_rng(devices=[]) if generator is not None else contextlib.nullcontext():
            self._build(obs_shape, hidden_sizes, activation, log_std_init, generator)

    def _build(self, obs_shape, hidden_sizes, activation, log_std_init, generator) -> None:
        action_kind, action_size = self.action_kind, self.action_size
        if self.shared_trunk:
            self.trunk, features = _trunk(obs_shape, hidden_sizes, activation)
            self.head = _policy_head(action_kind, features, action_size, log_std_init)
            self.value_head = nn.Linear(features, 1)
            trunks, value_head = [self.trunk], self.value_head
        else:
            actor_trunk, features = _trunk(obs_shape, hidden_sizes, activation)
            critic_trunk, _ = _trunk(obs_shape, hidden_sizes, activation)
            self.actor = Actor(actor_trunk, _policy_head(action_kind, features, action_size, log_std_init))
            self.critic = Critic(critic_trunk, features)
            trunks, value_head = [actor_trunk, critic_trunk], self.critic.head
        for trunk in trunks:  # baselines' ortho_init: √2 in the trunk, 0.01 policy, 1 value
            orthogonal_init(trunk, TRUNK_GAIN, generator)
        orthogonal_init(self.policy_head, POLICY_GAIN, generator)
        orthogonal_init(value_head, VALUE_GAIN, generator)

    @property
    def policy_head(self) -> nn.Module:
        """The :class:`CategoricalHead` or :class:`GaussianHead`."""
        return self.head if self.shared_trunk else self.actor.head

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """(pd_params, value): logits (N, K) or mean (N, D), and V(s) of shape (N,)."""
        if self.shared_trunk:
            h = self.trunk(obs)
            return self.head(h), self.value_head(h).squeeze(-1)
        return self.actor(obs), self.critic(obs)

    def value(self, obs: Tensor) -> Tensor:
        """V(s) alone (a separate critic does not run the actor)."""
        if self.shared_trunk:
            return self.value_head(self.trunk(obs)).squeeze(-1)
        return self.critic(obs)

    def pd_params(self, obs: Tensor) -> Tensor:
        """The policy's parameters alone (a separate actor does not run the critic)."""
        if self.shared_trunk:
            return self.head(self.trunk(obs))
        return self.actor(obs)

    def distribution(self, pd_params: Tensor, *, detach: bool = False) -> torch.distributions.Distribution:
        """π(·|s) for the batch (``detach=True``: a frozen copy that later steps do not change)."""
        return self.policy_head.distribution(pd_params, detach=detach)
