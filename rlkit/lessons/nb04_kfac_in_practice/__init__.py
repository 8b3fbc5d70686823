"""Notebook 04 (K-FAC in practice): its computations, panels and exercise checks."""
