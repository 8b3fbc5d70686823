r"""The :class:`KFAC` preconditioner: which parameters it covers, its hyperparameters, its counters.

:class:`KFAC` assembles the pieces of this package: it builds one block per covered layer
(:mod:`rlkit.kfac.blocks`) and inherits the Fisher passes (:mod:`rlkit.kfac.statistics`),
the inverses and the preconditioning (:mod:`rlkit.kfac.precondition`) and the saved state
(:mod:`rlkit.kfac.state`). Covered: ``nn.Linear`` and ``nn.Conv2d`` (groups = 1) whose weight
requires grad; every other trainable parameter is either declared with its exact diagonal
Fisher block or handled by the ``uncovered`` policy.
"""

from __future__ import annotations

import time
import weakref
from numbers import Real
from typing import Iterable, Mapping

import torch
import torch.nn as nn
from torch import Tensor

from .blocks import KFACLayer, make_layer
from .capture import _Capture, _Pass
from .options import (
    DAMPING_MODES,
    INVERSE_METHODS,
    UNCOVERED_POLICIES,
    FisherDiagonal,
    _check_choice,
    _check_damping,
    _check_decay,
    _check_period,
)
from .precondition import Preconditioning
from .state import SavedState
from .statistics import FisherPasses


def _bias(module: nn.Module) -> Tensor | None:
    b = module.bias
    return b if (b is not None and b.requires_grad) else None


def _geometry(module: nn.Module) -> tuple:
    if isinstance(module, nn.Conv2d):
        return (type(module), module.kernel_size, module.stride, module.padding, module.dilation,
                module.padding_mode)
    return (type(module),)


def _check_tied(layer: KFACLayer, name: str, module: nn.Module) -> None:
    """``module`` shares ``layer``'s weight: one block if it shares the bias too and applies the
    weight the same way; otherwise a ValueError naming both."""
    first = layer.module
    why = None
    if _bias(module) is not layer.bias:
        why = "their biases are different tensors (or one has none): tie the bias too, or untie the weight"
    elif not isinstance(module, (nn.Linear, nn.Conv2d)) or _geometry(module) != _geometry(first):
        why = ("they apply it differently (module type, kernel, stride, padding or dilation differ); "
               "K-FAC's block assumes one use pattern")
    if why is not None:
        raise ValueError(
            f"KFAC: {name!r} ({type(module).__name__}) and {layer.name!r} ({type(first).__name__}) share the "
            f"weight tensor but cannot form one K-FAC block: {why}. Alternatively pass exclude=[...] with "
            "both modules (their parameters are then uncovered)."
        )


def _check_shared_parameters(model: nn.Module, layers: Iterable[KFACLayer]) -> None:
    """Refuse a covered parameter that another module also owns (e.g. an Embedding tied to an
    output head): its uses there are invisible to the hooks, the block would be wrong."""
    covered: dict[int, tuple[KFACLayer, str]] = {}
    members: dict[int, set[int]] = {}
    for layer in layers:
        members[id(layer)] = {id(m) for m in layer.modules}
        for p, what in ((layer.weight, "weight"), (layer.bias, "bias")):
            if p is not None:
                covered[id(p)] = (layer, what)
    if not covered:
        return
    for mname, module in model.named_modules(remove_duplicate=False):
        for pname, p in module._parameters.items():
            if p is None or id(p) not in covered:
                continue
            layer, what = covered[id(p)]
            if id(module) in members[id(layer)] and pname == what:
                continue
            full = f"{mname}.{pname}" if mname else pname
            raise ValueError(
                f"KFAC: parameter {full!r} of {type(module).__name__} {mname!r} is the same tensor as the "
                f"{what} of covered layer {layer.name!r} (tied weights); K-FAC cannot see the "
                f"{type(module).__name__}'s use of it, so the block of {layer.name!r} would precondition "
                f"it with that layer's factors only. Untie them, or pass exclude=[model.get_submodule({layer.name!r})] "
                "(the shared tensor then follows the uncovered policy or exact_diagonal_blocks)."
            )


class KFAC(FisherPasses, Preconditioning, SavedState):
    r"""K-FAC preconditioner for the ``nn.Linear`` and ``nn.Conv2d`` layers of ``model``.

    Beside any ``torch.optim`` optimizer (a classifier; one forward shared by the Fisher pass
    and the loss)::

        import torch
        import torch.nn.functional as F
        from rlkit.kfac import KFAC
        from rlkit.kfac.losses import categorical_fisher_loss

        kfac = KFAC(model, damping=1e-2, stats_decay=0.95, inverse_every=10)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        logits = model(x)
        if kfac.stats_due:                   # Fisher pass: outputs SAMPLED from the model
            kfac.update_stats(categorical_fisher_loss(logits))
        optimizer.zero_grad()
        F.cross_entropy(logits, y).backward()
        quad = kfac.precondition()           # .grad <- F̃⁻¹ g; quad = gᵀ F̃⁻¹ g
        optimizer.step()                     # trust region: lr = effective_step_size(quad, δ, η_max)
                                             # (rlkit.trust_region)

    ACKTR's Fisher pass samples both heads:
    ``kfac.update_stats(joint_fisher_loss(categorical_fisher_loss(logits), value_fisher_loss(value)))``.

    The Fisher loss is a SUM over the batch of −log p(ŷ_n | x_n); a loss built with
    ``.mean()`` or ``reduction="mean"`` needs ``loss_reduction="mean"`` (else refused). Gradients
    outside ``.grad`` (``torch.func``): :meth:`apply_inverse`; micro-batches: :meth:`accumulate`.

    Damping (λ = ``damping``), the same number meaning different things in the two modes:

    * ``"eigen"``: F̃ = S ⊗ A + λI exactly: λ is added to every eigenvalue λ_S,i·λ_A,j of the
      block, as to F + λI, so it is absolute, in the Fisher's units: directions with curvature
      well below λ move like gradient steps of size 1/λ, those well above like natural-gradient
      steps. Compare it with the products of :meth:`KFACLayer.eigendecomposition`'s eigenvalues;
      the kit's ACKTR presets (:mod:`rlkit.agents.acktr`) use λ = 1e-2 in this mode.
    * ``"factored"`` (default): F̃ = (A + κ√λ I) ⊗ (S + √λ/κ I): each factor gets a share of
      √λ, split by κ = sqrt((tr A/dim A)/(tr S/dim S)); the block's eigenvalues become
      λ_S,i·λ_A,j + λ + √λ(κ λ_S,i + λ_A,j/κ), so at the same λ it always damps MORE than the
      eigen mode (by more the larger the factors). Start near 1e-2; raise λ if steps blow up,
      lower it if training is no faster than plain SGD. Changing ``damping`` marks the
      inverses stale.

    For researchers' models: weights tied between covered modules (same weight and bias
    tensors, same layer geometry) form one block whose statistics sum over every use; a covered
    parameter also owned by another module (an Embedding tied to a head) and a Linear that is
    never called as a module (``nn.MultiheadAttention.out_proj``) are refused by name;
    forwards under ``torch.compile`` or ``vmap`` (invisible to the hooks) are named in the errors.

    Args:
        model: any module; its Linear/Conv2d layers (weight requiring grad, groups=1)
            are covered.
        damping: λ >= 0 (the two modes: :mod:`rlkit.kfac.damping`).
        damping_mode: ``"factored"`` (κ-corrected Tikhonov) or ``"eigen"`` (exact
            damping in the Kronecker eigenbasis).
        stats_decay: β in [0, 1) of the bias-corrected exponential averages.
        stats_every: Ts >= 1, statistics at steps that are multiples of Ts.
        stats_subsample: k >= 1, statistics from every k-th sample of the batch (the offset
            cycles through 0..k−1 over the passes); 1: every sample.
        inverse_every: Tf >= 1, inverses at steps that are multiples of Tf.
        inverse_method: ``"cholesky"`` (default) or ``"eigh"`` for the factored mode;
            the eigen mode needs (and defaults to) ``"eigh"``.
        exact_diagonal_blocks: ``{param: fisher_diagonal}`` for parameters no layer
            owns (a number, a tensor broadcastable to the parameter, or a callable
            ``param -> tensor``), all entries > 0.
        uncovered: ``"error"``, ``"identity"`` or ``"zero"``: what happens to the other
            trainable parameters: refuse to build, leave their gradient unchanged
            (identity block, included in the quadratic form), or zero it (not updated).
        exclude: modules not to cover (their parameters become uncovered).
        eigenvalue_floor: relative eigenvalue floor of the fallback path (default
            dim·eps of the dtype).
        timing_sync: call ``torch.cuda.synchronize()`` before reading the clock so
            that :attr:`timings` are device times on CUDA (slower).

    Attributes:
        layers: ``{module name: KFACLayer}`` — factors ``A``, ``S``, inverses, dense views
            (tied modules: one entry, under the first name; ``KFACLayer.module_names`` has all).
        uncovered_parameters: ``{name: parameter}`` not owned by a layer nor declared.
        unsupported_layers: ``{module name: reason}`` (e.g. grouped convolutions).
        exact_blocks: the declared ``(name, parameter, fisher_diagonal)``.
        steps, stats_updates, inverse_updates: counters (a step is a ``precondition()``).
        timings: cumulative seconds in ``"stats"`` (Fisher passes), ``"inverse"`` and
            ``"precondition"``; host time on CUDA unless ``timing_sync``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        damping: float = 1e-2,
        damping_mode: str = "factored",
        stats_decay: float = 0.95,
        stats_every: int = 1,
        stats_subsample: int = 1,
        inverse_every: int = 10,
        inverse_method: str | None = None,
        exact_diagonal_blocks: Mapping[Tensor, FisherDiagonal] | None = None,
        uncovered: str = "error",
        exclude: Iterable[nn.Module] = (),
        eigenvalue_floor: float | None = None,
        timing_sync: bool = False,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        self._damping = _check_damping(damping)
        self.damping_mode = _check_choice("damping_mode", damping_mode, DAMPING_MODES)
        self.stats_decay = _check_decay(stats_decay)
        self.stats_every = _check_period("stats_every", stats_every)
        self.stats_subsample = _check_period("stats_subsample", stats_subsample)
        self.inverse_every = _check_period("inverse_every", inverse_every)
        if inverse_method is None:
            inverse_method = "eigh" if damping_mode == "eigen" else "cholesky"
        self.inverse_method = _check_choice("inverse_method", inverse_method, INVERSE_METHODS)
        if self.damping_mode == "eigen" and self.inverse_method != "eigh":
            raise ValueError("inverse_method must be 'eigh' with damping_mode='eigen' (it needs the eigenbases)")
        self.uncovered_policy = _check_choice("uncovered", uncovered, UNCOVERED_POLICIES)
        if eigenvalue_floor is not None and not (isinstance(eigenvalue_floor, Real) and 0 < eigenvalue_floor < 1):
            raise ValueError(f"eigenvalue_floor must be in (0, 1) or None; got {eigenvalue_floor!r}")
        self.eigenvalue_floor = eigenvalue_floor
        self.timing_sync = bool(timing_sync)

        self.model = model
        self._pass: _Pass | None = None
        self._captures: "weakref.WeakSet[_Capture]" = weakref.WeakSet()
        self._unseen_forward: tuple[str, str] | None = None  # (what hid a forward, layer name)
        self._foreign_forward: str | None = None  # a layer called with another weight tensor
        self._accumulator = None  # {layer: [Σ n A, Σ n S, Σ n]} inside accumulate()
        excluded = {id(m) for m in exclude}
        self.layers: dict[str, KFACLayer] = {}
        self.unsupported_layers: dict[str, str] = {}
        self._handles = []
        functional = {}  # id(module) -> why it is never called as a module
        for name, module in model.named_modules():
            if isinstance(module, nn.MultiheadAttention):
                functional[id(module.out_proj)] = (
                    f"the out_proj of nn.MultiheadAttention {name!r}: applied by "
                    "F.multi_head_attention_forward, never called as a module, so K-FAC cannot see its input"
                )
        by_weight: dict[int, KFACLayer] = {}
        for name, module in model.named_modules():
            if not isinstance(module, (nn.Linear, nn.Conv2d)) or id(module) in excluded:
                continue
            if not module.weight.requires_grad:
                continue
            if isinstance(module, nn.Conv2d) and module.groups != 1:
                self.unsupported_layers[name] = "grouped convolution (groups != 1)"
                continue
            if id(module) in functional:
                self.unsupported_layers[name] = functional[id(module)]
                continue
            tied = by_weight.get(id(module.weight))
            if tied is not None:
                _check_tied(tied, name, module)
                tied.modules.append(module)
                tied.module_names.append(name)
                continue
            layer = make_layer(self, name, module)
            self.layers[name] = layer
            by_weight[id(module.weight)] = layer
        _check_shared_parameters(model, self.layers.values())
        self._register_hooks()

        owned = {id(p) for layer in self.layers.values() for p in layer.parameters}
        names = {id(p): n for n, p in model.named_parameters()}
        self.exact_blocks: list[tuple[str, Tensor, FisherDiagonal]] = []
        for param, fisher in (exact_diagonal_blocks or {}).items():
            if id(param) not in names:
                raise ValueError("exact_diagonal_blocks: every key must be a parameter of the model")
            if id(param) in owned:
                raise ValueError(
                    f"exact_diagonal_blocks: parameter {names[id(param)]!r} belongs to a covered layer"
                )
            if not callable(fisher):
                f = torch.as_tensor(fisher)
                if not (torch.isfinite(f).all() and (f > 0).all()):
                    raise ValueError(
                        f"exact_diagonal_blocks[{names[id(param)]!r}] must be finite and > 0; got {fisher!r}"
                    )
            self.exact_blocks.append((names[id(param)], param, fisher))
        declared = owned | {id(p) for _, p, _ in self.exact_blocks}
        #: trainable parameters neither owned by a layer nor declared; see ``uncovered``.
        self.uncovered_parameters: dict[str, Tensor] = {
            n: p for n, p in model.named_parameters() if p.requires_grad and id(p) not in declared
        }
        if not self.layers and not self.exact_blocks:
            raise ValueError("KFAC: the model has no nn.Linear or nn.Conv2d layer to cover")
        if self.uncovered_parameters and self.uncovered_policy == "error":
            detail = "".join(f"; {n}: {why}" for n, why in self.unsupported_layers.items())
            raise ValueError(
                "KFAC: trainable parameters not covered by any Linear/Conv2d layer: "
                f"{sorted(self.uncovered_parameters)}{detail}. Declare their exact Fisher block with "
                "exact_diagonal_blocks={param: fisher_diagonal} (a diagonal Gaussian's log-std: 2.0), "
                "or pass uncovered='identity' (gradient unchanged) or uncovered='zero' (not updated)."
            )

        self.steps = 0
        self.stats_updates = 0
        self.inverse_updates = 0
        self.timings = {"stats": 0.0, "inverse": 0.0, "precondition": 0.0}

    # ---- hyperparameters that invalidate the inverses ------------------------------------

    @property
    def damping(self) -> float:
        """λ >= 0; setting it marks the inverses for recomputation at the next step."""
        return self._damping

    @damping.setter
    def damping(self, value: float) -> None:
        self._damping = _check_damping(value)
        for layer in self.layers.values():
            layer._inverse_valid = False

    def __repr__(self) -> str:
        return (
            f"KFAC({len(self.layers)} layers, damping={self.damping}, damping_mode={self.damping_mode!r}, "
            f"stats_decay={self.stats_decay}, stats_every={self.stats_every}, "
            f"stats_subsample={self.stats_subsample}, "
            f"inverse_every={self.inverse_every}, steps={self.steps})"
        )

    def _clock(self) -> float:
        if self.timing_sync and torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()
