"""Experiments: training runs and their directories, grids of runs (local pool or Ray), the
registry of the papers' tables and figures, reports, sweeps, plots and the committed data.

Built on :mod:`rlkit.agents`; nothing below it (agents, the mathematics) imports from here.
"""
