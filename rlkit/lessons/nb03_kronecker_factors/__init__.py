"""Notebook 03 (Kronecker factors): its computations, panels and exercise checks."""
