r"""The Fisher passes of :class:`~rlkit.kfac.KFAC`: capture, statistics, running averages.

Statistics come only from a designated Fisher pass, the gradient of a loss built with
*sampled* outputs, never from the ordinary loss; the forward is shared with it. The Fisher
loss is a SUM over the batch of per-sample negative log-likelihoods (or a mean, with
``loss_reduction="mean"``), so that the pass sees per-sample output gradients and A and S
are batch means. Each pass's (Â, Ŝ) enters bias-corrected exponential averages with decay
``stats_decay``; passes run at steps 0, Ts, 2Ts, ... (Ts = ``stats_every``), optionally on
every k-th sample (k = ``stats_subsample``). Derivations: docs/derivations.md.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import Tensor

from .capture import _Pass, make_forward_hook, subsample_rows
from .options import LOSS_REDUCTIONS, _check_choice


class FisherPasses:
    """Mixin of :class:`~rlkit.kfac.KFAC`: the forward hooks and the Fisher passes.

    Uses the attributes that ``KFAC.__init__`` sets: ``layers``, ``stats_every``,
    ``stats_subsample``, ``stats_decay``, ``steps``, ``stats_updates``, ``timings``,
    ``_pass``, ``_captures``, ``_handles``.
    """

    # ---- capture ---------------------------------------------------------------------

    def _register_hooks(self) -> None:
        self._handles = [module.register_forward_hook(make_forward_hook(layer, self._captures))
                         for layer in self.layers.values() for module in layer.modules]

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Context without K-FAC's forward hooks: for acting and evaluation, where nothing is captured.

        A module with a forward hook takes PyTorch's slower call path on every call, even under
        ``torch.no_grad`` where the hook returns at once; that overhead matters when acting one
        env step per call. Forwards inside the context are not captured (a Fisher pass needs a
        forward from outside it); the hooks are back on exit. Does nothing after :meth:`remove`.
        """
        if not self._handles:
            yield
            return
        for handle in self._handles:
            handle.remove()
        self._handles = []
        try:
            yield
        finally:
            if self.layers and next(iter(self.layers.values())).active:
                self._register_hooks()

    def remove(self) -> None:
        """Remove the hooks; this object stops capturing (its factors stay readable)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._drop_edges()
        for layer in self.layers.values():
            layer.active = False

    # ---- Fisher passes -------------------------------------------------------------------

    @property
    def stats_due(self) -> bool:
        """Whether this step (``steps % stats_every == 0``) takes statistics."""
        return self.steps % self.stats_every == 0

    def stats_rows(self, batch_size: int) -> slice:
        """The samples of a batch of ``batch_size`` the next Fisher pass takes its statistics from.

        Every ``stats_subsample``-th (k), from r = (passes so far) mod k: ``slice(r, None, k)``;
        all samples when k = 1. A caller that runs its Fisher pass on a separate forward of
        ``x[kfac.stats_rows(len(x))]`` and passes ``presampled=True`` pays 1/k of the pass's
        forward and backward too, not only of its Gram matrices (same statistics).
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
        return subsample_rows(batch_size, self.stats_subsample, self.stats_updates)

    @contextmanager
    def fisher_pass(self, *, loss_reduction: str = "sum", force: bool = False,
                    presampled: bool = False) -> Iterator[bool]:
        """Context in which a backward of the Fisher loss updates the statistics.

        Yields whether statistics are taken (``stats_due`` or ``force``); if not, the
        context does nothing. ``fisher_loss.backward()`` inside it also accumulates the
        Fisher loss's gradient into ``.grad``: zero the gradients afterwards (or use
        :meth:`update_stats`, which does not touch ``.grad`` and is cheaper).
        ``presampled``: the forward was already run on :meth:`stats_rows` only; every
        sample it saw enters the statistics (the subsample's offset still advances).
        The loss is not visible here, so its reduction cannot be checked as :meth:`update_stats`
        does: a mean-reduced loss needs ``loss_reduction="mean"``.
        """
        _check_choice("loss_reduction", loss_reduction, LOSS_REDUCTIONS)
        if self._pass is not None:
            raise RuntimeError("KFAC: Fisher passes cannot be nested")
        if not self.layers or not (force or self.stats_due):
            yield False
            return
        if not next(iter(self.layers.values())).active:
            raise RuntimeError("KFAC: hooks were removed (remove() was called)")
        t0 = self._clock()
        # the subsample's offset cycles with the pass count (saved with the state: resumes exactly)
        self._pass = _Pass(scale_by_batch=(loss_reduction == "mean"),
                           subsample=1 if presampled else self.stats_subsample, offset=self.stats_updates)
        try:
            yield True
            p = self._pass
            self._pass = None
            self._finish_pass(p)
        finally:
            self._pass = None
            self._drop_edges()
            self.timings["stats"] += self._clock() - t0

    def _drop_edges(self) -> None:
        for layer in self.layers.values():
            layer._edge = None

    def _grad_inputs(self) -> list[Tensor]:
        """Tensors whose gradients force the layer-output hooks to fire, without weight grads."""
        inputs, seen = [], set()
        for cap in list(self._captures):
            layer = cap.layer
            edge = layer._edge
            if cap.a.requires_grad:
                t, key = cap.a, id(cap.a)
            elif edge is not None and edge[0]() is cap:
                t, key = edge[1], ("edge", id(cap))
            else:  # correct but dearer: the bias (or weight) gradient of a bottom layer
                t = layer.bias if layer.bias is not None else layer.weight
                key = id(t)
            if key not in seen:
                seen.add(key)
                inputs.append(t)
        if not inputs:
            raise RuntimeError(
                "KFAC: no forward pass of a covered layer with gradients enabled is alive; run the "
                "forward (not under torch.no_grad) after creating KFAC and before the Fisher pass"
                + self._unseen_note()
            )
        return inputs

    def _unseen_note(self) -> str:
        """The part of an error message that names a forward the hooks could not see."""
        if self._unseen_forward is None:
            return ""
        what, name = self._unseen_forward
        return (f". A forward of layer {name!r} ran under {what}: K-FAC's hooks cannot capture "
                "inside it. Run the Fisher pass's forward eagerly (the uncompiled model, outside "
                "the transform); the loss's own forward may stay compiled")

    def update_stats(
        self,
        fisher_loss: Tensor,
        *,
        loss_reduction: str = "sum",
        retain_graph: bool = True,
        force: bool = False,
        presampled: bool = False,
    ) -> bool:
        """Fisher pass from a sampled-output loss; returns whether statistics were taken.

        ``fisher_loss`` = −Σ_n log p(ŷ_n | x_n) with ŷ sampled from the model (a sum over
        the batch, or a mean with ``loss_reduction="mean"``). Only the gradients with
        respect to the covered layers' outputs are computed; ``.grad`` is untouched and
        the graph is kept (``retain_graph``) for the ordinary backward. Skipped (returns
        False) unless ``stats_due`` or ``force``. ``presampled``: the loss comes from a
        forward of :meth:`stats_rows` only (see :meth:`fisher_pass`).
        """
        if not (force or self.stats_due):
            return False
        if not isinstance(fisher_loss, Tensor) or fisher_loss.numel() != 1:
            raise ValueError("fisher_loss must be a scalar tensor (a sum of per-sample negative log-likelihoods)")
        _check_choice("loss_reduction", loss_reduction, LOSS_REDUCTIONS)
        if loss_reduction == "sum":
            mean = _batch_mean_in(fisher_loss)
            if mean is not None:
                raise ValueError(
                    f"KFAC.update_stats: the Fisher loss is a mean ({mean}) but loss_reduction='sum': "
                    "S would be N² too small. Pass loss_reduction='mean', or build the loss with "
                    "reduction='sum' (a sum of per-sample negative log-likelihoods)"
                )
        inputs = self._grad_inputs()
        with self.fisher_pass(loss_reduction=loss_reduction, force=True, presampled=presampled):
            torch.autograd.grad(fisher_loss, inputs, retain_graph=retain_graph, allow_unused=True)
        return True

    def update_stats_exact(
        self,
        outputs_and_sqrts: Sequence[tuple[Tensor, Tensor]],
        *,
        retain_graph: bool = True,
        force: bool = False,
        presampled: bool = False,
    ) -> bool:
        """Fisher pass with the exact expectation over the output distribution.

        ``outputs_and_sqrts``: pairs ``(z, B)`` with B of shape ``z.shape + (R,)`` and
        F_z = B Bᵀ per sample (e.g. :func:`rlkit.critic.categorical_fisher_sqrt`); the
        output distributions of different pairs are independent (their Fisher is block
        diagonal, as for p(a, v|s) = π(a|s) p(v|s)). Each column of each B is
        backpropagated and the outer products summed: S = E_n[Σ J_sᵀ F_z J_s].
        ``presampled`` as in :meth:`update_stats`.
        """
        if not (force or self.stats_due):
            return False
        pairs = list(outputs_and_sqrts)
        for z, B in pairs:
            if B.shape[:-1] != z.shape:
                raise ValueError(f"square root of shape {tuple(B.shape)} does not match output {tuple(z.shape)} + (R,)")
        inputs = self._grad_inputs()
        jobs = [(z, B[..., r].detach()) for z, B in pairs for r in range(B.shape[-1])]
        with self.fisher_pass(loss_reduction="sum", force=True, presampled=presampled):
            for i, (z, col) in enumerate(jobs):
                keep = retain_graph or i < len(jobs) - 1
                torch.autograd.grad(z, inputs, grad_outputs=col, retain_graph=keep, allow_unused=True)
        return True

    @contextmanager
    def accumulate(self) -> Iterator[None]:
        """Context in which several Fisher passes (micro-batches) make ONE statistic.

        Each :meth:`update_stats` (or :meth:`fisher_pass`) inside the context adds its
        micro-batch; on exit their sample-weighted mean enters the running averages as a
        single update, equal to the statistic of the concatenated batch (with
        ``stats_subsample`` = 1). Outside the context k calls give k running-average
        updates; k forwards summed into ONE Fisher loss count as weight sharing instead
        (A averaged over the calls, S summed), as for a module applied several times.
        """
        if self._accumulator is not None:
            raise RuntimeError("KFAC: accumulate() cannot be nested")
        if self._pass is not None:
            raise RuntimeError("KFAC: accumulate() cannot start inside a Fisher pass")
        self._accumulator = {}
        try:
            yield
            acc, self._accumulator = self._accumulator, None
            if acc:
                batch = {layer: (A / n, S / n) for layer, (A, S, n) in acc.items()}
                self._commit(batch)
        finally:
            self._accumulator = None

    def _finish_pass(self, p: _Pass) -> None:
        if not p.S:
            raise RuntimeError(
                "KFAC: the Fisher loss reached none of the covered layers (was the forward run under "
                "torch.no_grad, or before KFAC was created?)" + self._unseen_note()
            )
        batch = {}
        with torch.no_grad():
            for layer, S in p.S.items():
                A = p.A[layer]
                if p.calls[layer] > 1:
                    A = A / p.calls[layer]
                batch[layer] = (A, S)
            total = torch.stack([A.sum() + S.sum() for A, S in batch.values()]).sum()
            if not math.isfinite(float(total)):
                for layer, (A, S) in batch.items():
                    for which, X in (("A (activations)", A), ("S (Fisher-pass output gradients)", S)):
                        if not torch.isfinite(X).all():
                            raise ValueError(f"K-FAC: non-finite statistics {which} in layer {layer.name!r}")
            self._unseen_forward = None
            if self._accumulator is not None:
                for layer, (A, S) in batch.items():
                    n = p.samples[layer]
                    if layer in self._accumulator:
                        sums = self._accumulator[layer]
                        sums[0] += n * A
                        sums[1] += n * S
                        sums[2] += n
                    else:
                        self._accumulator[layer] = [n * A, n * S, n]
                return
        self._commit(batch)

    def _commit(self, batch: dict) -> None:
        """One update of the bias-corrected running averages with the batch statistics (A, S)."""
        with torch.no_grad():
            beta = self.stats_decay
            for layer, (A, S) in batch.items():
                layer._weight_sum = beta * layer._weight_sum + 1.0
                rate = 1.0 / layer._weight_sum
                if layer.A is None:
                    layer.A, layer.S = A.clone(), S.clone()
                else:
                    layer.A.lerp_(A, rate)
                    layer.S.lerp_(S, rate)
                layer.num_updates += 1
        self.stats_updates += 1


# the scalar-arithmetic nodes a Fisher loss passes through between its reductions and the root
_SCALAR_ARITHMETIC = {"AddBackward0", "AddBackward1", "SubBackward0", "SubBackward1", "NegBackward0",
                      "MulBackward0", "MulBackward1", "DivBackward0", "DivBackward1"}


def _batch_mean_in(loss: Tensor) -> str | None:
    """The name of a batch mean at the top of ``loss``'s graph (``.mean()`` over more than one
    element, or a loss function with ``reduction="mean"``), or None: the top is found by walking
    from the root through scalar arithmetic only (sums and scalings of several losses)."""
    stack, seen = [loss.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen or len(seen) > 64:
            continue
        seen.add(id(node))
        kind = type(node).__name__
        if kind.startswith("MeanBackward"):
            sizes = tuple(getattr(node, "_saved_self_sym_sizes", ()) or ())
            dims = getattr(node, "_saved_dim", None)
            count = 1
            for i, size in enumerate(sizes):
                if dims is None or i in dims or (i - len(sizes)) in dims:
                    count *= int(size)
            if count > 1:
                return f".mean() over {count} elements"
            continue
        if getattr(node, "_saved_reduction", None) == 1:  # at::Reduction::Mean
            return f"{kind.replace('Backward0', '')} with reduction='mean'"
        if kind in _SCALAR_ARITHMETIC:
            stack.extend(fn for fn, _ in node.next_functions)
    return None
