"""Notebook 08 (V-MPO's EM step): its computations, panels and exercise checks."""
