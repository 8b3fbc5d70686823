"""Helpers shared by the tests (run settings, CLI calls, dense curvature references, grids, JupyterLab)."""
