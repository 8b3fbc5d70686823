"""Notebook 10 (Reproductions): its computations, panels and exercise checks."""
