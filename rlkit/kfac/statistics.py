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
        self._handles = [layer.module.register_forward_hook(make_forward_hook(layer, self._captures))
                         for layer in self.layers.values()]

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
            )
        return inputs

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

    def _finish_pass(self, p: _Pass) -> None:
        if not p.S:
            raise RuntimeError(
                "KFAC: the Fisher loss reached none of the covered layers (was the forward run under "
                "torch.no_grad, or before KFAC was created?)"
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

