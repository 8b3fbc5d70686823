"""Figures of notebook 03: one layer's exact Fisher block beside K-FAC's S ⊗ A, and the full Fisher
beside K-FAC's block diagonal. The matrices come from :mod:`rlkit.lessons.nb03_kronecker_factors.demos`;
these functions only draw them, on pyplot figures (the notebook calls ``plt.show()``).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor


def _figure(rows: int, cols: int, figsize: tuple[float, float]):
    """A pyplot figure (so that the notebook's ``plt.show()`` draws it inline) and its axes grid."""
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, figsize=figsize, squeeze=False)


def block_heatmaps(rows: Sequence[tuple[str, Tensor, Tensor]], fan_in: int, d_out: int) -> Figure:
    """One row per ``(title, exact block, K-FAC block)``: the exact block, the K-FAC block and their
    difference, on one colour scale per row (the exact block's largest entry).

    The blocks are in ``rlkit``'s order ``[W.reshape(-1), b]``: thin lines separate the ``fan_in``
    weights of each of the ``d_out`` output units, then the biases.
    """
    fig, axes = _figure(len(rows), 3, (12, 3.8 * len(rows)))
    for ax_row, (title, exact, approx) in zip(axes, rows):
        vmax = exact.abs().max().item()
        panels = [("exact block F_ℓ", exact), ("K-FAC block S ⊗ A", approx), ("difference S ⊗ A − F_ℓ", approx - exact)]
        for ax, (name, mat) in zip(ax_row, panels):
            im = ax.imshow(mat.detach().numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            for b in np.arange(fan_in, fan_in * d_out + 1, fan_in) - 0.5:
                ax.axhline(b, color="0.6", lw=0.3)
                ax.axvline(b, color="0.6", lw=0.3)
            ax.set_title(f"{name}\n{title}", fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(im, ax=list(ax_row), shrink=0.8)
    return fig


def fisher_heatmaps(exact: Tensor, blocks: Mapping[str, Tensor], slices: Mapping[str, slice],
                    title: str = "exact Fisher F") -> Figure:
    """log10 |entry| of the full Fisher ``exact`` beside K-FAC's block-diagonal matrix, which holds
    ``blocks[name]`` (S ⊗ A) at ``slices[name]`` and zeros elsewhere; lines mark the layers."""
    approx = np.zeros(tuple(exact.shape))
    for name, sl in slices.items():
        approx[sl, sl] = blocks[name].detach().numpy()
    top = exact.abs().max().item()
    floor = 1e-6 * top
    borders = np.cumsum([sl.stop - sl.start for sl in slices.values()])[:-1] - 0.5
    fig, axes = _figure(1, 2, (11, 5))
    axes = axes[0]
    for ax, (name, mat) in zip(axes, [(title, exact.detach().numpy()),
                                       ("K-FAC: block diagonal, S ⊗ A per layer", approx)]):
        im = ax.imshow(np.log10(np.abs(mat) + floor), cmap="magma", vmin=np.log10(floor), vmax=np.log10(top))
        for b in borders:
            ax.axhline(b, color="c", lw=0.8)
            ax.axvline(b, color="c", lw=0.8)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="log10 |entry|")
    return fig
