"""Notebook 06 (The Gauss-Newton critic): its computations, panels and exercise checks."""
