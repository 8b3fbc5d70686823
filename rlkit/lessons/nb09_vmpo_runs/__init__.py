"""Notebook 09 (V-MPO runs): its computations, panels and exercise checks."""
